"""The design requirements of one model: a YAML file, validated, as frozen dataclasses.

One ``PipelineConfig`` flows from the CLI into ``create_pipeline``; nothing else
reads configuration.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any, Dict, Optional, Tuple

import jsonschema
import yaml

import schemas

CONFIG_SCHEMA_FILE = "pipeline_config.schema.json"
DEFAULT_SCHEMA = str(schemas.SCHEMA_DIR / "kws" / "schema.pbtxt")
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "kws.yaml")
PROJECT_DIR = pathlib.Path(__file__).resolve().parent.parent  # the checkout, or the image's project_dir


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, the field and the fix."""


class _NoFamily:
    """Stands in for a family when ``task`` itself is missing or not a string: the shared schema alone."""

    config_sections: Tuple[str, ...] = ()
    config_schema_file = ""


@dataclasses.dataclass(frozen=True)
class Requirements:
    min_accuracy: float
    max_regression: float = 0.01
    max_quantization_drop: float = 0.01
    max_latency_ms: Optional[float] = None
    max_skipped_fraction: float = 0.1
    min_train_examples_per_class: int = 10
    min_eval_examples_per_class: int = 3    # and test
    max_false_accepts_per_hour: float = 1.0     # keyword spotting: the streaming evaluator's budget
    max_false_reject_rate: float = 0.5          # and the false-reject rate it blesses at most


@dataclasses.dataclass(frozen=True)
class QuantizationConfig:
    mode: str = "int8"
    calibration_examples: int = 300


@dataclasses.dataclass(frozen=True)
class SyntheticData:
    speakers: int = 60
    repetitions: int = 3
    unknown_words: Tuple[str, ...] = ("bed", "bird", "cat", "dog", "happy", "house", "marvin",
                                      "sheila", "tree", "wow")
    noise_seconds: int = 60
    phrase_clips: int = 0           # per speaker: one-second cuts of everyday phrases, as _unknown_


@dataclasses.dataclass(frozen=True)
class DataConfig:
    words: Tuple[str, ...] = ()     # keyword spotting: the keywords (silence and unknown are added)
    classes: Tuple[str, ...] = ()   # motion: the classes, as data.labels names them
    root: Optional[str] = None
    schema: str = ""                # the curated TFDV schema; "" lets SchemaGen infer one
    unknown_fraction: float = 0.1
    silence_fraction: float = 0.1
    sample_rate: int = 16000
    clip_duration_ms: int = 1000
    max_trim_ms: int = 100          # keyword spotting: longer clips are skipped, not cut
    seed: int = 59185
    training_spans: int = 0         # > 0: root holds span-N datasets; train on the newest this many
    # The ExampleGen's TFRecords: "none" or "gzip" (TFX's own). Clips of PCM audio shrink 1.26x in gzip, for
    # more CPU than anything else in the data stages cost (pipeline/bench/SCALE.md).
    examples_compression: str = "none"
    synthetic: SyntheticData = SyntheticData()

    @property
    def clip_samples(self) -> int:
        return self.sample_rate * self.clip_duration_ms // 1000

    @property
    def labels(self) -> Tuple[str, ...]:
        """Class names in index order: for keyword spotting silence, unknown, then the words
        (as micro_speech); for motion the configured classes."""
        if self.classes:
            return tuple(self.classes)
        return ("_silence_", "_unknown_") + tuple(self.words)


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    window_ms: int = 30
    stride_ms: int = 20
    channels: int = 40


@dataclasses.dataclass(frozen=True)
class StreamingConfig:
    """Keyword spotting's streaming evaluation: the test streams and the device's post-processing."""

    minutes: float = 30.0
    snr_db: Tuple[float, ...] = (5.0, 15.0, 25.0)
    seed: int = 4242
    recordings: Optional[str] = None        # a folder of long WAV recordings with label files, instead
    inference_stride_ms: Optional[int] = None   # None: the target board's estimated time per inference
    average_window_ms: int = 1000
    suppression_ms: int = 1500
    minimum_count: int = 2
    tolerance_ms: int = 1000


