"""What a release of a pipeline run contains, where it goes, and with which key: plain library.

Used by the OtaPusher executor and by ``tinyml-tfx push``; no TFX here.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence

from components.ota import http_registry, model_card, oci_layout, releases, signing

RELEASE_FILES = ("model.tflite", "model_data.cc", "model_data.h", "micro_op_resolver.h",
                 "quantization_report.json")
GATE_FILES = ("device_report.json", "device_report.html")
USERNAME_ENV, PASSWORD_ENV, TOKEN_ENV = ("TINYML_TFX_REGISTRY_USERNAME", "TINYML_TFX_REGISTRY_PASSWORD",
                                         "TINYML_TFX_REGISTRY_TOKEN")
SIGNING_KEY_ENV = "TINYML_TFX_SIGNING_KEY"
NORMALIZATION_FILE = "normalization.json"  # a motion model's per-channel constants (pipeline/tasks/motion)


class PublishError(ValueError):
    """A release that cannot be assembled or pushed; the message names the file or setting."""


def _read(folder: str, name: str) -> bytes:
    path = os.path.join(folder, name)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise PublishError(f"Release file {path} cannot be read ({err.strerror}); the quantizer and the size gate "
                           "write it, so rerun the pipeline.") from err


def release_files(quantized_dir: str, device_report_dir: str) -> Dict[str, bytes]:
    """The files a release carries: the model, its firmware sources (including any the model
    ships, e.g. an input normalization header) and the two reports."""
    files = {name: _read(quantized_dir, name) for name in RELEASE_FILES}
    extra = json.loads(files["quantization_report.json"]).get("firmware_files", [])
    files.update({name: _read(quantized_dir, name) for name in extra})
    files.update({name: _read(device_report_dir, name) for name in GATE_FILES})
    return files


def release_annotations(files: Mapping[str, bytes], frontend_hash: str, pipeline_name: str, run_id: str,
                        lineage: Mapping[str, Any]) -> Dict[str, str]:
    """The annotations a fleet needs without downloading the model (see ``releases``)."""
    from importlib import metadata

    gate = json.loads(files["device_report.json"])
    quantization = json.loads(files["quantization_report.json"])
    fidelity = quantization.get("fidelity", {})
    primary = gate["targets"][0]
    return {
        releases.TARGETS_ANNOTATION: ",".join(t["board"] for t in gate["targets"] if t["fits"]),
        releases.ARENA_ANNOTATION: str(gate["arena"]["smallest_bytes"]),
        releases.FLASH_ANNOTATION: str(gate["flash"]["total_bytes"]),
        releases.OPS_ANNOTATION: ",".join(f"{op['name']}:v{op['version']}" for op in gate["ops"]),
        releases.TFLM_VERSION_ANNOTATION: metadata.version("tflite-micro"),
        releases.TF_VERSION_ANNOTATION: metadata.version("tensorflow"),
        **({releases.FRONTEND_ANNOTATION: frontend_hash} if frontend_hash else {}),
        **({releases.NORMALIZATION_ANNOTATION: hashlib.sha256(files[NORMALIZATION_FILE]).hexdigest()}
           if NORMALIZATION_FILE in files else {}),
        releases.FLOAT_ACCURACY_ANNOTATION: f"{fidelity.get('float_accuracy', float('nan')):.4f}",
        releases.INT8_ACCURACY_ANNOTATION: f"{fidelity.get('quantized_accuracy', float('nan')):.4f}",
        releases.PIPELINE_ANNOTATION: pipeline_name,
        releases.RUN_ANNOTATION: run_id,
        releases.LINEAGE_ANNOTATION: json.dumps(dict(lineage), sort_keys=True),
        "dev.tinyml-tfx.latency.ms": str(primary.get("latency_ms")),
        oci_layout.TITLE: f"{pipeline_name} model",
    }


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
        provenance).encode()


def lineage(model: int, device_report: int, model_blessing: int, quantization_blessing: int,
            device_blessing: int) -> Dict[str, int]:
    """The ML Metadata ids a release records (its ``LINEAGE_ANNOTATION``): the quantized model,
    the size gate's report and the three blessings that let it through."""
    return {"model": model, "device_report": device_report, "model_blessing": model_blessing,
            "quantization_blessing": quantization_blessing, "device_blessing": device_blessing}


def open_store(registry: str, repository: str, environ: Optional[Mapping[str, str]] = None):
    """The embedded layout (a directory) or an HTTP registry, with credentials from ``environ``
    (``TINYML_TFX_REGISTRY_USERNAME``/``_PASSWORD`` or ``_TOKEN``, each also as ``..._FILE``)."""
    environ = os.environ if environ is None else environ
    if registry.startswith(("http://", "https://")):
        return http_registry.HttpRegistry(registry, repository, username=credential(environ, USERNAME_ENV),
                                          password=credential(environ, PASSWORD_ENV),
                                          token=credential(environ, TOKEN_ENV))
    return oci_layout.OciLayout(os.path.join(registry, repository))


def load_signing_key(key_file: Optional[str], environ: Optional[Mapping[str, str]] = None,
                     create: bool = False) -> Optional[bytes]:
    """The PEM private key from ``key_file`` or the environment; with ``create``, a new
    development key pair is written to ``key_file`` (and ``.pub``) when it does not exist."""
    environ = os.environ if environ is None else environ
    if environ.get(SIGNING_KEY_ENV):
        return environ[SIGNING_KEY_ENV].encode()
    if not key_file:
        return None
    if not os.path.exists(key_file) and create:
        private_pem, public_pem = signing.generate_key_pair()
        os.makedirs(os.path.dirname(key_file), exist_ok=True)
        with open(key_file + ".pub", "wb") as f:
            f.write(public_pem)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as f:
            f.write(private_pem)
    try:
        with open(key_file, "rb") as f:
            return f.read()
    except OSError as err:
        raise PublishError(f"Signing key {key_file} cannot be read ({err.strerror}). Point release.signing_key_file "
                           f"at the PEM key, or set {SIGNING_KEY_ENV}.") from err


def publish(store, files: Mapping[str, bytes], annotations: Mapping[str, str], repository: str,
            private_key_pem: Optional[bytes], allow_unsigned: bool, channel: str, actor: Optional[str] = None,
            version: Optional[str] = None) -> releases.Release:
    """Pushes a release and puts it on ``channel`` for every device class it was gated for.

    Like TFX's Pusher, which does not copy a model it already pushed, a model whose bytes are
    already released is not pushed again: the existing release is returned (and put on the
    channel where it is not yet).
    """
    from components.ota import channels

    release = None if version else releases.find_model(store, files[releases.MODEL_FILE])
    if release is None:
        release = releases.push_release(store, files, annotations, repository, version=version,
                                        private_key_pem=private_key_pem, allow_unsigned=allow_unsigned)
    for device_class in targets_of(release.annotations):
        channels.set_channel(store, device_class, channel, release.version, actor=actor, action="push",
                             only_if_changed=True)
    return release


def targets_of(annotations: Mapping[str, str]) -> Sequence[str]:
    return [t for t in annotations.get(releases.TARGETS_ANNOTATION, "").split(",") if t]
