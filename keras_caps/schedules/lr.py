"""Learning-rate schedules: `keras.optimizers.schedules.LearningRateSchedule` subclasses.

Pure functions of the optimizer step, written with `keras.ops`, so they run on python ints, NumPy
arrays and symbolic tensors inside a compiled (tf.function / XLA) train step. They are
elementwise: an array of steps gives an array of learning rates (the plots use this). Steps
below 0 are treated as 0. Every constant is a constructor argument and is validated there.
Bounds are always given in the order (lr_min, lr_max).

Where Keras has the same maths, the schedule is the Keras class with this project's argument
names, checks and paper defaults on top: `StepDecay` and `ExponentialDecay` are
`keras.optimizers.schedules.ExponentialDecay` (values identical at every step, see
tests/test_schedules.py). `PolynomialDecay`, `CosineAnnealing` and `WarmRestarts` keep their
own maths: Keras's `PolynomialDecay` subtracts end from initial LR in float32 (ours in float64),
its `CosineDecay` scales (1 - alpha) * cosine + alpha by the initial LR and its
`CosineDecayRestarts` finds the cycle in float32 (late restarts); each differs from ours by 1
float32 ulp or more at many steps, which would change the fixed-seed runs.
"""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops

from keras_caps.schedules._checks import (
    _DTYPE,
    _float,
    _int,
    _lookup,
    _non_negative,
    _ordered,
    _positive,
    _step,
    _unit_interval,
)

_KerasExponentialDecay = keras.optimizers.schedules.ExponentialDecay


@keras.saving.register_keras_serializable(package="keras_caps")
class FixedLR(keras.optimizers.schedules.LearningRateSchedule):
    """Constant learning rate `lr` (paper baseline: 0.001)."""

    def __init__(self, lr=1e-3):
        self.lr = _positive("lr", lr)

    def __call__(self, step):
        return ops.zeros_like(ops.cast(step, _DTYPE)) + self.lr

    def get_config(self):
        return {"lr": self.lr}


@keras.saving.register_keras_serializable(package="keras_caps")
class StepDecay(_KerasExponentialDecay):
    """lr = initial_lr * drop ** floor(step / step_size).

    Keras's `ExponentialDecay(initial_lr, step_size, drop, staircase=True)`, with checked
    arguments and steps below 0 treated as 0.

    Args:
        initial_lr: learning rate at step 0 (> 0).
        drop: factor applied every `step_size` steps, in (0, 1].
        step_size: steps between drops (integer >= 1).
    """

    def __init__(self, initial_lr, drop, step_size):
        super().__init__(
            initial_learning_rate=_positive("initial_lr", initial_lr),
            decay_steps=_int("step_size", step_size, 1),
            decay_rate=_unit_interval("drop", drop),
            staircase=True,
            name="StepDecay",
        )

    initial_lr = property(lambda self: self.initial_learning_rate)
    drop = property(lambda self: self.decay_rate)
    step_size = property(lambda self: self.decay_steps)

    def __call__(self, step):
        return super().__call__(_step(step))

    def get_config(self):
        return {"initial_lr": self.initial_lr, "drop": self.drop, "step_size": self.step_size}


@keras.saving.register_keras_serializable(package="keras_caps")
class ExponentialDecay(_KerasExponentialDecay):
    """lr = initial_lr * decay_rate ** (step / decay_steps) (floored when `staircase`).

    Keras's `ExponentialDecay` with checked arguments, steps below 0 treated as 0, and the
    paper values as defaults: 0.001, 0.96 every 2000 steps. Note the argument order
    (initial_lr, decay_rate, decay_steps), which differs from Keras's.

    Args:
        initial_lr: learning rate at step 0 (> 0).
        decay_rate: in (0, 1].
        decay_steps: integer >= 1.
        staircase: decay in discrete steps of `decay_steps`.
    """

    def __init__(self, initial_lr=1e-3, decay_rate=0.96, decay_steps=2000, staircase=False):
        super().__init__(
            initial_learning_rate=_positive("initial_lr", initial_lr),
            decay_steps=_int("decay_steps", decay_steps, 1),
            decay_rate=_unit_interval("decay_rate", decay_rate),
            staircase=bool(staircase),
            name="ExponentialDecay",
        )

    initial_lr = property(lambda self: self.initial_learning_rate)

    def __call__(self, step):
        return super().__call__(_step(step))

    def get_config(self):
        return {
            "initial_lr": self.initial_lr,
            "decay_rate": self.decay_rate,
            "decay_steps": self.decay_steps,
            "staircase": self.staircase,
        }


