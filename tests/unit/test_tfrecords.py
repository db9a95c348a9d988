"""Reading TFRecord files gzipped or plain, told apart by their suffix as TFX's readers do."""

import pytest
import tensorflow as tf

from components import tfrecords


def _write(path, records, gzipped):
    with tf.io.TFRecordWriter(str(path), options="GZIP" if gzipped else None) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def test_gzipped_and_plain_files_read_the_same_records(tmp_path):
    records = [b"one", b"two", b"three"]
    gzipped = [_write(tmp_path / "a-00000-of-00002.gz", records[:2], True),
               _write(tmp_path / "a-00001-of-00002.gz", records[2:], True)]
    plain = [_write(tmp_path / "b-00000-of-00001", records, False)]

    assert tfrecords.compression_type(gzipped) == "GZIP" and tfrecords.compression_type(plain) == ""
    assert [r.numpy() for r in tfrecords.record_dataset(gzipped)] == records
    assert [r.numpy() for r in tfrecords.record_dataset(plain)] == records


def test_a_mix_of_gzipped_and_plain_files_is_refused_with_the_files_named(tmp_path):
    with pytest.raises(ValueError, match=r"mix gzipped \('.gz'\) and plain files.*re-run the component"):
        tfrecords.compression_type([str(tmp_path / "x.gz"), str(tmp_path / "y")])
