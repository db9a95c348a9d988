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


def _args(registry, config, tmp_path):
    return ["--registry", registry, "--repository", config.repository, "--workdir", str(tmp_path / "w")]


def test_list_promote_pull_verify_and_rollback(registry, context, tmp_path):
    config, first = context
    common = _args(registry, config, tmp_path)
    listing = invoke("list", *common)
    assert listing.exit_code == 0, listing.output
    assert "0.1.0" in listing.output and "nano33ble_sense-canary" in listing.output
    assert f"run {first.run_id}" in listing.output

    promoted = invoke("promote", *common, "--device-class", "nano33ble_sense")
    assert promoted.exit_code == 0 and "nano33ble_sense-stable: (none) -> 0.1.0" in promoted.output

    out = tmp_path / "device"
    public_key = config.release.signing_key_file + ".pub"
    pulled = invoke("pull", *common, "--device-class", "nano33ble_sense", "--public-key", public_key,
                    "--output", str(out))
    assert pulled.exit_code == 0, pulled.output
    assert "signature and digests verified" in pulled.output
    model = open(os.path.join(first.quantization["uri"], "model.tflite"), "rb").read()
    assert (out / "model.tflite").read_bytes() == model

    other_frontend = invoke("pull", *common, "--device-class", "nano33ble_sense", "--public-key", public_key,
                            "--frontend-hash", "0" * 64, "--output", str(tmp_path / "other"))
    assert other_frontend.exit_code == 1 and "audio front end" in other_frontend.output
    assert "Traceback" not in other_frontend.output and not (tmp_path / "other").exists()

    no_earlier = invoke("rollback", *common, "--device-class", "nano33ble_sense")
    assert no_earlier.exit_code == 1 and "no earlier version" in no_earlier.output


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
    assert pulled.exit_code == 1 and "corrupt" in pulled.output.lower() and "Traceback" not in pulled.output
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
    assert again.exit_code == 0 and ":0.1.0 (" in again.output  # the same model is not released twice
    unknown = invoke("push", *common[:-1], "no-such-run")
    assert unknown.exit_code == 2 and first.run_id in unknown.output and "Traceback" not in unknown.output
