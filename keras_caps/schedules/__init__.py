"""Learning-rate and batch-size policies (FasTrCaps, Marchisio et al., Sections II-IV).

One module per concept; every name is importable from `keras_caps.schedules`:
    lr.py          learning-rate schedules (`keras.optimizers.schedules.LearningRateSchedule`
                   subclasses, Keras's own classes where the maths is the same), `make_schedule`
    batch.py       batch-size policies (`batch_size(epoch)`), `make_batch_policy`,
                   `steps_for_epochs`, `BATCH_POLICIES`
    optimizers.py  `make_optimizer`
    policies.py    a training run's LR policy by name: `LR_POLICIES`, `schedule_for_run`

Learning-rate schedules are pure functions of the optimizer step; batch-size policies are pure
functions of the 0-based epoch. Every constant is a constructor argument, validated there;
learning-rate bounds are always given as (lr_min, lr_max).

Paper values (FasTrCaps, Section III-A and Algorithms 1-5):
- fixed: 0.001.
- exponential decay: 0.001 * 0.96 ** (step / 2000).
- one-cycle (eq. 1, Alg. 1): lr_min = 1e-4 -> lr_max = 1e-3 linearly over the first 45% of the
  steps, back to lr_min over the next 45%, then linearly down to lr_min / 10 = 1e-5 over the last
  10% (the slope 9 * lr_min / TotalSteps of eq. 1 over 0.1 * TotalSteps steps removes 0.9 * lr_min).
- warm restarts (eq. 2, Alg. 2): cosine from lr_max = 1e-3 to lr_min = 1e-4, cycle = one epoch.
  Alg. 2 evaluates the cosine at T_curr = T_i (lr_min) before resetting, i.e. a cycle of T_i + 1
  steps; here, as in SGDR, a cycle has exactly T_i steps and step T_i is already lr_max again.
- AdaBatch (Alg. 3): batch 1 for the first 3 epochs, then 2**P, 2**(P+1), 2**(P+2) for 5 epochs
  each, the last size held thereafter.
- WarmAdaBatch (Alg. 5, Section IV-E): batch 1 for 3 epochs, then 16 (P = 4) for the rest of the
  training; one warm-restart cycle spans the 3 small-batch epochs (3 * 60,000 steps on MNIST),
  a second one the remaining 27 epochs (27 * 3,750 steps), so the restart coincides with the
  batch-size change.
"""

from keras_caps.schedules.batch import (
    BATCH_POLICIES,
    AdaBatch,
    BatchSizePolicy,
    FixedBatch,
    WarmAdaBatch,
    make_batch_policy,
    steps_for_epochs,
)
from keras_caps.schedules.lr import (
    _SCHEDULES,  # noqa: F401  (the name table, read by tests/test_schedules.py)
    CosineAnnealing,
    ExponentialDecay,
    FixedLR,
    OneCycle,
    PiecewiseCycles,
    PolynomialDecay,
    StepDecay,
    Triangular,
    WarmRestarts,
    make_schedule,
)
from keras_caps.schedules.optimizers import make_optimizer
from keras_caps.schedules.policies import LR_POLICIES, schedule_for_run

__all__ = [
    "BATCH_POLICIES",
    "LR_POLICIES",
    "AdaBatch",
    "BatchSizePolicy",
    "CosineAnnealing",
    "ExponentialDecay",
    "FixedBatch",
    "FixedLR",
    "OneCycle",
    "PiecewiseCycles",
    "PolynomialDecay",
    "StepDecay",
    "Triangular",
    "WarmAdaBatch",
    "WarmRestarts",
    "make_batch_policy",
    "make_optimizer",
    "make_schedule",
    "schedule_for_run",
    "steps_for_epochs",
]
