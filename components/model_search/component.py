"""ModelSearch: TFX's Tuner, whose search judges every candidate on the target board first.

The component is TFX's own ``Tuner`` (same inputs, outputs and ``tuner_fn`` contract:
``best_hyperparameters`` feeds the Trainer); only its executor adds what a device search
must leave behind: every candidate, trained or rejected, with its figures.
"""

from tfx.components import Tuner
from tfx.dsl.components.base import executor_spec

from components.model_search import executor


class ModelSearch(Tuner):
    """TFX's Tuner with the device-aware search's records.

    Outputs ``best_hyperparameters`` (the winner; KerasTuner's config JSON, as TFX's Tuner
    writes it) and ``tuner_results`` (TFX's ``tuner_results.json`` of the trained trials,
    plus ``search_results.json`` and ``search_results.csv`` with every candidate: its
    hyperparameters, status, epochs, eval accuracy, model bytes, MACs, tensor arena, RAM
    and flash used and estimated latency on the target board, and why a rejected one was
    rejected). The counts and the winner's figures are also custom properties of the
    ``tuner_results`` artifact, in ML Metadata.
    """

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