@dataclasses.dataclass(frozen=True)
class MotionConfig:
    """How motion recordings are read and cut (task ``motion``), and the generated dataset."""

    channels: Tuple[str, ...] = ("ax", "ay", "az", "gx", "gy", "gz")
    window_ms: int = 2000
    hop_ms: int = 500
    timestamp_column: str = "timestamp"
    timestamp_unit: str = "s"
    encoding: str = "auto"          # the recordings' text encoding (auto: UTF-8 with or without BOM, else cp1252)
    features: str = "time"          # "time": the normalized window; "spectrum": its magnitude spectrum
    spectral_bins: int = 32         # with "spectrum": FFT bins 1..spectral_bins of each channel
    subjects: int = 20
    repetitions: int = 3
    seconds: float = 6.0

    @property
    def timestamp_scale(self) -> float:
        """Seconds per timestamp unit."""
        return {"s": 1.0, "ms": 1e-3, "us": 1e-6}[self.timestamp_unit]

    def samples(self, milliseconds: int, sample_rate: float) -> int:
        return max(1, int(round(milliseconds * sample_rate / 1000)))


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    model: str = "ds_cnn"
    width: int = 64
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 0.001
    seed: int = 1
    # A folder holding best_hyperparameters.txt (KerasTuner's config, as the ModelSearch writes it):
    # the Trainer builds that model instead of ``model``/``width`` (when the search is off).
    hyperparameters: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """The hardware-aware model search (ModelSearch, between Transform and Trainer)."""

    enabled: bool = False
    max_epochs: int = 9               # Hyperband: the most epochs a candidate trains in the search
    factor: int = 3                   # Hyperband: how many candidates per one promoted to the next round
    iterations: int = 1               # Hyperband sweeps
    time_budget_minutes: float = 20.0  # no new trial starts after this
    steps_per_epoch: Optional[int] = None  # null: a full pass over the train split per epoch
    seed: int = 1


@dataclasses.dataclass(frozen=True)
class MonitoringConfig:
    """Field monitoring (``tinyml-tfx monitor``) and the canary gate of ``tinyml-tfx promote``."""

    telemetry_root: Optional[str] = None      # null: WORKDIR/telemetry/<pipeline_name>
    max_class_distance: float = 0.1           # L-infinity between top-class shares, field vs reference
    max_score_distance: float = 0.1           # L-infinity between top-score histograms
    max_feature_divergence: float = 0.3       # Jensen-Shannon divergence of a channel's statistic
    min_summaries: int = 30                   # fewer summary records in a span: no decision
    canary_window_periods: int = 3            # the promote gate reads the last this many periods
    canary_max_detection_rate_drop: float = 0.2   # relative drop of (confirmed) commands per hour vs stable
    canary_max_confirmed_share_drop: float = 0.1  # drop of the share of detections confirmed vs stable
    canary_max_score_distance: float = 0.15   # L-infinity between the canary's and stable's score histograms


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
    image: str = "tinyml-tfx:latest"
    pipeline_root: Optional[str] = None
    project_dir: str = "/opt/tinyml-tfx"  # where kubernetes/Dockerfile puts the project in the image


KWS_TASK = "keyword_spotting"   # the default family (pipeline/configs/kws.yaml)
DEV_SIGNING_KEY = "dev-signing.key"
# The OTA registry kubernetes/base deploys (Service ota-registry in namespace tinyml-tfx).
IN_CLUSTER_REGISTRY = "http://ota-registry.tinyml-tfx.svc.cluster.local:5000"


