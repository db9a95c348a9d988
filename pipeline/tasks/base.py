"""The task-family interface: what a kind of sensor task plugs into the one pipeline.

``create_pipeline``, the local runner, the CLI and the report know nothing about audio
or motion: they ask the config's ``TaskFamily`` for its pieces. A family lives in
``pipeline/tasks/<family>/`` and is registered by name (``pipeline.tasks.register``;
the built-in ones are keyword_spotting and motion, third-party packages can add theirs
through the ``tinyml_tfx.task_families`` entry point group).

What a family provides:

- **Data**: its ExampleGen component (writing ``train``/``eval``/``test`` splits of raw
  tf.Examples with a string ``label`` feature), the dataset layout check run before a
  run, and the recipe of its generated (synthetic) default dataset.
- **Features and training**: the module paths of its Transform ``preprocessing_fn`` and
  Trainer ``run_fn`` and the ``custom_config`` they receive. The transformed examples
  carry ``label_id`` (the class index) and the Trainer exports the ``serving_features``
  signature (model input in, probabilities out) that the quantizer converts; the shared
  pieces live in ``pipeline/tasks/common``.
- **Device contract**: the firmware's input processing the model depends on, as the hash a
  release records (the audio front end's parameters for keyword spotting; motion's
  normalization constants travel as a header the Trainer writes, hashed at push time).
- **Words**: the model card's intended use, data and limitations, and the report's
  description of the data and of the model inputs.
- **Streaming** (optional): a component that evaluates the quantized model on continuous
  input as the device runs it, with its own blessing (keyword spotting's StreamingEvaluator),
  and the run parameters only the family has.

Everything else (validation, evaluation, quantization, the size gate, the release) is
the same for every family.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:  # imported for annotations only: families are imported by config loading
    from components.ota.model_card import CardText
    from components.ota.publish import InputProcessing
    from pipeline.config import PipelineConfig

Progress = Optional[Callable[[int, int], None]]

LABEL_KEY = "label_id"      # the transformed label: the class index
RAW_LABEL_KEY = "label"     # the raw label: the class name, as the ExampleGen writes it


class DataLayoutError(ValueError):
    """The dataset folder cannot be read by the family's ExampleGen; the message says why and the fix."""


class DataGenerationError(RuntimeError):
    """The synthetic dataset cannot be generated on this machine; the message says what is missing."""


@dataclasses.dataclass(frozen=True)
class ReportText:
    """How the run report describes a family's data and model inputs."""

    synthetic_data: str     # "generated eSpeak NG speech": what a synthetic dataset is made of
    model_inputs: str       # caption of the feature-map images: what the model sees


