"""Keyword spotting as a task family: 1 s audio clips in the Speech Commands layout."""

from __future__ import annotations

from typing import Any, Dict, Tuple

from components.ota.model_card import CardText
from pipeline.tasks.base import DataLayoutError, Progress, ReportText, TaskFamily

# The streaming requirements, as config fields and as Kubeflow run parameters.
MAX_FALSE_ACCEPTS_PER_HOUR = "max_false_accepts_per_hour"
MAX_FALSE_REJECT_RATE = "max_false_reject_rate"
STREAM_SOURCE = "pipeline.tasks.kws.streams"


class KeywordSpotting(TaskFamily):
    """Clips -> TFLite Micro's audio front end (in Transform) -> DS-CNN; the device runs the same front end."""

    name = "keyword_spotting"
    example_gen_id = "AudioExampleGen"
    data_unit = "clips"
    preprocessing_fn = "pipeline.tasks.kws.preprocessing.preprocessing_fn"
    run_fn = "pipeline.tasks.kws.trainer.run_fn"
    search_module = "pipeline.tasks.kws.search"
    code_package = "pipeline.tasks.kws"
    config_sections = ("features", "streaming")
    config_fields = frozenset({("data", "words"), ("data", "unknown_fraction"), ("data", "silence_fraction"),
                               ("data", "clip_duration_ms"), ("data", "synthetic"), ("data", "max_trim_ms"),
                               ("requirements", MAX_FALSE_ACCEPTS_PER_HOUR), ("requirements", MAX_FALSE_REJECT_RATE)})
    config_schema_file = "tasks/keyword_spotting.schema.json"
    default_schema = "kws/schema.pbtxt"
    has_streaming_evaluator = True

    def check_config(self, config) -> None:
        from pipeline.config import ConfigError

        if config.data.classes:
            raise ConfigError(
                f"Config file {config.source}: field 'data.labels' is set, but keyword spotting names its classes in "
                "data.words (_silence_ and _unknown_ are added). Fix: remove data.labels and list the keywords in "
                "data.words.")

    def frontend_params(self, config) -> Dict[str, Any]:
        """The audio front end's parameters for this config."""
        from pipeline.tasks.kws import features

        f = config.features
        return features.frontend_params(f.window_ms, f.stride_ms, f.channels, config.data.sample_rate)

    # ------------------------------------------------------------------ data

    def example_gen(self, config):
        from components.audio_example_gen.component import AudioExampleGen

        data = config.data
        return AudioExampleGen(
            input_base=config.data_root, words=data.words, unknown_fraction=data.unknown_fraction,
            silence_fraction=data.silence_fraction, sample_rate=data.sample_rate,
            clip_samples=data.clip_samples, seed=data.seed,
            max_trim_samples=data.sample_rate * data.max_trim_ms // 1000,
            max_skipped_fraction=config.requirements.max_skipped_fraction,
            **self.span_input(config), **self.example_gen_output(config)).with_id(self.example_gen_id)

    def check_layout(self, config) -> None:
        from components.audio_example_gen import layout
        from components.ingestion import gfile_filesystem

        try:
            layout.check_layout(self.dataset_root(config), config.data.words, gfile_filesystem())
        except layout.LayoutError as err:
            raise DataLayoutError(str(err)) from err

    def generation_spec(self, config):
        from pipeline.tasks.kws import generate

        s = config.data.synthetic
        return generate.GenerationSpec(
            words=config.data.words, unknown_words=s.unknown_words, speakers=s.speakers,
            repetitions=s.repetitions, noise_seconds=s.noise_seconds, sample_rate=config.data.sample_rate,
            clip_samples=config.data.clip_samples, seed=config.data.seed, phrase_clips=s.phrase_clips)

    def generate_dataset(self, spec, out_dir: str, progress: Progress = None) -> Dict[str, Any]:
        from pipeline.tasks.kws import generate

        return generate.generate_dataset(spec, out_dir, progress=progress)

    # ------------------------------------------------------------------ features and training

    def transform_config(self, config) -> Dict[str, Any]:
        from pipeline.tasks.kws import features, preprocessing

        return {
            preprocessing.LABELS_CONFIG_KEY: list(config.data.labels),
            preprocessing.FRONTEND_CONFIG_KEY: self.frontend_params(config),
            preprocessing.CLIP_SAMPLES_CONFIG_KEY: config.data.clip_samples,
            preprocessing.WARMUP_MS_CONFIG_KEY: features.WARMUP_MS,
        }

    def model_input_shape(self, config) -> Tuple[int, int]:
        from pipeline.tasks.kws import features

        return features.feature_shape(self.frontend_params(config), config.data.clip_samples)

    # ------------------------------------------------------------------ streaming

    def runtime_parameters(self, config) -> Dict[str, Any]:
        from tfx import v1 as tfx

        r = config.requirements
        return {name: tfx.dsl.experimental.RuntimeParameter(name=name, ptype=float, default=float(value))
                for name, value in ((MAX_FALSE_ACCEPTS_PER_HOUR, r.max_false_accepts_per_hour),
                                    (MAX_FALSE_REJECT_RATE, r.max_false_reject_rate))}

    def stream_recipe(self, config):
        """The synthetic test streams: keywords, unknown words and phrases said by the test split's speakers."""
        import dataclasses

        from components.audio_example_gen.layout import TEST
        from pipeline.tasks.common.datasets import dataset_manifests
        from pipeline.tasks.kws import generate, streams

        # The voices of the dataset's test split: a generated dataset's own (its manifest), else the config's.
        generated = next((spec for spec in (generate.spec_of(m) for m in dataset_manifests(
            config.data_root, bool(config.data.training_spans))) if spec), None) if config.data_root else None
        spec = generated or self.generation_spec(config)
        s = config.streaming
        return streams.StreamRecipe(
            keywords=tuple(config.data.words),
            unknown_words=tuple(w for w in spec.unknown_words if w not in config.data.words),
            speakers=tuple(dataclasses.asdict(p) for p in generate.split_speakers(spec, TEST)),
            minutes=float(s.minutes), snr_db=tuple(float(v) for v in s.snr_db), seed=s.seed,
            sample_rate=config.data.sample_rate,
            speakers_source=("the synthetic dataset's test split" if generated or config.uses_synthetic_data
                             else "synthetic eSpeak NG voices, none of them the dataset's"))

    def stream_settings(self, config) -> Dict[str, Any]:
        """The StreamingEvaluator's source settings: the recipe (or the recordings) and the front end."""
        from pipeline.tasks.kws import streams

        recordings = config.streaming.recordings
        return streams.settings(None if recordings else self.stream_recipe(config), recordings,
                                self.frontend_params(config), self.model_input_shape(config)[0])

    def recording_source(self, config, files, shipped_settings=None):
        from pipeline.tasks.kws import streams

        if shipped_settings:
            return STREAM_SOURCE, streams.for_files(shipped_settings, files)
        return STREAM_SOURCE, streams.settings(None, None, self.frontend_params(config),
                                               self.model_input_shape(config)[0], files=files)

    def write_streams(self, config, out_dir: str):
        from pipeline.tasks.kws import streams

        return streams.write_streams(self.stream_recipe(config), out_dir)

    @property
    def field_shifts(self):
        from pipeline.tasks.kws import streams

        return streams.SHIFTS

    def write_field_span(self, config, shift, minutes, voices, seed, out_dir, log=lambda m: None):
        from pipeline.tasks.kws import field_span

        if shift not in self.field_shifts:
            from components.errors import PipelineInputError

            raise PipelineInputError(f"Unknown field shift '{shift}'; the shifts are {', '.join(self.field_shifts)}.")
        return field_span.write_field_span(
            config, field_span.FieldCampaign(shift=shift, minutes=minutes, voices=voices, seed=seed), out_dir, log)

    def write_sample_span(self, config, samples, out_dir, synthetic=False, log=lambda m: None, known_splits=None,
                          source=None):
        from pipeline.tasks.kws import field_span

        return field_span.write_sample_span(config, samples, out_dir, synthetic, log, known_splits, source)

    def field_streams(self, config, shift, seed, minutes):
        """The test streams' recipe (unseen speakers of the dataset's distribution) at ``minutes`` and ``seed``;
        a shift replaces the backgrounds with one the dataset lacks, at low SNR (0 and 5 dB)."""
        import dataclasses

        from pipeline.tasks.kws import streams

        recipe = dataclasses.replace(self.stream_recipe(config), minutes=float(minutes), seed=int(seed), shift=shift,
                                     **({"snr_db": (0.0, 5.0)} if shift else {}))
        return STREAM_SOURCE, streams.settings(recipe, None, self.frontend_params(config),
                                               self.model_input_shape(config)[0])

    def streaming_evaluator(self, config, quantized_model, device_report, knobs):
        from components.streaming_evaluator.component import StreamingEvaluator

        s = config.streaming
        return StreamingEvaluator(
            quantized_model=quantized_model, device_report=device_report, labels=config.data.labels,
            keywords=config.data.words, source_module=STREAM_SOURCE, source_settings=self.stream_settings(config),
            max_false_accepts_per_hour=knobs[MAX_FALSE_ACCEPTS_PER_HOUR],
            max_false_reject_rate=knobs[MAX_FALSE_REJECT_RATE], average_window_ms=s.average_window_ms,
            suppression_ms=s.suppression_ms, minimum_count=s.minimum_count,
            inference_stride_ms=s.inference_stride_ms or 0, tolerance_ms=s.tolerance_ms)

    # ------------------------------------------------------------------ device contract and words

    def input_processing_hash(self, config) -> str:
        """The audio front end's hash: firmware computing other features gets meaningless output."""
        from pipeline.tasks.kws import features

        return features.frontend_hash(self.frontend_params(config))

    def input_processing(self, config):
        from components.ota import publish, releases

        return publish.InputProcessing(releases.FRONTEND_ANNOTATION, sha256=self.input_processing_hash(config))

    def telemetry_channels(self, config):
        """The audio front end's filterbank channels, lowest band first."""
        return tuple(f"filterbank_{i:02d}" for i in range(config.features.channels))

    def provenance(self, config) -> Dict[str, str]:
        return {"audio front-end hash": self.input_processing_hash(config)}

    def card_text(self, config, synthetic: bool) -> CardText:
        f = config.features
        return CardText(
            title=config.pipeline_name,
            intended_use=(f"On-device keyword spotting of {', '.join(config.data.words)} (plus silence and unknown "
                          f"words) on 1 s, {config.data.sample_rate // 1000} kHz audio, for microcontrollers running "
                          f"TensorFlow Lite Micro; designed for {config.target_device}. Not for speaker "
                          "identification, transcription or safety-critical control."),
            data=("Synthetic: eSpeak NG speech with generated noise, not recordings of people. Splits are by speaker."
                  if synthetic else f"The dataset at {config.data_root}. Splits are by speaker."),
            limitations=[
                ("Synthetic training data: accuracy on real speech is unknown and likely lower; accents, microphones "
                 "and rooms beyond the synthetic ones are not represented." if synthetic
                 else "Accuracy holds for speech like the training data only."),
                "Trained on one-second clips with one word; on a stream it needs the detection settings of the "
                "release's postprocessing.h, and performs as the streaming figures say.",
                f"The device must compute features with TFLite Micro's audio front end: {f.window_ms} ms window, "
                f"{f.stride_ms} ms stride, {f.channels} channels (the front-end hash below); other features make "
                "the model's output meaningless.",
            ],
            labels=list(config.data.labels))

    def report_text(self, config) -> ReportText:
        return ReportText(
            synthetic_data="generated eSpeak NG speech",
            model_inputs="Feature maps (TFLite Micro audio front end, frames x channels) of eval clips")
