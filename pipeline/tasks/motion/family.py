"""Motion as a task family: accelerometer/gyroscope CSV recordings cut into windows."""

from __future__ import annotations

from typing import Any, Dict, Tuple

from components.ota.model_card import CardText
from pipeline.tasks.base import DataLayoutError, Progress, ReportText, TaskFamily


class Motion(TaskFamily):
    """Windows of IMU channels -> per-channel normalization (TFT analyzers) -> a small 1-D CNN.

    The device normalizes with the constants the Trainer writes into ``normalization.h``;
    the release records that header's hash.
    """

    name = "motion"
    example_gen_id = "MotionExampleGen"
    data_unit = "recordings"
    preprocessing_fn = "pipeline.tasks.motion.preprocessing.preprocessing_fn"
    run_fn = "pipeline.tasks.motion.trainer.run_fn"
    search_module = "pipeline.tasks.motion.search"
    code_package = "pipeline.tasks.motion"
    config_sections = ("motion",)
    config_schema_file = "tasks/motion.schema.json"
    config_defaults = {("training", "model"): "conv1d", ("training", "width"): 16, ("data", "sample_rate"): 100}

    def check_config(self, config) -> None:
        from pipeline.config import ConfigError

        if config.motion.features == "spectrum" and config.motion.spectral_bins > config.window_samples // 2:
            raise ConfigError(
                f"Config file {config.source}: field 'motion.spectral_bins' is {config.motion.spectral_bins}, but a "
                f"window of {config.window_samples} samples has only {config.window_samples // 2} FFT bins above "
                "0 Hz. Fix: lower motion.spectral_bins or lengthen motion.window_ms.")

    def check_schema(self, config, schema) -> None:
        """Refuses a curated schema whose channels or window length differ from the config's."""
        from pipeline.config import ConfigError

        lengths = {f.name: [d.size for d in f.shape.dim] for f in schema.feature}
        for channel in config.motion.channels:
            if lengths.get(channel) != [config.window_samples]:
                found = "no such feature" if channel not in lengths else f"shape {lengths[channel]}"
                raise ConfigError(
                    f"The curated schema {config.data.schema} has {found} for channel '{channel}', but the config "
                    f"{config.source} cuts windows of {config.window_samples} samples (motion.window_ms at "
                    "data.sample_rate). Make the schema match, or set data.schema: null to let SchemaGen infer one.")

    # ------------------------------------------------------------------ data

    def example_gen(self, config):
        from components.motion_example_gen.component import MotionExampleGen

        m = config.motion
        return MotionExampleGen(
            input_base=config.data_root, labels=config.data.labels, channels=m.channels,
            sample_rate=config.data.sample_rate, window_samples=config.window_samples,
            hop_samples=config.hop_samples, timestamp_column=m.timestamp_column,
            timestamp_scale=m.timestamp_scale, encoding=m.encoding,
            max_skipped_fraction=config.requirements.max_skipped_fraction, seed=config.data.seed,
            **self.span_input(config), **self.example_gen_output(config)).with_id(self.example_gen_id)

    def check_layout(self, config) -> None:
        from components.ingestion import gfile_filesystem
        from components.motion_example_gen import recordings

        try:
            recordings.check_layout(self.dataset_root(config), config.data.labels, gfile_filesystem())
        except recordings.LayoutError as err:
            raise DataLayoutError(str(err)) from err

    def generation_spec(self, config):
        from pipeline.tasks.motion import generate

        m = config.motion
        return generate.MotionSpec(labels=tuple(config.data.labels), subjects=m.subjects,
                                   repetitions=m.repetitions, seconds=m.seconds,
                                   sample_rate=float(config.data.sample_rate), seed=config.data.seed)

    def generate_dataset(self, spec, out_dir: str, progress: Progress = None) -> Dict[str, Any]:
        from pipeline.tasks.motion import generate

        return generate.generate_dataset(spec, out_dir, progress=progress)

    # ------------------------------------------------------------------ features and training

    def transform_config(self, config) -> Dict[str, Any]:
        from pipeline.tasks.motion import preprocessing

        return {
            preprocessing.LABELS_CONFIG_KEY: list(config.data.labels),
            preprocessing.CHANNELS_CONFIG_KEY: list(config.motion.channels),
            preprocessing.WINDOW_CONFIG_KEY: config.window_samples,
            preprocessing.FEATURE_MODE_CONFIG_KEY: config.motion.features,
            preprocessing.BINS_CONFIG_KEY: config.motion.spectral_bins,
        }

    def model_input_shape(self, config) -> Tuple[int, int]:
        rows = config.motion.spectral_bins if config.motion.features == "spectrum" else config.window_samples
        return rows, len(config.motion.channels)

    def input_processing(self, config):
        """The sha256 of the normalization constants the Trainer writes (normalization.json, shipped)."""
        from components.ota import publish, releases
        from pipeline.tasks.motion import normalization

        return publish.InputProcessing(releases.NORMALIZATION_ANNOTATION, file=normalization.JSON_FILE)

    # ------------------------------------------------------------------ words

    def telemetry_channels(self, config):
        """The IMU channels after the per-channel normalization (the device's normalization.h), as configured."""
        return tuple(f"normalized_{c}" for c in config.motion.channels)

    def card_text(self, config, synthetic: bool) -> CardText:
        m = config.motion
        return CardText(
            title=config.pipeline_name,
            intended_use=(f"On-device recognition of {', '.join(config.data.labels)} from {len(m.channels)}-channel "
                          f"motion windows ({', '.join(m.channels)}; {m.window_ms} ms at "
                          f"{config.data.sample_rate:g} Hz), for microcontrollers running TensorFlow Lite Micro; "
                          f"designed for {config.target_device}. Not for safety-critical control or medical use."),
            data=("Synthetic: simulated 6-axis IMU gestures with per-recording variation and sensor noise, not "
                  "recordings of people. Splits are by subject." if synthetic
                  else f"The recordings at {config.data_root}. Splits are by subject or by the dataset's lists."),
            limitations=[
                ("Synthetic training data: accuracy on real wearers, mountings and sensors is unknown and likely "
                 "lower." if synthetic else "Accuracy holds for movements, sensors and mountings like the training "
                 "data only."),
                f"Windows of {m.window_ms} ms; continuous use needs a detection policy (averaging, thresholds).",
                "The device must normalize each channel with normalization.h from this release (mean and scale "
                "from the training split; its hash is in the release); raw samples give meaningless output.",
            ],
            labels=list(config.data.labels))

    def report_text(self, config) -> ReportText:
        inputs = "spectral bins" if config.motion.features == "spectrum" else "normalized samples"
        return ReportText(synthetic_data="simulated IMU gestures",
                          model_inputs=f"Model inputs ({inputs} x channels) of eval windows")
