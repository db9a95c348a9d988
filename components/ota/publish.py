"""A pipeline run's release: what it contains, where it goes, with which key. Plain library, no TFX.

``release_run`` is the one path from a run's artifacts to a signed release on its channels;
the OtaPusher executor and ``tinyml-tfx push`` both call it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from importlib import metadata
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from cryptography.hazmat.primitives.asymmetric import ec

from components.ota import channels, http_registry, model_card, oci_layout, releases, signing

RELEASE_FILES = ("model.tflite", "model_data.cc", "model_data.h", "micro_op_resolver.h",
                 "quantization_report.json")
GATE_FILES = ("device_report.json", "device_report.html")
TEST_REPORT_FILE = "test_report.json"  # the TestSetEvaluator's figures, when the run has them
USERNAME_ENV, PASSWORD_ENV, TOKEN_ENV = ("TINYML_TFX_REGISTRY_USERNAME", "TINYML_TFX_REGISTRY_PASSWORD",
                                         "TINYML_TFX_REGISTRY_TOKEN")
SIGNING_KEY_ENV = "TINYML_TFX_SIGNING_KEY"
PASSPHRASE_ENV = "COSIGN_PASSWORD"  # cosign's variable for a key's passphrase; also as COSIGN_PASSWORD_FILE
# The development key a local run makes when no key is configured (pipeline.config.DEV_SIGNING_KEY
# names the same file in WORKDIR/keys).
DEV_KEY_FILE = "dev-signing.key"


class PublishError(ValueError):
    """A release that cannot be assembled or pushed; the message names the file or setting."""


@dataclasses.dataclass(frozen=True)
class InputProcessing:
    """How firmware must prepare the model's input, as a release records it (one annotation).

    The task decides: a keyword-spotting run records its audio front end's hash, known when
    the pipeline is defined (``sha256``); a motion run records the sha256 of the
    normalization constants its Trainer wrote (``file``: a release file). An empty
    ``annotation`` records nothing (a task whose model needs no input processing of its own).
    """

    annotation: str
    sha256: str = ""
    file: str = ""

    def value(self, files: Mapping[str, bytes]) -> str:
        if self.sha256:
            return self.sha256
        if self.file not in files:
            raise PublishError(f"The release records the sha256 of {self.file} under {self.annotation}, but the run "
                               f"shipped no {self.file} (files: {', '.join(sorted(files))}); rerun the pipeline.")
        return hashlib.sha256(files[self.file]).hexdigest()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "InputProcessing":
        return cls(**json.loads(text))


# Adds an evaluation's files, annotations and model card section to a release being built.
ReleaseAddition = Callable[[Dict[str, bytes], Dict[str, str]], None]


@dataclasses.dataclass(frozen=True)
class RunArtifacts:
    """What a pipeline run hands to its release (paths, names and ML Metadata ids)."""

    quantized_dir: str            # TFLiteQuantizer's quantized_model folder
    device_report_dir: str        # McuSizeGate's report folder
    input_processing: InputProcessing
    pipeline_name: str
    run_id: str
    lineage: Mapping[str, int]    # see ``lineage``
    card: Optional[model_card.CardText] = None
    test_evaluation_dir: Optional[str] = None  # the TestSetEvaluator's folder: test_report.json
    # what other evaluations add (files, annotations, model card sections), applied in order last
    additions: Tuple["ReleaseAddition", ...] = ()


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where a release goes and how it is signed (the config's ``release`` section)."""

    registry: str
    repository: str
    signing_key_file: Optional[str] = None
    allow_unsigned: bool = False
    channel: str = "canary"
    insecure: bool = False


@dataclasses.dataclass(frozen=True)
class Published:
    release: releases.Release
    destination: str              # <registry>/<repository>:<version>
    signed: bool
    targets: Sequence[str]


def _read(folder: str, name: str) -> bytes:
    """A run artifact's file; through tf.io.gfile, since a Kubeflow pipeline root is an object store (gs://)."""
    import tensorflow as tf

    path = os.path.join(folder, name)
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    except (OSError, tf.errors.OpError) as err:
        reason = getattr(err, "strerror", None) or getattr(err, "message", None) or str(err)
        raise PublishError(f"Release file {path} cannot be read ({reason}); the quantizer and the size gate "
                           "write it, so rerun the pipeline.") from err


def release_files(quantized_dir: str, device_report_dir: str) -> Dict[str, bytes]:
    """The files a release carries: the model, its firmware sources (including any the model
    ships, e.g. an input normalization header) and the two reports."""
    files = {name: _read(quantized_dir, name) for name in RELEASE_FILES}
    extra = json.loads(files["quantization_report.json"]).get("firmware_files", [])
    files.update({name: _read(quantized_dir, name) for name in extra})
    files.update({name: _read(device_report_dir, name) for name in GATE_FILES})
    return files


