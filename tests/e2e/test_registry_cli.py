"""The registry verbs a release manager and a gateway use, on the release the tiny pipeline pushed."""

import os
import shutil

import pytest

from tests.helpers import write_config_yaml
from tests.unit.test_cli import invoke


@pytest.fixture()
def registry(runs_registry, tmp_path):
    """A copy of the tiny run's registry (these tests promote, roll back and tamper)."""
    copy = tmp_path / "registry"
    shutil.copytree(runs_registry, copy)
    return str(copy)


@pytest.fixture(scope="module")
def runs_registry(tiny_pipeline_runs):
    config, _ = tiny_pipeline_runs
    return config.release.registry


@pytest.fixture(scope="module")
def context(tiny_pipeline_runs):
    config, (first, _, _) = tiny_pipeline_runs
    return config, first


def _said(result, text):
    """Whether the command's output says ``text`` (error paragraphs are wrapped at 100 columns)."""
    return text in " ".join(result.output.split())


def _args(registry, config, tmp_path):
    """The registry copy, with the run's workdir (whose development key signs channel moves)."""
    return ["--registry", registry, "--repository", config.repository,
            "--workdir", os.path.dirname(config.release.registry)]


def test_list_promote_pull_verify_and_rollback(registry, context, tmp_path):
    config, first = context
    common = _args(registry, config, tmp_path)
    listing = invoke("list", *common)
    assert listing.exit_code == 0, listing.output
    assert "0.1.0" in listing.output and "nano33ble_sense-canary" in listing.output
    assert first.run_id in listing.output and "recorded, signed" in listing.output

    promoted = invoke("promote", *common, "--device-class", "nano33ble_sense")
    assert promoted.exit_code == 0 and "nano33ble_sense-stable: (none) -> 0.1.0" in promoted.output, promoted.output

    out = tmp_path / "device"
    public_key = config.release.signing_key_file + ".pub"
    pulled = invoke("pull", *common, "--device-class", "nano33ble_sense", "--public-key", public_key,
                    "--output", str(out))
    assert pulled.exit_code == 0, pulled.output
    assert _said(pulled, "signature, history and digests verified")
    model = open(os.path.join(first.quantization["uri"], "model.tflite"), "rb").read()
    assert (out / "model.tflite").read_bytes() == model

    other_frontend = invoke("pull", *common, "--device-class", "nano33ble_sense", "--public-key", public_key,
                            "--frontend-hash", "0" * 64, "--output", str(tmp_path / "other"))
    assert other_frontend.exit_code == 1 and _said(other_frontend, "audio front end")
    assert "Traceback" not in other_frontend.output and not (tmp_path / "other").exists()

    no_earlier = invoke("rollback", *common, "--device-class", "nano33ble_sense")
    assert no_earlier.exit_code == 1 and _said(no_earlier, "no earlier version")


def test_a_tampered_model_blob_is_refused_by_the_gateway(registry, context, tmp_path):
    config, _ = context
    common = _args(registry, config, tmp_path)
    blobs = os.path.join(registry, config.repository, "blobs", "sha256")
    model_blob = max((os.path.join(blobs, name) for name in os.listdir(blobs)), key=os.path.getsize)
    with open(model_blob, "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff\xff\xff")
    pulled = invoke("pull", *common, "--device-class", "nano33ble_sense", "--channel", "canary",
                    "--public-key", config.release.signing_key_file + ".pub", "--output", str(tmp_path / "out"))
    assert pulled.exit_code == 1 and _said(pulled, "is corrupt") and "Traceback" not in pulled.output
    assert not (tmp_path / "out").exists()


