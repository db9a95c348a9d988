import json
import os

import pytest

from components.ota import oci_layout

ARTIFACT_TYPE = "application/vnd.tinyml-tfx.model.v1"


def _push(layout, content=b"model bytes", tag="1.0.0"):
    layer = layout.put_blob(content, "application/vnd.tinyml-tfx.tflite", {oci_layout.TITLE: "model.tflite"})
    manifest = oci_layout.release_manifest([layer], ARTIFACT_TYPE, {"tinyml-tfx.version": tag}, layout)
    descriptor = layout.put_manifest(manifest)
    layout.tag(tag, descriptor)
    return descriptor


def test_layout_is_a_standard_oci_layout_and_round_trips(tmp_path):
    layout = oci_layout.OciLayout(str(tmp_path / "reg"))
    descriptor = _push(layout)
    assert json.load(open(tmp_path / "reg" / "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    index = json.load(open(tmp_path / "reg" / "index.json"))
    assert index["mediaType"] == oci_layout.INDEX_MEDIA_TYPE and len(index["manifests"]) == 1
    assert layout.resolve("1.0.0")["digest"] == descriptor["digest"]
    manifest = layout.get_manifest(descriptor["digest"])
    assert manifest["artifactType"] == ARTIFACT_TYPE and manifest["config"]["mediaType"] == oci_layout.EMPTY_MEDIA_TYPE
    assert layout.get_blob(manifest["layers"][0]["digest"]) == b"model bytes"
    assert manifest["layers"][0]["annotations"][oci_layout.TITLE] == "model.tflite"


def test_a_tampered_blob_is_detected(tmp_path):
    layout = oci_layout.OciLayout(str(tmp_path / "reg"))
    descriptor = _push(layout)
    layer_digest = layout.get_manifest(descriptor["digest"])["layers"][0]["digest"]
    with open(os.path.join(tmp_path, "reg", "blobs", "sha256", layer_digest.split(":")[1]), "wb") as f:
        f.write(b"evil bytes")
    with pytest.raises(oci_layout.LayoutError, match="corrupt"):
        layout.get_blob(layer_digest)


def test_an_interrupted_push_leaves_no_tag_and_a_retry_succeeds(tmp_path):
    layout = oci_layout.OciLayout(str(tmp_path / "reg"))
    layout.put_blob(b"half a release", "application/octet-stream")  # blobs written, then the process dies
    assert layout.tags() == {}
    _push(layout, b"half a release")
    assert set(layout.tags()) == {"1.0.0"}


def test_tagging_needs_the_manifest_stored_and_moves_existing_tags(tmp_path):
    layout = oci_layout.OciLayout(str(tmp_path / "reg"))
    first = _push(layout, b"v1", "1.0.0")
    second = _push(layout, b"v2", "1.0.1")
    layout.tag("stable", first)
    layout.tag("stable", second)
    assert layout.resolve("stable")["digest"] == second["digest"] and len(layout.tags()) == 3
    with pytest.raises(oci_layout.LayoutError, match="missing"):
        layout.tag("ghost", {"digest": "sha256:" + "0" * 64, "mediaType": oci_layout.MANIFEST_MEDIA_TYPE, "size": 1})


def test_a_corrupt_blob_on_disk_is_replaced_when_pushed_again(tmp_path):
    layout = oci_layout.OciLayout(str(tmp_path / "reg"))
    descriptor = layout.put_blob(b"model_data.h contents", "text/x-c")
    path = tmp_path / "reg" / "blobs" / "sha256" / descriptor["digest"].split(":")[1]
    path.write_bytes(b"flipped bits")
    assert layout.put_blob(b"model_data.h contents", "text/x-c") == descriptor
    assert layout.get_blob(descriptor["digest"]) == b"model_data.h contents"


def test_opening_without_create_never_makes_a_registry(tmp_path):
    with pytest.raises(oci_layout.LayoutError, match="no OCI registry at .*misspelt.*never creates"):
        oci_layout.OciLayout(str(tmp_path / "misspelt"), create=False)
    assert not (tmp_path / "misspelt").exists()
    oci_layout.OciLayout(str(tmp_path / "reg"))
    assert oci_layout.OciLayout(str(tmp_path / "reg"), create=False).tags() == {}


def test_a_conditional_tag_write_refuses_when_the_tag_changed(tmp_path):
    layout = oci_layout.OciLayout(str(tmp_path / "reg"))
    first, second = _push(layout, b"v1", "1.0.0"), _push(layout, b"v2", "1.0.1")
    layout.tag("stable", first, previous=None)
    with pytest.raises(oci_layout.ConcurrentWrite, match="another writer won"):
        layout.tag("stable", second, previous=None)  # created meanwhile
    layout.tag("stable", second, previous=first["digest"])
    with pytest.raises(oci_layout.ConcurrentWrite):
        layout.tag("stable", first, previous=first["digest"])
    assert layout.resolve("stable")["digest"] == second["digest"]


def test_a_second_writer_waits_for_the_lock_and_gives_up_with_a_paragraph(tmp_path):
    import threading

    layout = oci_layout.OciLayout(str(tmp_path / "reg"))
    other = oci_layout.OciLayout(str(tmp_path / "reg"), lock_timeout=0.3)  # another process's view
    held, release = threading.Event(), threading.Event()

    def writer():
        with layout.lock():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    held.wait(5)
    with pytest.raises(oci_layout.LayoutError, match=r"Another writer \(pid \d+ since .*\) has held the lock"):
        with other.lock():
            pass
    release.set()
    thread.join()
    with other.lock():  # free again
        pass


def test_a_registry_folder_that_cannot_be_written_is_one_paragraph(tmp_path):
    """A real write failure (the registry path runs through a file), not a mocked one."""
    (tmp_path / "not-a-folder").write_text("")
    with pytest.raises(oci_layout.LayoutError, match="cannot be written .*read-only, full or not a folder.*Nothing "
                                                     "was tagged"):
        oci_layout.OciLayout(str(tmp_path / "not-a-folder" / "reg"))