@keras.saving.register_keras_serializable(package="keras_caps")
class PolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = (initial_lr - end_lr) * (1 - min(step, decay_steps) / decay_steps) ** power + end_lr.

    Constant `end_lr` after `decay_steps`. Not Keras's `PolynomialDecay`: that one forms
    initial_lr - end_lr in float32 and differs by 1 ulp at some steps (see the module doc).

    Args:
        initial_lr: learning rate at step 0 (> 0).
        end_lr: final learning rate, 0 <= end_lr <= initial_lr.
        decay_steps: integer >= 1.
        power: exponent (> 0); 1 is linear.
    """

    def __init__(self, initial_lr, end_lr, decay_steps, power=1.0):
        self.initial_lr = _positive("initial_lr", initial_lr)
        self.end_lr = _non_negative("end_lr", end_lr)
        _ordered("end_lr", self.end_lr, "initial_lr", self.initial_lr)
        self.decay_steps = _int("decay_steps", decay_steps, 1)
        self.power = _positive("power", power)

    def __call__(self, step):
        frac = ops.minimum(_step(step), float(self.decay_steps)) / self.decay_steps
        return (self.initial_lr - self.end_lr) * ops.power(1.0 - frac, self.power) + self.end_lr

    def get_config(self):
        return {
            "initial_lr": self.initial_lr,
            "end_lr": self.end_lr,
            "decay_steps": self.decay_steps,
            "power": self.power,
        }


@keras.saving.register_keras_serializable(package="keras_caps")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle policy (FasTrCaps eq. 1 / Alg. 1; Smith).

    With TS = total_steps, u = up_fraction * TS and d = (up_fraction + down_fraction) * TS:
    - 0 <= step <= u: linear lr_min -> lr_max;
    - u <= step <= d: linear lr_max -> lr_min;
    - d <= step <= TS: linear lr_min -> final_lr (the annealing phase);
    - step >= TS: final_lr (lr_min when there is no annealing phase, up + down = 1).

    Paper: lr_min 1e-4, lr_max 1e-3, 45% / 45% / 10%, annealed to 1e-5. Its eq. 1 anneals with
    slope 9 * lr_min / TS over the last 0.1 * TS steps, i.e. to lr_min / 10, which is the default
    `final_lr`.

    Args:
        lr_min: start (and end of phase 2) learning rate, 0 < lr_min <= lr_max.
        lr_max: peak learning rate.
        total_steps: training steps TS (integer >= 1; required).
        up_fraction: fraction of TS for phase 1, in (0, 1].
        down_fraction: fraction of TS for phase 2, in [0, 1]; up + down <= 1.
        final_lr: end of the annealing phase, 0 <= final_lr <= lr_min (default lr_min / 10).
    """

    def __init__(self, lr_min=1e-4, lr_max=1e-3, total_steps=None, up_fraction=0.45,
                 down_fraction=0.45, final_lr=None):
        if total_steps is None:
            raise ValueError("total_steps is required (the number of training steps).")
        self.lr_min = _positive("lr_min", lr_min)
        self.lr_max = _positive("lr_max", lr_max)
        _ordered("lr_min", self.lr_min, "lr_max", self.lr_max)
        self.total_steps = _int("total_steps", total_steps, 1)
        self.up_fraction = _unit_interval("up_fraction", up_fraction)
        self.down_fraction = _unit_interval("down_fraction", down_fraction, include_zero=True)
        if self.up_fraction + self.down_fraction > 1.0 + 1e-12:
            raise ValueError(
                f"up_fraction + down_fraction ({self.up_fraction} + {self.down_fraction}) "
                "must be <= 1."
            )
        self.final_lr = _non_negative(
            "final_lr", self.lr_min / 10.0 if final_lr is None else final_lr
        )
        _ordered("final_lr", self.final_lr, "lr_min", self.lr_min)

    def __call__(self, step):
        t = _step(step)
        ts = float(self.total_steps)
        up = self.up_fraction * ts
        down_end = min((self.up_fraction + self.down_fraction) * ts, ts)
        tail = ts - down_end
        rise = self.lr_min + (self.lr_max - self.lr_min) * ops.minimum(t / up, 1.0)
        down_len = max(down_end - up, 1e-12)
        fall = self.lr_max - (self.lr_max - self.lr_min) * ops.clip(
            (t - up) / down_len, 0.0, 1.0
        )
        if tail > 0:
            anneal = self.lr_min + (self.final_lr - self.lr_min) * ops.clip(
                (t - down_end) / tail, 0.0, 1.0
            )
        else:
            anneal = ops.zeros_like(t) + self.lr_min
        return ops.where(t <= up, rise, ops.where(t <= down_end, fall, anneal))

    def get_config(self):
        return {
            "lr_min": self.lr_min,
            "lr_max": self.lr_max,
            "total_steps": self.total_steps,
            "up_fraction": self.up_fraction,
            "down_fraction": self.down_fraction,
            "final_lr": self.final_lr,
        }