class TaskFamily(abc.ABC):
    """One family of on-device tasks (keyword spotting, motion, ...), as the pipeline sees it.

    Subclasses set the class attributes and implement the abstract methods; the
    defaults of the others fit a family whose classes are ``data.labels``.
    """

    #: The config's ``task`` value.
    name: str = ""
    #: Node id of the family's ExampleGen in the pipeline, ML Metadata and the run summary.
    example_gen_id: str = "ExampleGen"
    #: What one item of the dataset is called in progress lines ("clips", "recordings").
    data_unit: str = "examples"
    #: Module paths of the Transform ``preprocessing_fn`` and the Trainer ``run_fn``.
    preprocessing_fn: str = ""
    run_fn: str = ""
    #: The module with ``build_model(hp, settings)``: the family's search space and the builder the
    #: ModelSearch and the Trainer share (pipeline/tasks/common/search.py); "" when it has none.
    search_module: str = ""
    #: The package whose source is hashed into Transform's and Trainer's custom_config, so
    #: that a code change re-runs them (TFX's cache cannot see into module paths).
    code_package: str = ""
    #: Top-level config sections and (section, field) pairs only this family accepts.
    config_sections: Tuple[str, ...] = ()
    config_fields: FrozenSet[Tuple[str, str]] = frozenset()
    #: A JSON Schema the whole config must also meet when ``task`` is this family (its own
    #: sections, required fields, allowed models), in ``schemas/``; none when empty.
    config_schema_file: str = ""
    #: The curated TFDV schema (relative to ``schemas/``) used when ``data.schema`` is null; "" lets
    #: SchemaGen infer one.
    default_schema: str = ""
    #: Defaults this family gives to fields the user left out: {(section, field): value}.
    config_defaults: Mapping[Tuple[str, str], Any] = {}
    #: Names in the transformed examples and the raw examples.
    label_key: str = LABEL_KEY
    raw_label_key: str = RAW_LABEL_KEY
    #: Whether the family evaluates streaming behaviour (``streaming_evaluator`` returns a component).
    has_streaming_evaluator: bool = False

    # ------------------------------------------------------------------ config

    def check_config(self, config: "PipelineConfig") -> None:
        """Refuses settings that are valid one by one but not together (raise ``ConfigError``)."""

    def check_schema(self, config: "PipelineConfig", schema: Any) -> None:
        """Checks a curated TFDV schema (``schema_pb2.Schema``) against the config beyond the labels."""

    # ------------------------------------------------------------------ data

    @abc.abstractmethod
    def example_gen(self, config: "PipelineConfig") -> Any:
        """The ExampleGen component reading ``config.data_root`` (its id set to ``example_gen_id``);
        with ``data.training_spans``, the newest spans of it (pass on ``span_input(config)``)."""

    @abc.abstractmethod
    def check_layout(self, config: "PipelineConfig") -> None:
        """Raises ``DataLayoutError`` when the dataset the ExampleGen would read (``dataset_root``) is not one
        it can read."""

    @staticmethod
    def span_input(config: "PipelineConfig") -> Dict[str, Any]:
        """The ExampleGen arguments for span-based input (``data.training_spans``): the span folders'
        pattern and how many spans up to the newest the examples hold."""
        if not config.data.training_spans:
            return {}
        from pipeline.tasks.common.datasets import SPAN_FOLDER

        return {"span_folder": SPAN_FOLDER, "spans": config.data.training_spans}

    @staticmethod
    def example_gen_output(config: "PipelineConfig") -> Dict[str, Any]:
        """The ExampleGen arguments for how it writes its examples (``data.examples_compression``)."""
        return {"compression": config.data.examples_compression}

    @staticmethod
    def dataset_root(config: "PipelineConfig") -> str:
        """The dataset the ExampleGen reads next: ``config.data_root``, or its newest span folder.

        Raises:
            DataLayoutError: when ``data.training_spans`` is set and the data root has no span folder.
        """
        if not config.data.training_spans:
            return config.data_root
        from pipeline.tasks.common.datasets import span_folders

        spans = span_folders(config.data_root)
        if not spans:
            raise DataLayoutError(
                f"{config.data_root} has no span folder (span-0, span-1, ...), but data.training_spans is "
                f"{config.data.training_spans}. Fix: put each dataset in its span folder (the first one in "
                "span-0), or set data.training_spans: 0 to read the folder as one dataset.")
        return spans[max(spans)]

    def generation_spec(self, config: "PipelineConfig") -> Any:
        """What the synthetic dataset is generated from (has ``fingerprint()``); None: the family has none."""
        return None

    def generate_dataset(self, spec: Any, out_dir: str, progress: Progress = None) -> Dict[str, Any]:
        """Writes the synthetic dataset of ``spec`` to ``out_dir``; returns its manifest."""
        raise NotImplementedError(f"Task family '{self.name}' has no synthetic dataset; set data.root.")

    # ------------------------------------------------------------------ features and training

    @abc.abstractmethod
    def transform_config(self, config: "PipelineConfig") -> Dict[str, Any]:
        """What ``preprocessing_fn`` (and, with the training settings, ``run_fn``) receives as custom_config."""

    @abc.abstractmethod
    def model_input_shape(self, config: "PipelineConfig") -> Tuple[int, int]:
        """The model input the device feeds, (rows, columns): frames x channels, samples x axes."""

    # ------------------------------------------------------------------ device contract and words

    def input_processing(self, config: "PipelineConfig") -> "InputProcessing":
        """How firmware must prepare the model's input, as the release records it (one annotation): a hash
        known from the config (the audio front end's), or the hash of a file the model ships (motion's
        normalization constants). None by default."""
        from components.ota.publish import InputProcessing

        return InputProcessing(annotation="")

    def runtime_parameters(self, config: "PipelineConfig") -> Dict[str, Any]:
        """Run parameters (Kubeflow) only this family has, as TFX RuntimeParameters defaulting to the config."""
        return {}

    def streaming_evaluator(self, config: "PipelineConfig", quantized_model: Any, device_report: Any,
                            knobs: Mapping[str, Any]) -> Optional[Any]:
        """The component that evaluates the quantized model on continuous input as the device runs it,
        with ``evaluation`` and ``blessing`` outputs (the blessing joins the release's condition);
        None when the family has none.

        Args:
            config: the config.
            quantized_model: TFLiteQuantizer's ``quantized_model`` channel.
            device_report: McuSizeGate's ``report`` channel (the target's latency estimate).
            knobs: the run parameters, the family's included, by name.
        """
        return None

    def recording_source(self, config: "PipelineConfig", files: Sequence[Tuple[str, Optional[str]]],
                         shipped_settings: Optional[Mapping[str, Any]] = None) -> Tuple[str, Dict[str, Any]]:
        """The stream source (module path, settings) that evaluates recordings you bring: ``files`` are
        (recording, label file or None) pairs; ``shipped_settings`` the source settings a release was
        evaluated with (its input processing wins over the config's)."""
        raise NotImplementedError(f"Task family '{self.name}' has no streaming evaluation.")

    def write_streams(self, config: "PipelineConfig", out_dir: str) -> Sequence[str]:
        """Writes the synthetic test streams (recordings with label files) to ``out_dir``; returns their paths."""
        raise NotImplementedError(f"Task family '{self.name}' has no streaming evaluation.")

    def telemetry_channels(self, config: "PipelineConfig") -> Sequence[str]:
        """Names of the feature channels a device's telemetry summary keeps statistics of (per channel
        mean and variance of the model's int8 input: ``components/telemetry``), in input order."""
        raise NotImplementedError(f"Task family '{self.name}' does not name its telemetry channels.")

    #: Field shifts the fleet simulator can apply to ``field_streams`` (name -> what it is); none by default.
    field_shifts: Mapping[str, str] = {}

    def field_streams(self, config: "PipelineConfig", shift: str, seed: int, minutes: float) -> Tuple[str, Dict[str, Any]]:
        """The stream source (module path, settings; see components/streaming_evaluator/source.py) of the
        fleet simulator's audio: ``minutes`` of the training distribution's conditions (``shift`` "") or
        of a field shift (one of ``field_shifts``), deterministic from ``seed``."""
        raise NotImplementedError(f"Task family '{self.name}' has no fleet simulation (it has no stream source).")

    def write_field_span(self, config: "PipelineConfig", shift: str, minutes: float, voices: int, seed: int,
                         out_dir: str, log: Callable[[str], None] = lambda m: None) -> Dict[str, Any]:
        """Writes labelled field data under ``shift`` (one of ``field_shifts``) as a dataset in the layout the
        ExampleGen reads, for a new training span (``data.training_spans``); returns its manifest."""
        raise NotImplementedError(f"Task family '{self.name}' has no simulated field data collection.")

    def write_sample_span(self, config: "PipelineConfig", samples: Sequence[Any], out_dir: str,
                          synthetic: bool = False, log: Callable[[str], None] = lambda m: None,
                          known_splits: Optional[Dict[str, str]] = None,
                          source: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Writes labelled windows the devices uploaded (``field_span.LabelledSample``-like: ``path``,
        ``device_id``, ``label``, ``label_source``, ``name``) as a dataset for a new training span; devices in
        ``known_splits`` keep their split, ``source`` goes into the manifest."""
        raise NotImplementedError(f"Task family '{self.name}' cannot make training data of uploaded windows.")

    def provenance(self, config: "PipelineConfig") -> Dict[str, str]:
        """Extra provenance lines for the model card (e.g. the front-end hash)."""
        return {}

    @abc.abstractmethod
    def card_text(self, config: "PipelineConfig", synthetic: bool) -> "CardText":
        """The model card's words: intended use, data, limitations."""

    @abc.abstractmethod
    def report_text(self, config: "PipelineConfig") -> ReportText:
        """How the run report describes the data and the model inputs."""
