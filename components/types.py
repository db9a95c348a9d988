"""The project's custom artifact types, defined once.

Type names follow the rule KFP v2 enforces on TFX artifact types
(``^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$``), and each one is the
import path of its class (``components.TFLiteModel`` is ``components.TFLiteModel``),
which is how the Kubeflow container entrypoint finds a custom type.
"""

from tfx.types import artifact, standard_artifacts
from tfx.types.system_artifacts import Model as SystemModel


class TFLiteModel(artifact.Artifact):
    """A TFLite flatbuffer for TFLite Micro, with firmware sources and reports.

    Files: ``model.tflite`` (the quantized model), ``model_float.tflite`` (the float
    reference), ``model_data.cc`` / ``model_data.h`` (the model as a C array),
    ``micro_op_resolver.h`` (registers exactly its ops), ``quantization_report.json``.
    """

    # Facts about the model (mode, model_bytes, float_accuracy, quantized_accuracy,
    # accuracy_drop, agreement, ops) are custom properties: KFP v2 compiles a custom
    # artifact type against the generic Artifact schema, which declares no properties,
    # and rejects a type whose PROPERTIES it cannot match.
    TYPE_NAME = "components.TFLiteModel"
    TYPE_ANNOTATION = SystemModel


class DeviceReport(artifact.Artifact):
    """The MCU size gate's findings: ``device_report.json`` and ``device_report.html``."""

    TYPE_NAME = "components.DeviceReport"


# Blessings reuse TFX's type, so TFX's Pusher checks read them unchanged.
ModelBlessing = standard_artifacts.ModelBlessing


class TestEvaluation(artifact.Artifact):
    """The blessed model on the held-out test split, measured once after the gates: ``test_report.json``
    (float and int8-on-TFLite-Micro accuracy, per class, confusion matrices). No decision reads it."""

    TYPE_NAME = "components.TestEvaluation"


class StreamingEvaluation(artifact.Artifact):
    """The StreamingEvaluator's findings on continuous audio: ``streaming_report.json`` (settings,
    DET curve, operating point, per-keyword figures, timeline), ``postprocessing.h`` (the chosen
    RecognizeCommands settings for the firmware), ``scores.npz`` (every inference's int8 scores)
    and ``streams/<name>.labels.txt`` (each stream's ground truth)."""

    TYPE_NAME = "components.StreamingEvaluation"


class RetrainDecision(artifact.Artifact):
    """The monitoring pipeline's decision, blessing-style: custom properties ``retrain`` (1 or 0),
    ``reason`` and ``drifting_features`` (comma-separated), and ``decision.json`` (every compared
    feature's distance, its comparator and threshold, the spans and record counts)."""

    TYPE_NAME = "components.RetrainDecision"