def _cosine(lr_min, lr_max, frac):
    """lr_min + (lr_max - lr_min) / 2 * (1 + cos(pi * frac))."""
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + ops.cos(math.pi * frac))


@keras.saving.register_keras_serializable(package="keras_caps")
class WarmRestarts(keras.optimizers.schedules.LearningRateSchedule):
    """SGDR cosine annealing with warm restarts (FasTrCaps eq. 2 / Alg. 2; Loshchilov & Hutter).

    lr = lr_min + (lr_max - lr_min) / 2 * (1 + cos(pi * t_cur / T_i)), cycle i of length
    T_i = first_cycle_steps * cycle_mult ** i, t_cur the step within the cycle. Step T_0 (the
    first restart) is lr_max again. The cycle index is closed form:
    i = floor(log(1 + step / T_0 * (mult - 1)) / log(mult)) (step // T_0 when mult = 1).

    Paper: lr_min 1e-4, lr_max 1e-3, cycle = one epoch (`WarmRestarts.from_epochs`).

    Args:
        lr_min: lower bound, 0 <= lr_min <= lr_max.
        lr_max: value at the start of each cycle (> 0).
        first_cycle_steps: T_0, integer >= 1.
        cycle_mult: growth of the cycle length after each restart, >= 1.
    """

    def __init__(self, lr_min, lr_max, first_cycle_steps, cycle_mult=1.0):
        self.lr_min = _non_negative("lr_min", lr_min)
        self.lr_max = _positive("lr_max", lr_max)
        _ordered("lr_min", self.lr_min, "lr_max", self.lr_max)
        self.first_cycle_steps = _int("first_cycle_steps (cycle length)", first_cycle_steps, 1)
        self.cycle_mult = _float("cycle_mult", cycle_mult)
        if self.cycle_mult < 1.0:
            raise ValueError(f"cycle_mult must be >= 1, got {self.cycle_mult}.")

    @classmethod
    def from_epochs(cls, lr_min, lr_max, first_cycle_epochs, steps_per_epoch, cycle_mult=1.0):
        """Cycle length in epochs: first_cycle_steps = round(first_cycle_epochs * steps_per_epoch).

        Args:
            first_cycle_epochs: epochs in the first cycle (> 0; may be fractional).
            steps_per_epoch: optimizer steps per epoch, integer >= 1.
        """
        epochs = _positive("first_cycle_epochs", first_cycle_epochs)
        spe = _int("steps_per_epoch", steps_per_epoch, 1)
        steps = int(round(epochs * spe))
        if steps < 1:
            raise ValueError(
                f"first_cycle_epochs ({epochs}) * steps_per_epoch ({spe}) gives a cycle of "
                f"{steps} steps; it must be >= 1."
            )
        return cls(lr_min, lr_max, steps, cycle_mult)

    def _cycle_start(self, i):
        t0, m = float(self.first_cycle_steps), self.cycle_mult
        return t0 * (ops.power(m, i) - 1.0) / (m - 1.0)

    def __call__(self, step):
        t0, m = float(self.first_cycle_steps), self.cycle_mult
        if m == 1.0:
            t = _step(step)
            frac = (t - ops.floor(t / t0) * t0) / t0
            return _cosine(self.lr_min, self.lr_max, frac)
        # Cycle index and start in float64: float32 powers put exact restarts (e.g. step 280 for
        # T_0 = 7, mult = 3) a fraction of a step late. `tol` absorbs the remaining rounding.
        t = ops.maximum(ops.cast(step, "float64"), 0.0)
        tol = 1e-9 * (t + 1.0)
        i = ops.floor(ops.log(1.0 + t / t0 * (m - 1.0)) / math.log(m))
        i = ops.where(t + tol < self._cycle_start(i), i - 1.0, i)
        i = ops.where(t + tol >= self._cycle_start(i + 1.0), i + 1.0, i)
        i = ops.maximum(i, 0.0)
        frac = ops.clip((t - self._cycle_start(i)) / (t0 * ops.power(m, i)), 0.0, 1.0)
        return _cosine(self.lr_min, self.lr_max, ops.cast(frac, _DTYPE))

    def get_config(self):
        return {
            "lr_min": self.lr_min,
            "lr_max": self.lr_max,
            "first_cycle_steps": self.first_cycle_steps,
            "cycle_mult": self.cycle_mult,
        }


