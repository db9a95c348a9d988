"""The field campaign's recipe: new voices in the shifted condition, and phrases the streaming
evaluation never plays (a model trained on the campaign must not have heard the test streams' speech)."""

import numpy as np

from pipeline.tasks.kws import field_span, generate, streams
from tests.helpers import tiny_config


def test_the_campaign_says_training_phrases_never_the_test_streams(tmp_path):
    config = tiny_config(str(tmp_path / "w"), str(tmp_path / "data"))
    field = field_span.recipe(config, field_span.FieldCampaign(shift="rain", minutes=2, voices=3))
    assert field.phrases and not set(field.phrases) & set(streams.PHRASES)
    assert set(field.phrases) <= set(generate.TRAINING_PHRASES)
    keywords = {w.lower() for w in config.data.words}
    assert not any(keywords & set(p.lower().split()) for p in field.phrases)
    assert field.shift == "rain" and len(field.speakers) == 3


def test_a_phrase_cut_stays_within_the_phrase_and_its_edges():
    rate, length = 16000, 16000
    edge = int(generate.PHRASE_EDGE_SECONDS * rate)
    rng = np.random.default_rng(0)
    for start, end in ((10_000, 50_000), (10_000, 18_000)):   # longer and shorter than a clip
        for _ in range(200):
            first = field_span._phrase_cut_centre(start, end, length, rate, rng) - length // 2
            assert start - edge <= first and first + length <= max(end + edge, start - edge + length)


def test_collect_refuses_impossible_campaigns_before_reading_anything(tmp_path):
    from click.testing import CliRunner

    from pipeline.ui.cli import main

    for option, value in (("--voices", "0"), ("--minutes", "0"), ("--span", "-1")):
        result = CliRunner().invoke(main, ["fleet", "collect", "--workdir", str(tmp_path), "--shift", "rain",
                                           option, value])
        assert result.exit_code == 2 and option in result.output and "Traceback" not in result.output
    assert not any(tmp_path.iterdir())