def test_push_releases_the_latest_blessed_run_with_its_lineage_once(tiny_pipeline_runs, tmp_path):
    import json

    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from components.ota import oci_layout, releases

    config, (first, _, _) = tiny_pipeline_runs
    common = ["--config", write_config_yaml(config, str(tmp_path / "tiny.yaml")), "--workdir", os.path.dirname(config.release.registry),
              "--registry", str(tmp_path / "fresh"), "--run", first.run_id]  # other tests add later runs

    pushed = invoke("push", *common)
    assert pushed.exit_code == 0, pushed.output
    assert ":0.1.0 (sha256:" in pushed.output and "nano33ble_sense" in pushed.output
    store = oci_layout.OciLayout(os.path.join(str(tmp_path / "fresh"), config.repository))
    annotations = store.get_manifest(store.resolve("0.1.0")["digest"])["annotations"]
    lineage = json.loads(annotations[releases.LINEAGE_ANNOTATION])
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    mlmd = metadata_store.MetadataStore(connection)
    assert mlmd.get_artifacts_by_id([lineage["model"]])[0].uri == first.quantization["uri"]
    assert len(mlmd.get_artifacts_by_id(list(lineage.values()))) == 5
    # By hand as by the pipeline: the streaming evaluation's settings go with the model.
    from components.streaming_evaluator import release as streaming_release

    streaming_ids = json.loads(annotations[streaming_release.LINEAGE_ANNOTATION])
    assert mlmd.get_artifacts_by_id([streaming_ids["streaming_evaluation"]])[0].uri == first.streaming["uri"]
    files = releases.pull_release(store, "0.1.0", config.repository, None)
    assert annotations[streaming_release.THRESHOLD_ANNOTATION] == str(first.streaming["detection_threshold"])
    assert "postprocessing.h" in files and "## Streaming" in files["model_card.md"].decode()

    again = invoke("push", *common)
    assert again.exit_code == 0 and _said(again, ":0.1.0 (")  # the same model is not released twice
    unknown = invoke("push", *common[:-1], "no-such-run")
    assert unknown.exit_code == 2 and first.run_id in unknown.output and "Traceback" not in unknown.output


def test_rollback_is_taken_by_a_gateway_and_a_hand_re_tag_is_not(registry, context, tmp_path):
    from components.ota import oci_layout

    config, first = context
    common = _args(registry, config, tmp_path)
    key_args = ["--public-key", config.release.signing_key_file + ".pub"]
    out = tmp_path / "device"
    assert invoke("promote", *common, "--device-class", "pico").exit_code == 0
    pushed = invoke("push", "--config", write_config_yaml(config, str(tmp_path / "tiny.yaml")), "--workdir",
                    os.path.dirname(config.release.registry), "--registry", registry, "--version", "0.2.0",
                    "--run", first.run_id)  # other tests add later runs
    assert pushed.exit_code == 0, pushed.output
    assert invoke("promote", *common, "--device-class", "pico").exit_code == 0
    assert invoke("pull", *common, "--device-class", "pico", *key_args, "--output", str(out)).exit_code == 0

    store = oci_layout.OciLayout(os.path.join(registry, config.repository), create=False)
    store.tag("pico-stable", store.resolve("0.1.0"))  # by hand: no signed record
    state = (out / ".tinyml-tfx-gateway.json").read_bytes()
    refused = invoke("pull", *common, "--device-class", "pico", *key_args, "--output", str(out))
    assert refused.exit_code == 1 and _said(refused, "moved outside tinyml-tfx")
    assert (out / ".tinyml-tfx-gateway.json").read_bytes() == state
    listing = invoke("list", *common)
    assert "MOVED OUTSIDE" in listing.output

    store.tag("pico-stable", store.resolve("0.2.0"))  # put back
    rolled = invoke("rollback", *common, "--device-class", "pico")
    assert rolled.exit_code == 0 and _said(rolled, "0.2.0 -> 0.1.0") and _said(rolled, "signed rollback record")
    taken = invoke("pull", *common, "--device-class", "pico", *key_args, "--output", str(out))
    assert taken.exit_code == 0 and _said(taken, "pico-stable = 0.1.0"), taken.output
    other = invoke("pull", *common, "--device-class", "pico", *key_args, "--current-version", "0.2.1",
                   "--output", str(tmp_path / "newer-device"))
    assert other.exit_code == 1 and _said(other, "no signed rollback record authorizes 0.2.1 -> 0.1.0")
    assert not (tmp_path / "newer-device").exists()


def test_a_pull_from_a_misspelt_registry_creates_nothing(context, tmp_path):
    config, _ = context
    pulled = invoke("pull", "--registry", str(tmp_path / "regsitry"), "--repository", config.repository,
                    "--workdir", str(tmp_path / "w"), "--device-class", "pico", "--public-key",
                    config.release.signing_key_file + ".pub", "--output", str(tmp_path / "out"))
    assert pulled.exit_code == 1 and _said(pulled, "no OCI registry at") and "Traceback" not in pulled.output
    assert not (tmp_path / "regsitry").exists() and not (tmp_path / "out").exists()


