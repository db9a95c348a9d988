"""A KerasTuner search that judges every candidate on the device before training it: plain library.

Hyperband (successive halving over epochs) picks candidates; before a candidate becomes a
trial, ``judge`` converts its untrained model to int8 and measures it against the target
board (tensor arena on TFLite Micro, flash, estimated latency). A candidate that breaks a
budget is rejected there: it is recorded with its figures and the reason, and never
trained. Trials train the survivors (warm-started from their previous round, as Hyperband
does) and score them by eval accuracy.

The winner is the most accurate trial at the highest fidelity it reached; trials within
``tie_margin`` of it count as equally accurate, and then the lowest estimated latency
wins, then the smallest arena (a firmware engineer's tie-break: the same accuracy, more
headroom).

Keras-agnostic on purpose: KerasTuner runs on Keras 3 while the project's models are
tf_keras, so the tuner subclasses ``BaseTuner`` and trains the models itself.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import keras_tuner as kt
from absl import logging

# Hyperband's bookkeeping values in every trial's hyperparameters.
_HYPERBAND_KEYS = ("tuner/epochs", "tuner/initial_epoch", "tuner/bracket", "tuner/round", "tuner/trial_id")
OBJECTIVE = "val_accuracy"
# Logged at every trial's start and end; the CLI turns it into a progress bar (pipeline/ui/progress.py).
TRIAL_MESSAGE = "ModelSearch trial %d/%d"


@dataclasses.dataclass(frozen=True)
class CandidateCost:
    """What a candidate costs on the target board (from ``judge``), and whether it fits."""

    fits: bool
    reasons: List[str]
    model_bytes: int
    macs: int
    arena_bytes: int
    ram_used: int
    flash_used: int
    latency_ms: Optional[float]
    latency_high_ms: Optional[float]


@dataclasses.dataclass
class CandidateRecord:
    """One candidate of the search, for search_results.json and ML Metadata."""

    candidate: int
    hyperparameters: Dict[str, Any]
    cost: CandidateCost
    status: str                       # "rejected" (never trained), "trained", "reference" (the defaults)
    trial_id: Optional[str] = None
    epochs: int = 0                   # epochs trained in this trial (0 when rejected)
    val_accuracy: Optional[float] = None
    seconds: float = 0.0
    reason: str = ""

    def to_json(self) -> Dict[str, Any]:
        row = dataclasses.asdict(self)
        row.update({f"cost_{k}": v for k, v in row.pop("cost").items()})
        return row


def architecture_key(values: Mapping[str, Any], untrained_values: tuple) -> str:
    """What decides the model's shape: the values minus Hyperband's and training-only ones."""
    return repr(sorted((k, v) for k, v in values.items() if k not in _HYPERBAND_KEYS and k not in untrained_values))


class DeviceAwareHyperbandOracle(kt.oracles.HyperbandOracle):
    """Hyperband whose new candidates must fit the board, and which stops at a wall-clock budget."""

    def __init__(self, judge_values: Callable[[Dict[str, Any]], CandidateCost],
                 on_rejected: Callable[[Dict[str, Any], CandidateCost], None], time_budget_seconds: float,
                 max_draws: int = 300, **kwargs):
        super().__init__(max_consecutive_failed_trials=10 ** 6, **kwargs)
        self._judge_values = judge_values
        self._on_rejected = on_rejected
        self._time_budget_seconds = time_budget_seconds
        self._max_draws = max_draws
        self.started = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since the search started."""
        return time.monotonic() - self.started

    def populate_space(self, trial_id):
        if self.elapsed() > self._time_budget_seconds:
            logging.info("ModelSearch: the time budget (%.0f s) is spent; no new trials.", self._time_budget_seconds)
            return {"status": "STOPPED"}
        return super().populate_space(trial_id)

    def _random_values(self):
        """A new candidate that fits the board; rejected ones are recorded and redrawn."""
        for _ in range(self._max_draws):
            values = super()._random_values()
            if values is None:
                return None
            cost = self._judge_values(values)
            if cost.fits:
                return values
            self._on_rejected(values, cost)
        logging.warning("ModelSearch: %d candidates in a row break a budget; the search space does not fit the "
                        "board.", self._max_draws)
        return None

    def get_best_trials(self, num_trials=1):
        # TFX's Tuner executor asks for ``oracle.max_trials`` trials, which Hyperband leaves None: all of them.
        return super().get_best_trials(len(self.trials) if num_trials is None else num_trials)

    def total_trials(self) -> int:
        """How many trials the full Hyperband schedule runs."""
        brackets = self._get_num_brackets()
        per_iteration = sum(self._get_size(b, r) for b in range(brackets) for r in range(self._get_num_rounds(b)))
        return per_iteration * int(self.hyperband_iterations)