@dataclasses.dataclass(frozen=True)
class ReleaseConfig:
    """Where blessed models go: the OTA registry and the signing key.

    ``registry`` is an OCI layout directory (the embedded registry) or an ``http(s)://``
    registry URL; credentials for the latter come from the environment at push time
    (``TINYML_TFX_REGISTRY_USERNAME`` / ``_PASSWORD`` or ``_TOKEN``), never from the config.
    """

    registry: Optional[str] = None
    repository: Optional[str] = None
    signing_key_file: Optional[str] = None
    allow_unsigned: bool = False
    channel: str = "canary"
    insecure: bool = False  # credentials over plain http:// to a registry off loopback


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything one pipeline run needs.

    ``pipeline_root``, ``metadata_path`` and ``data_root`` are where the run keeps
    its artifacts, its ML Metadata and its dataset; ``with_workdir`` fills them.
    """

    pipeline_name: str
    task: str
    target_device: str
    requirements: Requirements
    data: DataConfig
    features: FeatureConfig
    training: TrainingConfig
    motion: MotionConfig = MotionConfig()
    streaming: StreamingConfig = StreamingConfig()
    quantization: QuantizationConfig = QuantizationConfig()
    search: SearchConfig = SearchConfig()
    kubeflow: KubeflowConfig = KubeflowConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    release: ReleaseConfig = ReleaseConfig()
    extra_targets: Tuple[str, ...] = ()
    boards_dirs: Tuple[str, ...] = ()
    beam_args: Tuple[str, ...] = ()
    source: str = ""
    workdir: str = ""           # the local run's work directory (with_workdir); "" on Kubeflow
    pipeline_root: str = ""
    metadata_path: str = ""
    data_root: str = ""

    def with_workdir(self, workdir: str) -> "PipelineConfig":
        """Returns a copy whose run directories sit under ``workdir`` (an absolute path).

        The dataset is ``data.root`` when the config names one, otherwise the
        synthetic dataset's folder under ``workdir``.
        """
        workdir = os.path.abspath(workdir)
        data_root = self.data.root or os.path.join(workdir, "data", self.pipeline_name)
        release = dataclasses.replace(
            self.release, registry=self.release.registry or os.path.join(workdir, "registry"),
            signing_key_file=self.release.signing_key_file or (
                None if self.release.allow_unsigned else os.path.join(workdir, "keys", DEV_SIGNING_KEY)))
        return dataclasses.replace(
            self, release=release, workdir=workdir,
            pipeline_root=os.path.join(workdir, "pipeline_root", self.pipeline_name),
            metadata_path=os.path.join(workdir, "metadata", f"{self.pipeline_name}.sqlite"),
            data_root=data_root,
        )

    def for_kubeflow(self) -> "PipelineConfig":
        """Returns a copy for a Kubeflow run: the cluster's pipeline root and data, no local ML Metadata.

        Raises:
            ConfigError: when the config names no dataset or no Kubeflow pipeline root.
        """
        if self.data.root is None:
            raise ConfigError(
                f"Config file {self.source}: field 'data.root' is null, which means synthetic data "
                "generated on this machine; a Kubeflow run reads its data from where the pods can "
                "reach it. Set data.root to that location (e.g. gs://bucket/speech_commands).")
        if not self.kubeflow.pipeline_root:
            raise ConfigError(
                f"Config file {self.source}: field 'kubeflow.pipeline_root' is not set. Set it to where "
                "the run's artifacts go (an object-store URI or a path on a volume every pod mounts).")
        release = dataclasses.replace(self.release, registry=self.release.registry or IN_CLUSTER_REGISTRY)
        data = dataclasses.replace(self.data, schema=self._in_image(self.data.schema, "data.schema"))
        training = dataclasses.replace(self.training, hyperparameters=self._in_image(
            self.training.hyperparameters, "training.hyperparameters"))
        return dataclasses.replace(self, release=release, data=data, training=training, pipeline_root=self.kubeflow.pipeline_root.rstrip("/") + "/" +
                                   self.pipeline_name, metadata_path="", data_root=self.data.root)

    def _in_image(self, path: Optional[str], field: str) -> Optional[str]:
        """A project file's path as the pods see it: the image carries the project at kubeflow.project_dir."""
        if not path or "://" in path:  # none, or already an object-store URI
            return path
        try:
            relative = pathlib.Path(path).resolve().relative_to(PROJECT_DIR)
        except ValueError:
            raise ConfigError(
                f"Config file {self.source}: field '{field}' is {path}, a file on this machine that the pods "
                "cannot read. Put it in the project (the image carries it) or give an object-store URI.") from None
        return f"{self.kubeflow.project_dir.rstrip('/')}/{relative.as_posix()}"

    @property
    def repository(self) -> str:
        """The registry repository releases go to (default: the pipeline name)."""
        return self.release.repository or self.pipeline_name

    @property
    def uses_synthetic_data(self) -> bool:
        return self.data.root is None

    @property
    def family(self):
        """The task family (``pipeline/tasks/base.py``) this config's ``task`` names."""
        from pipeline import tasks

        return tasks.get_family(self.task)

    @property
    def window_samples(self) -> int:
        """Motion: samples per window."""
        return self.motion.samples(self.motion.window_ms, self.data.sample_rate)

    @property
    def hop_samples(self) -> int:
        """Motion: samples between the starts of consecutive windows."""
        return self.motion.samples(self.motion.hop_ms, self.data.sample_rate)


