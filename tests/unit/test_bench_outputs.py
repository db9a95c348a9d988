"""pipeline/bench/outputs.py: digests that ignore how a runner laid its outputs out, and nothing else."""

import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

from pipeline.bench import outputs


def _example(label: str, value: float, extra: bool = True) -> tf.train.Example:
    feature = {"label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()])),
               "value": tf.train.Feature(float_list=tf.train.FloatList(value=[value]))}
    if extra:
        feature["speaker"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"s1"]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _write(folder, shards, gzipped=True):
    os.makedirs(folder, exist_ok=True)
    for i, records in enumerate(shards):
        path = os.path.join(folder, f"data-{i:05d}-of-{len(shards):05d}" + (".gz" if gzipped else ""))
        with tf.io.TFRecordWriter(path, options="GZIP" if gzipped else None) as writer:
            for record in records:
                writer.write(record)
    return folder


def _reordered_map(example: tf.train.Example) -> bytes:
    """The same example serialized with its features map in the reverse order (as another process may)."""
    reversed_example = tf.train.Example()
    for key in reversed(sorted(example.features.feature)):
        reversed_example.features.feature[key].CopyFrom(example.features.feature[key])
    return reversed_example.SerializeToString()


def test_examples_digest_ignores_shards_order_and_map_order(tmp_path):
    examples = [_example(f"w{i}", i / 7) for i in range(6)]
    one_shard = outputs.examples_digest(_write(tmp_path / "a", [[e.SerializeToString() for e in examples]]))
    shuffled = outputs.examples_digest(_write(tmp_path / "b", [
        [_reordered_map(e) for e in examples[3:]], [e.SerializeToString() for e in reversed(examples[:3])]]))
    plain = outputs.examples_digest(_write(tmp_path / "c", [[e.SerializeToString() for e in examples]], gzipped=False))
    assert one_shard == shuffled == plain
    assert one_shard.count == 6


@pytest.mark.parametrize("change", ["value", "missing", "duplicate", "feature"])
def test_examples_digest_sees_any_change_of_the_examples(tmp_path, change):
    examples = [_example(f"w{i}", i / 7) for i in range(6)]
    changed = list(examples)
    if change == "value":
        changed[2] = _example("w2", 2 / 7 + 1e-6)
    elif change == "missing":
        changed = changed[:-1]
    elif change == "duplicate":
        changed[5] = examples[4]
    else:
        changed[0] = _example("w0", 0.0, extra=False)
    a = outputs.examples_digest(_write(tmp_path / "a", [[e.SerializeToString() for e in examples]]))
    b = outputs.examples_digest(_write(tmp_path / "b", [[e.SerializeToString() for e in changed]]))
    assert a != b


def test_the_read_order_digest_sees_the_files_and_the_order_a_reader_sees(tmp_path):
    examples = [_example(f"w{i}", i / 7) for i in range(6)]
    records = [e.SerializeToString() for e in examples]
    reference = outputs.read_order_digest(_write(tmp_path / "a", [records[:3], records[3:]]))
    assert outputs.read_order_digest(_write(tmp_path / "map", [[_reordered_map(e) for e in examples[:3]],
                                                                records[3:]])) == reference
    assert outputs.read_order_digest(_write(tmp_path / "plain", [records[:3], records[3:]], gzipped=False)) != \
        reference   # other file names
    swapped = records[:2] + [records[3], records[2]] + records[4:]
    assert outputs.read_order_digest(_write(tmp_path / "order", [swapped[:3], swapped[3:]])) != reference
    assert outputs.read_order_digest(_write(tmp_path / "one", [records])) != reference   # one file, same sequence
    assert outputs.examples_digest(str(tmp_path / "one")) == outputs.examples_digest(str(tmp_path / "a"))


def _statistics(path, mean: float, features=("a", "b"), count=10):
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(name="train", num_examples=count)
    for name in features:
        feature = dataset.features.add()
        feature.path.step.append(name)
        feature.num_stats.mean = mean if name == "a" else 1.5
        feature.num_stats.common_stats.num_non_missing = count
    with open(path, "wb") as f:
        f.write(stats.SerializeToString())
    return str(path)


def test_statistics_in_another_feature_order_are_identical(tmp_path):
    a = _statistics(tmp_path / "a.pb", -24.38855049826882)
    b = _statistics(tmp_path / "b.pb", -24.38855049826882, features=("b", "a"))
    assert outputs.statistics_digest(a) == outputs.statistics_digest(b)
    comparison = outputs.compare_statistics(a, b)
    assert comparison.identical and comparison.equal


def test_statistics_an_ulp_apart_are_equal_but_not_identical(tmp_path):
    a = _statistics(tmp_path / "a.pb", -24.38855049826882)
    b = _statistics(tmp_path / "b.pb", -24.388550498268824)   # seen between one and two Beam threads
    assert outputs.statistics_digest(a) != outputs.statistics_digest(b)
    assert outputs.rounded_statistics_digest(a) == outputs.rounded_statistics_digest(b)
    comparison = outputs.compare_statistics(a, b)
    assert not comparison.identical and comparison.equal
    assert 0 < comparison.max_relative_difference < 1e-15


@pytest.mark.parametrize("other", [dict(mean=-24.3886), dict(mean=-24.38855049826882, count=11),
                                   dict(mean=-24.38855049826882, features=("a",))])
