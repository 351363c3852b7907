"""The learning-rate policy of a training run: `LR_POLICIES` and `schedule_for_run`.

A policy name is a key of the schedule table (`keras_caps.schedules.lr._SCHEDULES`) or
"warmadabatch" (the warm restarts of a WarmAdaBatch batch policy). `schedule_for_run` builds
the policy's schedule with its step counts derived from the run's batch policy.
"""

from __future__ import annotations

import dataclasses

from keras_caps.schedules.batch import WarmAdaBatch, steps_for_epochs
from keras_caps.schedules.lr import (
    _SCHEDULES,
    CosineAnnealing,
    ExponentialDecay,
    FixedLR,
    OneCycle,
    PolynomialDecay,
    StepDecay,
    Triangular,
    WarmRestarts,
)

#: Every learning-rate policy a run can use, in the order the binaries list them.
LR_POLICIES = (*_SCHEDULES, "warmadabatch")

# How a run's arguments (`_Run`) become each schedule, by class (the names are in _SCHEDULES).
_FOR_RUN = {
    FixedLR: lambda r: FixedLR(r.lr),
    StepDecay: lambda r: StepDecay(r.lr, r.drop, r.epochs_to_steps(r.drop_epochs)),
    ExponentialDecay: lambda r: ExponentialDecay(r.lr, r.decay_rate, r.decay_steps),
    PolynomialDecay: lambda r: PolynomialDecay(r.lr, r.lr_min, r.total, r.power),
    OneCycle: lambda r: OneCycle(r.lr_min, r.lr, r.total),
    WarmRestarts: lambda r: WarmRestarts(r.lr_min, r.lr, r.epochs_to_steps(r.cycle_epochs),
                                         r.cycle_mult),
    CosineAnnealing: lambda r: CosineAnnealing(r.lr_min, r.lr, r.total),
    Triangular: lambda r: Triangular(r.lr_min, r.lr, r.epochs_to_steps(r.cycle_epochs)),
}
if set(_FOR_RUN) != set(_SCHEDULES.values()):
    raise RuntimeError("every schedule in _SCHEDULES needs a rule in _FOR_RUN")


@dataclasses.dataclass(frozen=True)
class _Run:
    """The arguments of `schedule_for_run`; `per_epoch` the optimizer steps of each epoch."""

    per_epoch: list
    lr: float
    lr_min: float
    decay_rate: float
    decay_steps: int
    drop: float
    drop_epochs: float
    power: float
    cycle_epochs: float
    cycle_mult: float

    @property
    def total(self):
        return sum(self.per_epoch)

    def epochs_to_steps(self, n):
        whole = int(n)
        steps = sum(self.per_epoch[:whole])
        if whole < len(self.per_epoch):
            steps += int(round((n - whole) * self.per_epoch[whole]))
        return max(1, steps)


def schedule_for_run(policy, num_examples, epochs, batch_policy, lr=1e-3, lr_min=1e-4,
                     decay_rate=0.96, decay_steps=2000, drop=0.5, drop_epochs=10, power=1.0,
                     cycle_epochs=1.0, cycle_mult=1.0):
    """The LR schedule of a training run, with step counts derived from its batch policy.

    Epoch-based lengths (cycles, drops, totals) are converted to steps with the steps that
    `batch_policy` really produces, so they stay right when the batch size changes.

    Args:
        policy: one of LR_POLICIES. "warmadabatch" takes `batch_policy.lr_schedule` (a
            WarmAdaBatch policy is required): one cosine cycle over the small-batch phase,
            a second over the rest.
        num_examples: training examples per epoch.
        epochs: training epochs.
        batch_policy: a BatchSizePolicy.
        lr: the initial / maximum learning rate; lr_min the minimum.
        decay_rate, decay_steps: exponential decay (paper: 0.96 every 2,000 steps).
        drop, drop_epochs: step decay (lr *= drop every drop_epochs epochs).
        power: polynomial decay from lr to lr_min over the run.
        cycle_epochs, cycle_mult: warm restarts (first cycle length in epochs, growth) and
            triangular (half-cycle length in epochs).
    """
    per_epoch = steps_for_epochs(batch_policy, num_examples, epochs)
    policy = policy.lower().replace("-", "_")
    if policy == "warmadabatch":
        if not isinstance(batch_policy, WarmAdaBatch):
            raise ValueError("lr policy 'warmadabatch' needs batch policy 'warmadabatch'.")
        return batch_policy.lr_schedule(num_examples, epochs, lr_min=lr_min, lr_max=lr)
    if policy not in _SCHEDULES:
        raise ValueError(f"unknown lr policy {policy!r}; choose one of {list(LR_POLICIES)}.")
    run = _Run(per_epoch, lr=lr, lr_min=lr_min, decay_rate=decay_rate, decay_steps=decay_steps,
               drop=drop, drop_epochs=drop_epochs, power=power, cycle_epochs=cycle_epochs,
               cycle_mult=cycle_mult)
    return _FOR_RUN[_SCHEDULES[policy]](run)


__all__ = ["LR_POLICIES", "schedule_for_run"]