def _schema(name: str = CONFIG_SCHEMA_FILE) -> Dict[str, Any]:
    with open(schemas.SCHEMA_DIR / name, encoding="utf-8") as f:
        return json.load(f)


def _field_name(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1]
        path = f"{path}.{missing}" if path else missing
    elif error.validator == "additionalProperties":
        extra = error.message.split("'")[1]
        path = f"{path}.{extra}" if path else extra
    return path or "(top level)"


def _fix_hint(error: jsonschema.ValidationError) -> str:
    if error.validator == "required":
        return "add the field (see schemas/pipeline_config.schema.json for its meaning)"
    if error.validator == "additionalProperties":
        return "remove the field or correct its spelling"
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    return f"set a valid value{' (' + description.rstrip('.') + ')' if description else ''}"


def _family_of(raw: Dict[str, Any], source: str):
    """The task family the document names, or a ConfigError listing the known ones."""
    from pipeline import tasks

    try:
        return tasks.get_family(raw["task"])
    except tasks.UnknownTaskFamily as err:
        raise ConfigError(f"Config file {source}: field 'task' is invalid: {err} Fix: name one of them "
                          "(pipeline/configs/kws.yaml and motion.yaml are examples).") from None


def _refuse_other_tasks_fields(raw: Dict[str, Any], source: str, family) -> None:
    """A section or field that belongs to another family is a mistake worth naming as such."""
    from pipeline import tasks

    for name in tasks.family_names():
        other = tasks.get_family(name)
        if other.name == family.name:
            continue
        owned = {("", section) for section in other.config_sections} | set(other.config_fields)
        for section, field in sorted(owned - set(family.config_fields)):
            holder = raw.get(section, {}) if section else raw
            if isinstance(holder, dict) and field in holder and field not in (
                    family.config_sections if not section else ()):
                where = f"{section}.{field}" if section else field
                raise ConfigError(
                    f"Config file {source}: field '{where}' belongs to task '{other.name}', but this config's task "
                    f"is '{family.name}'. Fix: remove the field (keyword spotting names its classes in data.words, "
                    "motion in data.labels; see pipeline/configs/kws.yaml and motion.yaml).")


def _validate(raw: Dict[str, Any], source: str, family) -> None:
    """Checks the document against the shared schema and the family's own (its sections, its rules)."""
    shared = {key: value for key, value in raw.items() if key not in family.config_sections}
    validators = [(jsonschema.Draft202012Validator(_schema()), shared)]
    if family.config_schema_file:
        validators.append((jsonschema.Draft202012Validator(_schema(family.config_schema_file)), raw))
    for validator, document in validators:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            more = f" ({len(errors) - 1} more problem(s) after this one)" if len(errors) > 1 else ""
            raise ConfigError(
                f"Config file {source}: field '{_field_name(first)}' is invalid: {first.message}. "
                f"Fix: {_fix_hint(first)}.{more}")


def _relative_to(config_file: str, path: Optional[str]) -> Optional[str]:
    if path is None or "://" in path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(config_file)), path))