def release_annotations(files: Mapping[str, bytes], input_processing: InputProcessing, pipeline_name: str,
                        run_id: str, lineage: Mapping[str, Any]) -> Dict[str, str]:
    """The annotations a fleet needs without downloading the model (see ``releases``)."""
    gate = json.loads(files["device_report.json"])
    quantization = json.loads(files["quantization_report.json"])
    fidelity = quantization.get("fidelity", {})
    primary = gate["targets"][0]
    recorded_input = {input_processing.annotation: input_processing.value(files)} if input_processing.annotation else {}
    test = json.loads(files[TEST_REPORT_FILE]) if TEST_REPORT_FILE in files else None
    if test:  # the held-out figures, measured once after the gates
        recorded_input.update({releases.TEST_FLOAT_ACCURACY_ANNOTATION: f"{test['float_accuracy']:.4f}",
                               releases.TEST_INT8_ACCURACY_ANNOTATION: f"{test['quantized_accuracy']:.4f}",
                               releases.TEST_EXAMPLES_ANNOTATION: str(test["examples"])})
    return {
        releases.TARGETS_ANNOTATION: ",".join(t["board"] for t in gate["targets"] if t["fits"]),
        releases.ARENA_ANNOTATION: str(gate["arena"]["smallest_bytes"]),
        releases.FLASH_ANNOTATION: str(gate["flash"]["total_bytes"]),
        releases.OPS_ANNOTATION: ",".join(f"{op['name']}:v{op['version']}" for op in gate["ops"]),
        releases.TFLM_VERSION_ANNOTATION: metadata.version("tflite-micro"),
        releases.TF_VERSION_ANNOTATION: metadata.version("tensorflow"),
        **recorded_input,
        releases.FLOAT_ACCURACY_ANNOTATION: f"{fidelity.get('float_accuracy', float('nan')):.4f}",
        releases.INT8_ACCURACY_ANNOTATION: f"{fidelity.get('quantized_accuracy', float('nan')):.4f}",
        releases.PIPELINE_ANNOTATION: pipeline_name,
        releases.RUN_ANNOTATION: run_id,
        releases.LINEAGE_ANNOTATION: json.dumps(dict(lineage), sort_keys=True),
        "dev.tinyml-tfx.latency.ms": str(primary.get("latency_ms")),
        oci_layout.TITLE: f"{pipeline_name} model",
    }


def add_model_card(files: Dict[str, bytes], text: model_card.CardText, annotations: Mapping[str, str]) -> None:
    """Adds ``model_card.md`` to a release's ``files``: the task's words, the reports' numbers and
    the release's provenance (from its annotations)."""
    provenance = {
        "pipeline": annotations.get(releases.PIPELINE_ANNOTATION, "?"),
        "run": annotations.get(releases.RUN_ANNOTATION, "?"),
        "TensorFlow": annotations.get(releases.TF_VERSION_ANNOTATION, "?"),
        "TFLite Micro": annotations.get(releases.TFLM_VERSION_ANNOTATION, "?"),
        **({"audio front-end hash": annotations[releases.FRONTEND_ANNOTATION]}
           if releases.FRONTEND_ANNOTATION in annotations else {}),
        **({"normalization constants sha256": annotations[releases.NORMALIZATION_ANNOTATION]}
           if releases.NORMALIZATION_ANNOTATION in annotations else {}),
        "ML Metadata ids": annotations.get(releases.LINEAGE_ANNOTATION, "{}"),
    }
    files[model_card.MODEL_CARD_FILE] = model_card.render(
        text, json.loads(files["quantization_report.json"]), json.loads(files["device_report.json"]),
        provenance, test=json.loads(files[TEST_REPORT_FILE]) if TEST_REPORT_FILE in files else None).encode()


def build_release(run: RunArtifacts) -> Tuple[Dict[str, bytes], Dict[str, str]]:
    """The files and annotations of a run's release: the model, firmware sources, reports, the
    model card (when the run has its text) and the fleet annotations, including the run's
    input processing and ML Metadata lineage."""
    files = release_files(run.quantized_dir, run.device_report_dir)
    if run.test_evaluation_dir:
        files[TEST_REPORT_FILE] = _read(run.test_evaluation_dir, TEST_REPORT_FILE)
    annotations = release_annotations(files, run.input_processing, run.pipeline_name, run.run_id, run.lineage)
    if run.card is not None:
        add_model_card(files, run.card, annotations)
    for addition in run.additions:
        addition(files, annotations)
    return files, annotations