@keras.saving.register_keras_serializable(package="keras_caps")
class CosineAnnealing(keras.optimizers.schedules.LearningRateSchedule):
    """One cosine from lr_max (step 0) to lr_min (step total_steps), constant lr_min after.

    Args:
        lr_min: end value, 0 <= lr_min <= lr_max.
        lr_max: start value (> 0).
        total_steps: integer >= 1.
    """

    def __init__(self, lr_min, lr_max, total_steps):
        self.lr_min = _non_negative("lr_min", lr_min)
        self.lr_max = _positive("lr_max", lr_max)
        _ordered("lr_min", self.lr_min, "lr_max", self.lr_max)
        self.total_steps = _int("total_steps", total_steps, 1)

    def __call__(self, step):
        frac = ops.minimum(_step(step) / self.total_steps, 1.0)
        return _cosine(self.lr_min, self.lr_max, frac)

    def get_config(self):
        return {"lr_min": self.lr_min, "lr_max": self.lr_max, "total_steps": self.total_steps}


_TRIANGULAR_MODES = ("triangular", "triangular2", "exp_range")


@keras.saving.register_keras_serializable(package="keras_caps")
class Triangular(keras.optimizers.schedules.LearningRateSchedule):
    """Cyclical learning rate (Smith, 2017): lr_min -> lr_max -> lr_min every 2 * step_size steps.

    cycle = floor(1 + step / (2 step_size)), x = |step / step_size - 2 cycle + 1|,
    lr = lr_min + (lr_max - lr_min) * max(0, 1 - x) * scale, where scale is 1 ("triangular"),
    1 / 2 ** (cycle - 1) ("triangular2": the amplitude halves every cycle) or gamma ** step
    ("exp_range"). Peaks at step_size * (2k + 1).

    Args:
        lr_min: lower bound, 0 <= lr_min <= lr_max.
        lr_max: upper bound (> 0).
        step_size: half-cycle length in steps, integer >= 1.
        mode: "triangular", "triangular2" or "exp_range".
        gamma: decay per step for "exp_range", in (0, 1].
    """

    def __init__(self, lr_min, lr_max, step_size, mode="triangular", gamma=1.0):
        self.lr_min = _non_negative("lr_min", lr_min)
        self.lr_max = _positive("lr_max", lr_max)
        _ordered("lr_min", self.lr_min, "lr_max", self.lr_max)
        self.step_size = _int("step_size (half-cycle length)", step_size, 1)
        if mode not in _TRIANGULAR_MODES:
            raise ValueError(f"mode must be one of {list(_TRIANGULAR_MODES)}, got {mode!r}.")
        self.mode = mode
        self.gamma = _unit_interval("gamma", gamma)

    def __call__(self, step):
        t = _step(step)
        s = float(self.step_size)
        cycle = ops.floor(1.0 + t / (2.0 * s))
        x = ops.abs(t / s - 2.0 * cycle + 1.0)
        height = ops.maximum(0.0, 1.0 - x)
        if self.mode == "triangular2":
            height = height / ops.power(2.0, cycle - 1.0)
        elif self.mode == "exp_range":
            height = height * ops.power(self.gamma, t)
        return self.lr_min + (self.lr_max - self.lr_min) * height

    def get_config(self):
        return {
            "lr_min": self.lr_min,
            "lr_max": self.lr_max,
            "step_size": self.step_size,
            "mode": self.mode,
            "gamma": self.gamma,
        }