def parse_config(raw: Any, source: str) -> PipelineConfig:
    """Validates a parsed YAML document and builds the config from it.

    Args:
        raw: the document, as loaded by ``yaml.safe_load``.
        source: the file it came from, for error messages and relative paths.

    Raises:
        ConfigError: naming the file, the field and the fix.
    """
    words = raw.get("data", {}).get("words") if isinstance(raw, dict) and isinstance(raw.get("data"), dict) else None
    if isinstance(words, list) and any(isinstance(w, bool) for w in words):
        raise ConfigError(
            f"Config file {source}: field 'data.words' holds true/false where words were meant: YAML "
            "reads a bare yes, no, on or off as a boolean. Fix: quote the words, e.g. "
            "words: [\"yes\", \"no\", \"on\", \"off\"].")
    if not isinstance(raw.get("task"), str):
        _validate(raw, source, _NoFamily)  # names the missing or mistyped field
    family = _family_of(raw, source)
    _refuse_other_tasks_fields(raw, source, family)
    _validate(raw, source, family)

    data = dict(raw["data"])
    synthetic = SyntheticData(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in data.pop("synthetic", {}).items()})
    root = _relative_to(source, data.pop("root", None))
    training = dict(raw.get("training", {}))
    training["hyperparameters"] = _relative_to(source, training.get("hyperparameters"))
    for (section, field), value in family.config_defaults.items():
        {"data": data, "training": training}[section].setdefault(field, value)
    schema_path = _relative_to(source, data.pop("schema", None)) or (
        str(schemas.SCHEMA_DIR / family.default_schema) if family.default_schema else "")
    motion_raw = dict(raw.get("motion", {}))
    motion_raw.update(motion_raw.pop("synthetic", {}))
    config = PipelineConfig(
        pipeline_name=raw["pipeline_name"],
        task=raw["task"],
        target_device=raw["target_device"],
        requirements=Requirements(**raw["requirements"]),
        data=DataConfig(words=tuple(data.pop("words", ())), classes=tuple(data.pop("labels", ())), root=root,
                        schema=schema_path, synthetic=synthetic, **data),
        features=FeatureConfig(**raw.get("features", {})),
        training=TrainingConfig(**training),
        motion=MotionConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in motion_raw.items()}),
        streaming=_streaming(raw.get("streaming", {}), source),
        quantization=QuantizationConfig(**raw.get("quantization", {})),
        search=SearchConfig(**raw.get("search", {})),
        kubeflow=KubeflowConfig(**raw.get("kubeflow", {})),
        monitoring=_monitoring(raw.get("monitoring", {}), source),
        release=ReleaseConfig(**raw.get("release", {})),
        extra_targets=tuple(raw.get("extra_targets", ())),
        boards_dirs=tuple(_relative_to(source, d) for d in raw.get("boards_dirs", ())),
        beam_args=tuple(raw.get("beam_args", ())),
        source=os.path.abspath(source),
    )
    if config.data.training_spans and config.uses_synthetic_data:
        raise ConfigError(
            f"Config file {source}: field 'data.training_spans' is {config.data.training_spans}, which needs "
            "data.root to be a folder of span-0, span-1, ... datasets, but data.root is null (synthetic data "
            "generated into one folder). Fix: set data.root to the folder of spans (the generated dataset can be "
            "its span-0), or set data.training_spans: 0.")
    family.check_config(config)
    return config


def _streaming(raw: Dict[str, Any], source: str) -> StreamingConfig:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    if values.get("recordings"):
        values["recordings"] = _relative_to(source, values["recordings"])
    return StreamingConfig(**values)


def _monitoring(raw: Dict[str, Any], source: str) -> MonitoringConfig:
    values = dict(raw)
    if values.get("telemetry_root"):
        values["telemetry_root"] = _relative_to(source, values["telemetry_root"])
    return MonitoringConfig(**values)


def load_config(path: str) -> PipelineConfig:
    """Reads, validates and returns the config at ``path``.

    Raises:
        ConfigError: when the file is missing, is not YAML, or breaks the schema.
    """
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError as err:
        raise ConfigError(f"Config file {path} does not exist. Pass an existing file with --config "
                          f"(the default is {DEFAULT_CONFIG}).") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"Config file {path} is not valid YAML{where}: "
                          f"{getattr(err, 'problem', None) or err}. Fix the syntax there.") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of fields (pipeline_name, task, ...), "
                          f"not {type(raw).__name__}. See {DEFAULT_CONFIG} for an example.")
    return parse_config(raw, path)