def lineage(model: int, device_report: int, model_blessing: int, quantization_blessing: int,
            device_blessing: int) -> Dict[str, int]:
    """The ML Metadata ids a release records (its ``LINEAGE_ANNOTATION``): the quantized model,
    the size gate's report and the three blessings that let it through."""
    return {"model": model, "device_report": device_report, "model_blessing": model_blessing,
            "quantization_blessing": quantization_blessing, "device_blessing": device_blessing}


def credential(environ: Mapping[str, str], name: str) -> Optional[str]:
    """The value of ``name`` in ``environ``, or the content of the file ``<name>_FILE`` names
    (a mounted Kubernetes or Docker secret); None when neither is set."""
    if environ.get(name):
        return environ[name]
    path = environ.get(name + "_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as err:
        raise PublishError(f"{name}_FILE points at {path}, which cannot be read ({err.strerror}). Mount the "
                           f"secret there or set {name} instead.") from None


def is_remote(registry: str) -> bool:
    return registry.startswith(("http://", "https://"))


def open_store(registry: str, repository: str, environ: Optional[Mapping[str, str]] = None, insecure: bool = False,
               create: bool = False):
    """The embedded layout (a directory) or an HTTP registry, with credentials from ``environ``
    (``TINYML_TFX_REGISTRY_USERNAME``/``_PASSWORD`` or ``_TOKEN``, each also as ``..._FILE``).

    Args:
        insecure: allow credentials over plain ``http://`` off loopback (``--insecure``).
        create: make the layout folder when missing (a push); otherwise a missing one is refused.
    """
    environ = os.environ if environ is None else environ
    if is_remote(registry):
        return http_registry.HttpRegistry(registry, repository, username=credential(environ, USERNAME_ENV),
                                          password=credential(environ, PASSWORD_ENV),
                                          token=credential(environ, TOKEN_ENV), insecure=insecure)
    return oci_layout.OciLayout(os.path.join(registry, repository), create=create, repository=repository)


def is_development_key(key_file: Optional[str]) -> bool:
    """Whether ``key_file`` is the development key a local run makes in ``WORKDIR/keys``."""
    return bool(key_file) and os.path.basename(key_file) == DEV_KEY_FILE and \
        os.path.basename(os.path.dirname(key_file)) == "keys"


def _no_key_for_remote(registry: str, key_file: Optional[str]) -> PublishError:
    what = "" if not key_file else (f" ({key_file} is the development key)" if is_development_key(key_file)
                                    else f" ({key_file} does not exist)")
    return PublishError(
        f"No signing key for registry {registry}{what}: a development key is made and used only for a local "
        "registry folder, never for a registry devices pull from. Make a release key "
        "with `tinyml-tfx keys generate --output release.key` (it asks for a passphrase, or reads COSIGN_PASSWORD), "
        "set release.signing_key_file to it in the config, and give the passphrase where the push runs "
        f"(COSIGN_PASSWORD or COSIGN_PASSWORD_FILE); or put the PEM key in {SIGNING_KEY_ENV}.")


def load_signing_key(key_file: Optional[str], registry: str = "",
                     environ: Optional[Mapping[str, str]] = None) -> Optional[ec.EllipticCurvePrivateKey]:
    """The release key, decrypted: from ``key_file`` or the ``TINYML_TFX_SIGNING_KEY`` variable
    (PEM), with the passphrase from ``COSIGN_PASSWORD`` (or ``COSIGN_PASSWORD_FILE``) when it is
    encrypted. None when neither names a key.

    A configured key file and the variable both set is an error; only the development key
    (``is_development_key``) gives way to the variable, and it never signs for a remote registry.

    Raises:
        PublishError: both sources set, an unreadable file, no key for a remote ``registry``,
            a wrong or missing passphrase, or not an ECDSA P-256 key; one paragraph each.
    """
    environ = os.environ if environ is None else environ
    from_env = environ.get(SIGNING_KEY_ENV)
    if from_env and key_file and not is_development_key(key_file):
        raise PublishError(
            f"Two signing keys are given: release.signing_key_file ({key_file}) and the {SIGNING_KEY_ENV} variable. "
            "Releases are signed with exactly one key: remove the config field or unset the variable.")
    passphrase = credential(environ, PASSPHRASE_ENV)
    passphrase_bytes = passphrase.encode() if passphrase is not None else None
    if from_env:
        if key_file:
            logging.getLogger(__name__).info("Signing with the key in %s, not the development key %s.",
                                             SIGNING_KEY_ENV, key_file)
        pem, source = from_env.encode(), f"The key in {SIGNING_KEY_ENV}"
    elif not key_file:
        return None
    else:
        if is_remote(registry) and (is_development_key(key_file) or not os.path.exists(key_file)):
            raise _no_key_for_remote(registry, key_file)
        try:
            with open(key_file, "rb") as f:
                pem = f.read()
        except OSError as err:
            hint = (" It is the development key of a local run: give the --workdir of the run that made it."
                    if is_development_key(key_file) else "")
            raise PublishError(f"Signing key {key_file} cannot be read ({err.strerror}).{hint} Point "
                               f"release.signing_key_file at the PEM key, or set {SIGNING_KEY_ENV}.") from err
        source = f"Signing key {key_file}"
    try:
        return signing.load_private_key(pem, passphrase_bytes, source)
    except signing.SignatureError as err:
        raise PublishError(str(err)) from None


def signing_key_for(destination: Destination,
                    environ: Optional[Mapping[str, str]] = None) -> Optional[ec.EllipticCurvePrivateKey]:
    """The key that signs releases and channel moves for ``destination``; None only when the
    destination allows unsigned releases and no key is given.

    Raises:
        PublishError: see ``load_signing_key``; and no key where one is required.
    """
    key = load_signing_key(destination.signing_key_file, destination.registry, environ)
    if key is None and not destination.allow_unsigned:
        if is_remote(destination.registry):
            raise _no_key_for_remote(destination.registry, None)
        raise PublishError("No signing key: devices only take signed releases and signed channel moves. Set "
                           f"release.signing_key_file (or {SIGNING_KEY_ENV}), or allow unsigned releases "
                           "explicitly (release.allow_unsigned, --allow-unsigned).")
    return key


def write_key_pair(key_file: str, passphrase: Optional[bytes]) -> str:
    """Writes a new ECDSA P-256 key pair: ``key_file`` (0600; encrypted with ``passphrase`` when
    given) and ``key_file.pub``; refuses to overwrite. Returns the public key's path."""
    for path in (key_file, key_file + ".pub"):
        if os.path.exists(path):
            raise PublishError(f"{path} exists; a key is never overwritten. Choose another --output or move it.")
    private_pem, public_pem = signing.generate_key_pair(passphrase)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(key_file)), exist_ok=True)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as f:
            f.write(private_pem)
        with open(key_file + ".pub", "wb") as f:
            f.write(public_pem)
    except OSError as err:
        raise PublishError(f"The key pair cannot be written to {key_file} ({err.strerror}).") from None
    return key_file + ".pub"