def test_an_encrypted_key_from_keys_generate_signs_a_push_with_its_passphrase_only(tiny_pipeline_runs, tmp_path,
                                                                                   monkeypatch):
    import yaml

    from components.ota import oci_layout

    config, (first, _, _) = tiny_pipeline_runs
    key_file = str(tmp_path / "keys" / "release.key")
    monkeypatch.setenv("COSIGN_PASSWORD", "release passphrase")
    generated = invoke("keys", "generate", "--output", key_file)
    assert generated.exit_code == 0, generated.output
    assert open(key_file, "rb").read().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    again = invoke("keys", "generate", "--output", key_file)
    assert again.exit_code == 2 and _said(again, "never overwritten")

    path = write_config_yaml(config, str(tmp_path / "tiny.yaml"))
    raw = yaml.safe_load(open(path))
    raw.setdefault("release", {})["signing_key_file"] = key_file
    yaml.safe_dump(raw, open(path, "w"))
    common = ["--config", path, "--workdir", os.path.dirname(config.release.registry),
              "--registry", str(tmp_path / "fleet"), "--run", first.run_id]
    monkeypatch.setenv("COSIGN_PASSWORD", "not the passphrase")
    wrong = invoke("push", *common)
    assert wrong.exit_code == 1 and _said(wrong, "could not be decrypted: the passphrase")
    assert "Traceback" not in wrong.output and not (tmp_path / "fleet").exists()
    monkeypatch.setenv("COSIGN_PASSWORD", "release passphrase")
    pushed = invoke("push", *common)
    assert pushed.exit_code == 0, pushed.output
    store = oci_layout.OciLayout(os.path.join(str(tmp_path / "fleet"), config.repository), create=False)
    assert set(t for t in store.tags() if t[0].isdigit()) == {"0.1.0"}
    monkeypatch.setenv("TINYML_TFX_SIGNING_KEY", open(config.release.signing_key_file).read())
    both = invoke("push", *common)
    assert both.exit_code == 1 and _said(both, "Two signing keys")


def test_credentials_over_plain_http_to_another_host_need_insecure(tiny_pipeline_runs, tmp_path, monkeypatch):
    import socket

    from tests.helpers import non_loopback_address

    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no network interface besides loopback")
    with socket.socket() as closed:
        closed.bind((address, 0))
        port = closed.getsockname()[1]  # nothing listens there once this socket closes
    config, (first, _, _) = tiny_pipeline_runs
    monkeypatch.setenv("TINYML_TFX_REGISTRY_USERNAME", "pusher")
    monkeypatch.setenv("TINYML_TFX_REGISTRY_PASSWORD", "s3cret")
    monkeypatch.setenv("TINYML_TFX_SIGNING_KEY", open(config.release.signing_key_file).read())
    common = ["--config", write_config_yaml(config, str(tmp_path / "tiny.yaml")), "--workdir",
              os.path.dirname(config.release.registry), "--registry", f"http://{address}:{port}", "--run", first.run_id]
    refused = invoke("push", *common)
    assert refused.exit_code == 1 and _said(refused, "plain HTTP") and _said(refused, "--insecure")
    assert "s3cret" not in refused.output
    accepted = invoke("push", *common, "--insecure")  # the user accepts it; nothing listens there
    assert accepted.exit_code == 1 and _said(accepted, "unreachable")


def test_a_release_builds_the_same_from_artifacts_on_an_object_store(context):
    """On Kubeflow the pipeline root is an object store (gs://); TensorFlow's ram:// filesystem stands in for
    one here. The release read from there equals the one read from the local artifacts."""
    import dataclasses

    import tensorflow as tf

    from components.ota import publish
    from components.streaming_evaluator import release as streaming_release
    from pipeline import pipeline as tinyml_pipeline
    from pipeline.ui import registry_cli

    config, first = context

    def to_ram(folder):
        target = f"ram://release-test/{os.path.basename(os.path.dirname(folder))}/{os.path.basename(folder)}"
        for name in os.listdir(folder):
            if os.path.isfile(os.path.join(folder, name)):
                tf.io.gfile.makedirs(target)
                tf.io.gfile.copy(os.path.join(folder, name), f"{target}/{name}", overwrite=True)
        return target

    local = registry_cli._run_artifacts(config, first)
    ids = first.artifact_ids[tinyml_pipeline.STREAMING_EVALUATOR]
    remote = dataclasses.replace(
        local, quantized_dir=to_ram(local.quantized_dir), device_report_dir=to_ram(local.device_report_dir),
        test_evaluation_dir=to_ram(local.test_evaluation_dir),
        additions=(streaming_release.addition(to_ram(first.streaming["uri"]), ids["evaluation"], ids["blessing"]),))
    assert remote.quantized_dir.startswith("ram://")
    assert publish.build_release(remote) == publish.build_release(local)
    missing = dataclasses.replace(remote, device_report_dir="ram://release-test/nowhere")
    with pytest.raises(publish.PublishError, match="ram://release-test/nowhere/device_report.json cannot be read"):
        publish.build_release(missing)