def test_statistics_that_really_differ_are_not_equal(tmp_path, other):
    a = _statistics(tmp_path / "a.pb", -24.38855049826882)
    b = _statistics(tmp_path / "b.pb", **other)
    assert outputs.rounded_statistics_digest(a) != outputs.rounded_statistics_digest(b)
    assert not outputs.compare_statistics(a, b).equal


def _with_sketches(path, *, boundary: float, median: float, top_label: str, count: int = 10, std_dev: float = 2.0,
                   label_count: int = 6):
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(name="train", num_examples=count)
    number = dataset.features.add()
    number.path.step.append("energy")
    number.num_stats.common_stats.num_non_missing = count
    number.num_stats.std_dev = std_dev
    number.num_stats.median = median
    bucket = number.num_stats.histograms.add(type=statistics_pb2.Histogram.QUANTILES).buckets.add()
    bucket.low_value, bucket.high_value, bucket.sample_count = -30.0, boundary, count / 2
    text = dataset.features.add()
    text.path.step.append("source")
    text.string_stats.unique = count
    text.string_stats.rank_histogram.buckets.add(low_rank=0, high_rank=0, label=top_label, sample_count=1)
    text.string_stats.top_values.add(value=top_label, frequency=2 if top_label.startswith("up") else 1)
    label = dataset.features.add()    # two values, both listed: the sketch counted them exactly
    label.path.step.append("label")
    label.string_stats.unique = 2
    for rank, (value, n) in enumerate((("yes", label_count), ("no", count - label_count))):
        label.string_stats.top_values.add(value=value, frequency=n)
        label.string_stats.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=value, sample_count=n)
    with open(path, "wb") as f:
        f.write(stats.SerializeToString())
    return str(path)


def test_the_exact_statistics_digest_ignores_only_what_tfdv_estimates_with_sketches(tmp_path):
    # What two worker counts gave at 3x: another quantile boundary and median, another file name on top
    # (the file names' top-k counts are estimates: 10 distinct values, one listed).
    a = _with_sketches(tmp_path / "a.pb", boundary=-31.24976, median=-24.507932, top_label="yes/27cc_nohash_3.wav")
    b = _with_sketches(tmp_path / "b.pb", boundary=-31.24581, median=-24.507720, top_label="up/5a4d_nohash_2.wav")
    assert outputs.rounded_statistics_digest(a) != outputs.rounded_statistics_digest(b)
    assert outputs.exact_statistics_digest(a) == outputs.exact_statistics_digest(b)
    for other in (dict(count=11), dict(std_dev=2.1), dict(label_count=7)):
        c = _with_sketches(tmp_path / "c.pb", boundary=-31.24976, median=-24.507932, top_label="yes/27cc_nohash_3.wav",
                           **other)
        assert outputs.exact_statistics_digest(a) != outputs.exact_statistics_digest(c)


def test_traced_function_names_lose_their_counter_but_keep_their_order():
    mapping = outputs.canonical_function_names(
        ["__inference_signature_wrapper_812", "__inference_signature_wrapper_160", "map_while_cond_683",
         "map_while_body_32", "plain"])
    assert mapping == {"__inference_signature_wrapper_160": "__inference_signature_wrapper#0",
                       "__inference_signature_wrapper_812": "__inference_signature_wrapper#1",
                       "map_while_cond_683": "map_while_cond#0", "map_while_body_32": "map_while_body#0",
                       "plain": "plain"}


def _saved_model(folder, scale: float, warm_up: int) -> str:
    """A saved function; ``warm_up`` functions traced before it shift TensorFlow's name counters."""
    for i in range(warm_up):
        tf.function(lambda x: x + i).get_concrete_function(tf.TensorSpec([None], tf.float32))
    module = tf.Module()
    module.f = tf.function(lambda x: tf.map_fn(lambda v: v * scale, x),
                           input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(folder))
    return os.path.join(str(folder), outputs.SAVED_MODEL_FILE)


def test_saved_model_digest_ignores_trace_counters_but_not_the_graph(tmp_path):
    first = _saved_model(tmp_path / "first", 2.0, warm_up=0)
    later = _saved_model(tmp_path / "later", 2.0, warm_up=5)
    other = _saved_model(tmp_path / "other", 3.0, warm_up=0)
    assert open(first, "rb").read() != open(later, "rb").read()
    assert outputs.saved_model_digest(first) == outputs.saved_model_digest(later)
    assert outputs.saved_model_digest(first) != outputs.saved_model_digest(other)


def test_transform_graph_digest_leaves_out_the_fingerprint_only(tmp_path):
    folder = tmp_path / "graph"
    _saved_model(folder / "transform_fn", 2.0, warm_up=0)
    (folder / "transformed_metadata").mkdir()
    (folder / "transformed_metadata" / "schema.pbtxt").write_text("feature { name: 'x' }\n")
    digests = outputs.transform_graph_digest(str(folder))
    assert "transform_fn/saved_model.pb" in digests and "transformed_metadata/schema.pbtxt" in digests
    assert not any(name.endswith(outputs.FINGERPRINT_FILE) for name in digests)
    assert any(name.startswith("transform_fn/variables/") for name in digests)