def ensure_development_key(key_file: Optional[str], registry: str) -> bool:
    """Makes the local run's unencrypted development key pair the first time it is needed; never
    for a remote ``registry``. Returns whether a key was made."""
    if not is_development_key(key_file) or is_remote(registry) or os.path.exists(key_file):
        return False
    write_key_pair(key_file, None)
    return True


def publish(store, files: Mapping[str, bytes], annotations: Mapping[str, str], repository: str,
            private_key_pem: Optional[signing.PrivateKey], allow_unsigned: bool, channel: str,
            actor: Optional[str] = None, version: Optional[str] = None) -> releases.Release:
    """Pushes a release and puts it on ``channel`` for every device class it was gated for.

    Like TFX's Pusher, which does not copy a model it already pushed, a model whose bytes are
    already released is not pushed again: the existing release is returned (and put on the
    channel where it is not yet). Everything happens under the store's writer lock.
    """
    with store.lock():
        release = None if version else releases.find_model(store, files[releases.MODEL_FILE])
        if release is None:
            release = releases.push_release(store, files, annotations, repository, version=version,
                                            private_key_pem=private_key_pem, allow_unsigned=allow_unsigned)
        for device_class in targets_of(release.annotations):
            channels.set_channel(store, device_class, channel, release.version, actor=actor, action="push",
                                 only_if_changed=True, private_key=private_key_pem)
    return release


def release_run(run: RunArtifacts, destination: Destination, actor: Optional[str] = None,
                version: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Published:
    """Builds the run's release (``build_release``), signs it and pushes it to ``destination``,
    putting it on the destination's channel for every device class the size gate passed.

    Raises:
        PublishError, releases.ReleaseError, channels.ChannelError, http_registry.RegistryError,
        oci_layout.LayoutError: one paragraph naming what to fix.
    """
    files, annotations = build_release(run)
    key = signing_key_for(destination, environ)
    store = open_store(destination.registry, destination.repository, environ, destination.insecure, create=True)
    release = publish(store, files, annotations, destination.repository, key, destination.allow_unsigned,
                      destination.channel, actor=actor, version=version)
    return Published(release, f"{store.root}:{release.version}", key is not None, targets_of(release.annotations))


def targets_of(annotations: Mapping[str, str]) -> Sequence[str]:
    return [t for t in annotations.get(releases.TARGETS_ANNOTATION, "").split(",") if t]