class DeviceAwareSearch(kt.engine.base_tuner.BaseTuner):
    """The search: builds candidates with ``build``, judges them with ``judge``, trains the ones that fit.

    Args:
        build: ``build(hp) -> compiled tf_keras model``; it declares the search space.
        judge: ``judge(model) -> CandidateCost`` for an untrained model.
        untrained_values: hyperparameters that do not change the model's shape (dropout,
            learning rate): a judged shape is not judged again for them.
        max_epochs, factor, iterations, seed: Hyperband's schedule.
        time_budget_seconds: no new trial starts after this much time.
        tie_margin: accuracy difference within which trials count as equal.
    """

    def __init__(self, build: Callable[[Any], Any], judge: Callable[[Any], CandidateCost], *,
                 untrained_values: tuple = (), max_epochs: int = 9, factor: int = 3, iterations: int = 1,
                 seed: int = 1, time_budget_seconds: float = 1200.0, tie_margin: float = 0.005,
                 directory: str, project_name: str = "model_search"):
        self._build = build
        self._judge = judge
        self._untrained_values = tuple(untrained_values)
        self._costs: Dict[str, CandidateCost] = {}
        self._weights: Dict[str, Any] = {}
        self.tie_margin = tie_margin
        self.records: List[CandidateRecord] = []
        hp = kt.HyperParameters()
        build(hp)  # declares the search space, every value at its default
        self.default_values = dict(hp.values)
        # The pre-search default (every value at its default), judged for comparison; trained only if drawn.
        self.reference = CandidateRecord(candidate=0, hyperparameters=dict(self.default_values),
                                         cost=judge(build(_fixed(self.default_values))), status="reference",
                                         reason="the search space's defaults: the model before the search")
        oracle = DeviceAwareHyperbandOracle(
            judge_values=self._cost_of_values, on_rejected=self._record_rejection,
            time_budget_seconds=time_budget_seconds, hyperparameters=hp, objective=kt.Objective(OBJECTIVE, "max"),
            max_epochs=max_epochs, factor=factor, hyperband_iterations=iterations, seed=seed)
        super().__init__(oracle=oracle, directory=directory, project_name=project_name, overwrite=True)
        self._trials_run = 0

    # ------------------------------------------------------------------ device judging

    def cost_of(self, hp) -> CandidateCost:
        """The device cost of the model ``hp`` describes (cached per shape)."""
        return self._cost_of_values(dict(hp.values))

    def _cost_of_values(self, values: Dict[str, Any]) -> CandidateCost:
        key = architecture_key(values, self._untrained_values)
        if key not in self._costs:
            self._costs[key] = self._judge(self._build(_fixed(values)))
        return self._costs[key]

    def _record_rejection(self, values: Dict[str, Any], cost: CandidateCost) -> None:
        record = CandidateRecord(candidate=len(self.records) + 1, hyperparameters=_shape_values(values), cost=cost,
                                 status="rejected", reason="; ".join(cost.reasons))
        self.records.append(record)
        logging.info("ModelSearch candidate %d rejected before training: %s", record.candidate, record.reason)

    # ------------------------------------------------------------------ trials

    def run_trial(self, trial, train, evaluation, steps_per_epoch: Optional[int] = None, **_):
        values = dict(trial.hyperparameters.values)
        self._trials_run += 1
        logging.info(TRIAL_MESSAGE + " starts: %s", self._trials_run, self.oracle.total_trials(),
                     _shape_values(values))
        started = time.monotonic()
        cost = self._cost_of_values(values)
        model = self._build(_fixed(values))
        previous = values.get("tuner/trial_id")
        initial_epoch = int(values.get("tuner/initial_epoch", 0)) if previous in self._weights else 0
        if initial_epoch:
            model.set_weights(self._weights[previous])
        epochs = int(values.get("tuner/epochs", 1))
        history = model.fit(train, validation_data=evaluation, epochs=epochs, initial_epoch=initial_epoch,
                            steps_per_epoch=steps_per_epoch, verbose=0)
        self._weights[trial.trial_id] = model.get_weights()
        accuracy = float(max(history.history[OBJECTIVE]))
        self.records.append(CandidateRecord(
            candidate=len(self.records) + 1, hyperparameters=_shape_values(values), cost=cost, status="trained",
            trial_id=trial.trial_id, epochs=epochs - initial_epoch, val_accuracy=accuracy,
            seconds=round(time.monotonic() - started, 2)))
        logging.info(TRIAL_MESSAGE + " done: eval accuracy %.4f after %d epochs, est. %.1f ms, arena %d B",
                     self._trials_run, self.oracle.total_trials(), accuracy, epochs, cost.latency_ms or -1,
                     cost.arena_bytes)
        return {OBJECTIVE: accuracy}

    # ------------------------------------------------------------------ the winner

    def winner(self) -> Optional[CandidateRecord]:
        """The most accurate trained candidate at the highest fidelity, with the latency/arena tie-break."""
        trained = [r for r in self.records if r.status == "trained" and r.val_accuracy is not None]
        if not trained:
            return None
        top_epochs = max(int(r.hyperparameters.get("tuner/epochs", 0)) for r in trained)
        finalists = [r for r in trained if int(r.hyperparameters.get("tuner/epochs", 0)) == top_epochs]
        best = max(r.val_accuracy for r in finalists)
        tied = [r for r in finalists if r.val_accuracy >= best - self.tie_margin]
        return min(tied, key=lambda r: (r.cost.latency_high_ms or r.cost.latency_ms or 0.0, r.cost.arena_bytes,
                                        -r.val_accuracy))

    def get_best_hyperparameters(self, num_trials: int = 1):
        winner = self.winner()
        if winner is None:
            return super().get_best_hyperparameters(num_trials)
        hp = _fixed(winner.hyperparameters)
        self._build(hp)  # registers the space, so the saved config describes every value
        return [hp] + super().get_best_hyperparameters(num_trials)[1:num_trials]


def _fixed(values: Mapping[str, Any]):
    """HyperParameters holding ``values`` (the search's bookkeeping values left out)."""
    hp = kt.HyperParameters()
    hp.values.update({k: v for k, v in values.items() if k not in _HYPERBAND_KEYS})
    return hp


def _shape_values(values: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in values.items() if k != "tuner/trial_id"}