@keras.saving.register_keras_serializable(package="keras_caps")
class PiecewiseCycles(keras.optimizers.schedules.LearningRateSchedule):
    """Segments, each with its own schedule evaluated on the step counted from the segment start.

    lr(step) = schedules[k](step - start_k) with start_0 = 0, start_k = boundaries[k - 1] and k
    the last segment with start_k <= step. WarmAdaBatch uses it for one warm-restart cycle per
    batch-size phase.

    Args:
        boundaries: strictly increasing step counts >= 1 where a new segment starts.
        schedules: len(boundaries) + 1 LearningRateSchedule objects (a number means FixedLR),
            or their `keras.saving.serialize_keras_object` dicts.
    """

    def __init__(self, boundaries, schedules):
        boundaries = [_int("each boundary", b, 1) for b in boundaries]
        for a, b in zip(boundaries[:-1], boundaries[1:]):
            if b <= a:
                raise ValueError(f"boundaries must be strictly increasing, got {boundaries}.")
        schedules = list(schedules)
        if len(schedules) != len(boundaries) + 1:
            raise ValueError(
                f"PiecewiseCycles needs len(boundaries) + 1 = {len(boundaries) + 1} schedules, "
                f"got {len(schedules)}."
            )
        self.boundaries = boundaries
        self.schedules = [self._as_schedule(s) for s in schedules]

    @staticmethod
    def _as_schedule(s):
        if isinstance(s, dict):
            s = keras.saving.deserialize_keras_object(s)
        elif isinstance(s, numbers.Real) and not isinstance(s, bool):
            s = FixedLR(s)
        if not isinstance(s, keras.optimizers.schedules.LearningRateSchedule):
            raise ValueError(
                f"each segment schedule must be a LearningRateSchedule or a number, got {s!r}."
            )
        return s

    @property
    def segment_starts(self):
        """First step of each segment: [0, *boundaries]."""
        return [0, *self.boundaries]

    def __call__(self, step):
        t = _step(step)
        lr = ops.cast(self.schedules[0](t), _DTYPE)
        for start, schedule in zip(self.boundaries, self.schedules[1:]):
            local = ops.maximum(t - float(start), 0.0)
            lr = ops.where(t >= float(start), ops.cast(schedule(local), _DTYPE), lr)
        return lr

    def get_config(self):
        return {
            "boundaries": list(self.boundaries),
            "schedules": [keras.saving.serialize_keras_object(s) for s in self.schedules],
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedules"] = [
            keras.saving.deserialize_keras_object(s) for s in config["schedules"]
        ]
        return cls(**config)


#: The learning-rate schedules by policy name (`make_schedule`, `keras_caps.schedules.LR_POLICIES`).
_SCHEDULES = {
    "fixed": FixedLR,
    "step": StepDecay,
    "exponential": ExponentialDecay,
    "polynomial": PolynomialDecay,
    "one_cycle": OneCycle,
    "warm_restarts": WarmRestarts,
    "cosine": CosineAnnealing,
    "triangular": Triangular,
}


def make_schedule(name, **params):
    """A learning-rate schedule by name, e.g. make_schedule("one_cycle", total_steps=1000).

    `name`: a key of `_SCHEDULES` (every name of `LR_POLICIES` but "warmadabatch", which
    needs a batch policy: `schedule_for_run`). `params` go to the class constructor.
    """
    return _lookup("learning-rate schedule", _SCHEDULES, name)(**params)


__all__ = [
    "CosineAnnealing",
    "ExponentialDecay",
    "FixedLR",
    "OneCycle",
    "PiecewiseCycles",
    "PolynomialDecay",
    "StepDecay",
    "Triangular",
    "WarmRestarts",
    "make_schedule",
]
