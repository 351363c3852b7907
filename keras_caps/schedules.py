"""Learning-rate and batch-size policies (FasTrCaps, Marchisio et al., Sections II-IV).

Learning-rate policies are `keras.optimizers.schedules.LearningRateSchedule` subclasses: pure
functions of the optimizer step, written with `keras.ops`, so they run on python ints, NumPy
arrays and symbolic tensors inside a compiled (tf.function / XLA) train step. They are
elementwise: an array of steps gives an array of learning rates (the plots use this). Steps
below 0 are treated as 0. Every constant is a constructor argument and is validated there.

Batch-size policies are plain python objects whose `batch_size(epoch)` is a pure function of the
0-based epoch. A training binary rebuilds its dataset per epoch with that batch size; the
optimizer's step counter keeps running across epochs, so step-based LR schedules stay in sync.

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

from __future__ import annotations

import math
import numbers

import keras
from keras import ops

_DTYPE = "float32"


# --------------------------------------------------------------------------- validation helpers


def _float(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    return value


def _positive(name, value):
    value = _float(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}.")
    return value


def _non_negative(name, value):
    value = _float(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}.")
    return value


def _int(name, value, minimum):
    """An integer >= `minimum`; integral floats (e.g. from flags or JSON) are accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if isinstance(value, numbers.Integral):
        value = int(value)
    elif isinstance(value, numbers.Real) and float(value).is_integer():
        value = int(value)
    else:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}.")
    return value


def _ordered(low_name, low, high_name, high):
    if low > high:
        raise ValueError(f"{low_name} ({low}) must be <= {high_name} ({high}).")


def _unit_interval(name, value, include_zero=False):
    value = _float(name, value)
    if not ((0.0 <= value if include_zero else 0.0 < value) and value <= 1.0):
        low = "[0" if include_zero else "(0"
        raise ValueError(f"{name} must be in {low}, 1], got {value}.")
    return value


def _step(step):
    """The step as a float32 tensor, clipped below at 0."""
    return ops.maximum(ops.cast(step, _DTYPE), 0.0)


# --------------------------------------------------------------------------- LR schedules


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
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = initial_lr * drop ** floor(step / step_size).

    Args:
        initial_lr: learning rate at step 0 (> 0).
        drop: factor applied every `step_size` steps, in (0, 1].
        step_size: steps between drops (integer >= 1).
    """

    def __init__(self, initial_lr, drop, step_size):
        self.initial_lr = _positive("initial_lr", initial_lr)
        self.drop = _unit_interval("drop", drop)
        self.step_size = _int("step_size", step_size, 1)

    def __call__(self, step):
        n = ops.floor(_step(step) / self.step_size)
        return self.initial_lr * ops.power(self.drop, n)

    def get_config(self):
        return {"initial_lr": self.initial_lr, "drop": self.drop, "step_size": self.step_size}


@keras.saving.register_keras_serializable(package="keras_caps")
class ExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = initial_lr * decay_rate ** (step / decay_steps) (floored when `staircase`).

    Paper values are the defaults: 0.001, 0.96 every 2000 steps.

    Args:
        initial_lr: learning rate at step 0 (> 0).
        decay_rate: in (0, 1].
        decay_steps: integer >= 1.
        staircase: decay in discrete steps of `decay_steps`.
    """

    def __init__(self, initial_lr=1e-3, decay_rate=0.96, decay_steps=2000, staircase=False):
        self.initial_lr = _positive("initial_lr", initial_lr)
        self.decay_rate = _unit_interval("decay_rate", decay_rate)
        self.decay_steps = _int("decay_steps", decay_steps, 1)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = ops.floor(p)
        return self.initial_lr * ops.power(self.decay_rate, p)

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

    Constant `end_lr` after `decay_steps`.

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
        lr_max: start value (> 0).
        lr_min: end value, 0 <= lr_min <= lr_max.
        total_steps: integer >= 1.
    """

    def __init__(self, lr_max, lr_min, total_steps):
        self.lr_max = _positive("lr_max", lr_max)
        self.lr_min = _non_negative("lr_min", lr_min)
        _ordered("lr_min", self.lr_min, "lr_max", self.lr_max)
        self.total_steps = _int("total_steps", total_steps, 1)

    def __call__(self, step):
        frac = ops.minimum(_step(step) / self.total_steps, 1.0)
        return _cosine(self.lr_min, self.lr_max, frac)

    def get_config(self):
        return {"lr_max": self.lr_max, "lr_min": self.lr_min, "total_steps": self.total_steps}


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


def _lookup(kind, table, name):
    if not isinstance(name, str):
        raise ValueError(f"{kind} name must be a string, got {name!r}.")
    key = name.strip().lower().replace("-", "_")
    if key not in table:
        raise ValueError(f"Unknown {kind} {name!r}; valid names: {', '.join(sorted(table))}.")
    return table[key]


def make_schedule(name, **params):
    """A learning-rate schedule by name, e.g. make_schedule("one_cycle", total_steps=1000).

    Names: fixed, step, exponential, polynomial, one_cycle, warm_restarts, cosine, triangular.
    `params` go to the class constructor.
    """
    return _lookup("learning-rate schedule", _SCHEDULES, name)(**params)


_OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "adagrad": keras.optimizers.Adagrad,
    "rmsprop": keras.optimizers.RMSprop,
}


def make_optimizer(name="adam", learning_rate=1e-3, **kwargs):
    """A Keras optimizer by name: "adam" (default), "sgd", "adagrad", "rmsprop".

    Args:
        learning_rate: a float or a LearningRateSchedule.
        **kwargs: passed on to the optimizer (e.g. momentum for SGD, clipnorm).
    """
    cls = _lookup("optimizer", _OPTIMIZERS, name)
    return cls(learning_rate=learning_rate, **kwargs)


# --------------------------------------------------------------------------- batch-size policies


def _epoch(epoch):
    return _int("epoch (0-based)", epoch, 0)


class BatchSizePolicy:
    """Base class: `batch_size(epoch)` is a pure function of the 0-based epoch."""

    name = None

    def batch_size(self, epoch):
        raise NotImplementedError

    def steps_per_epoch(self, epoch, num_examples):
        """Optimizer steps in `epoch`: ceil(num_examples / batch_size(epoch))."""
        n = _int("num_examples", num_examples, 1)
        return -(-n // self.batch_size(epoch))

    def total_steps(self, num_examples, epochs):
        """Optimizer steps in the first `epochs` epochs."""
        return sum(steps_for_epochs(self, num_examples, epochs))

    def phase_boundaries(self, num_examples, epochs):
        """Cumulative steps at which the batch size changes, within the first `epochs` epochs.

        E.g. AdaBatch(exponent=4), 100 examples, 20 epochs: 3 epochs x 100 steps, 5 x 7, 5 x 4,
        then 2 a epoch -> [300, 335, 355]. Empty when the batch size never changes.
        """
        epochs = _int("epochs", epochs, 0)
        out, total, previous = [], 0, None
        for epoch in range(epochs):
            size = self.batch_size(epoch)
            if previous is not None and size != previous:
                out.append(total)
            total += self.steps_per_epoch(epoch, num_examples)
            previous = size
        return out

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class FixedBatch(BatchSizePolicy):
    """The same batch size every epoch."""

    name = "fixed"

    def __init__(self, batch_size=16):
        self._batch_size = _int("batch_size", batch_size, 1)

    def batch_size(self, epoch):
        _epoch(epoch)
        return self._batch_size

    def get_config(self):
        return {"batch_size": self._batch_size}


class AdaBatch(BatchSizePolicy):
    """Adaptive batch size (FasTrCaps Alg. 3).

    Epochs 0 .. warmup_epochs - 1: warmup_batch_size (paper: 1 for 3 epochs); then
    2**exponent, 2**(exponent + 1), ... each for `epochs_per_step` epochs, `growth_steps` sizes in
    all, the last one held thereafter. Defaults (paper, P = 4): epochs 0-2 -> 1, 3-7 -> 16,
    8-12 -> 32, 13+ -> 64.

    Args:
        exponent: P, integer >= 0.
        warmup_epochs: integer >= 0.
        epochs_per_step: epochs per grown size (integer >= 1).
        growth_steps: number of sizes after the warm-up (integer >= 1).
        warmup_batch_size: integer >= 1.
    """

    name = "adabatch"

    def __init__(self, exponent=4, warmup_epochs=3, epochs_per_step=5, growth_steps=3,
                 warmup_batch_size=1):
        self.exponent = _int("exponent", exponent, 0)
        self.warmup_epochs = _int("warmup_epochs", warmup_epochs, 0)
        self.epochs_per_step = _int("epochs_per_step", epochs_per_step, 1)
        self.growth_steps = _int("growth_steps", growth_steps, 1)
        self.warmup_batch_size = _int("warmup_batch_size", warmup_batch_size, 1)

    def batch_size(self, epoch):
        epoch = _epoch(epoch)
        if epoch < self.warmup_epochs:
            return self.warmup_batch_size
        k = min((epoch - self.warmup_epochs) // self.epochs_per_step, self.growth_steps - 1)
        return 2 ** (self.exponent + k)

    def get_config(self):
        return {
            "exponent": self.exponent,
            "warmup_epochs": self.warmup_epochs,
            "epochs_per_step": self.epochs_per_step,
            "growth_steps": self.growth_steps,
            "warmup_batch_size": self.warmup_batch_size,
        }


class WarmAdaBatch(AdaBatch):
    """WarmAdaBatch (FasTrCaps Alg. 5): AdaBatch sizes plus warm restarts synchronised with them.

    The batch sizes follow AdaBatch; the default `growth_steps=1` is the paper's Section IV-E
    setting (batch 1 for 3 epochs, then 16 for the rest; its T_i = 27 * 3,750 steps assumes a
    constant 16). `lr_schedule` gives one cosine cycle over exactly the warm-up (small-batch)
    steps and a second one over exactly all remaining steps, so the learning rate restarts at
    lr_max on the first step with the larger batch.
    """

    name = "warmadabatch"

    def __init__(self, exponent=4, warmup_epochs=3, epochs_per_step=5, growth_steps=1,
                 warmup_batch_size=1):
        super().__init__(exponent, warmup_epochs, epochs_per_step, growth_steps,
                         warmup_batch_size)

    def lr_schedule(self, num_examples, epochs, lr_min=1e-4, lr_max=1e-3):
        """The WarmAdaBatch learning-rate schedule for `epochs` epochs of `num_examples`.

        Returns:
            PiecewiseCycles: WarmRestarts(lr_min, lr_max, S1) on steps [0, S1), S1 = steps of the
            first min(warmup_epochs, epochs) epochs, then WarmRestarts(lr_min, lr_max, S - S1)
            on [S1, S), S = total steps. One cycle over all S steps when there is no warm-up or
            `epochs` <= warmup_epochs.
        """
        epochs = _int("epochs", epochs, 1)
        _int("num_examples", num_examples, 1)
        total = self.total_steps(num_examples, epochs)
        if self.warmup_epochs == 0 or epochs <= self.warmup_epochs:
            return PiecewiseCycles([], [WarmRestarts(lr_min, lr_max, total)])
        first = self.total_steps(num_examples, self.warmup_epochs)
        return PiecewiseCycles(
            [first],
            [WarmRestarts(lr_min, lr_max, first), WarmRestarts(lr_min, lr_max, total - first)],
        )


_BATCH_POLICIES = {"fixed": FixedBatch, "adabatch": AdaBatch, "warmadabatch": WarmAdaBatch}


def make_batch_policy(name, **params):
    """A batch-size policy by name: "fixed", "adabatch", "warmadabatch"."""
    return _lookup("batch-size policy", _BATCH_POLICIES, name)(**params)


def steps_for_epochs(policy, num_examples, epochs):
    """Optimizer steps in each of the first `epochs` epochs under `policy` (a list of ints)."""
    epochs = _int("epochs", epochs, 0)
    return [policy.steps_per_epoch(e, num_examples) for e in range(epochs)]


LR_POLICIES = ("fixed", "step", "exponential", "polynomial", "one_cycle", "warm_restarts",
               "cosine", "triangular", "warmadabatch")


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
    total = sum(per_epoch)

    def epochs_to_steps(n):
        whole = int(n)
        steps = sum(per_epoch[:whole])
        if whole < len(per_epoch):
            steps += int(round((n - whole) * per_epoch[whole]))
        return max(1, steps)

    policy = policy.lower().replace("-", "_")
    if policy == "warmadabatch":
        if not isinstance(batch_policy, WarmAdaBatch):
            raise ValueError("lr policy 'warmadabatch' needs batch policy 'warmadabatch'.")
        return batch_policy.lr_schedule(num_examples, epochs, lr_min=lr_min, lr_max=lr)
    if policy == "fixed":
        return FixedLR(lr)
    if policy == "step":
        return StepDecay(lr, drop, epochs_to_steps(drop_epochs))
    if policy == "exponential":
        return ExponentialDecay(lr, decay_rate, decay_steps)
    if policy == "polynomial":
        return PolynomialDecay(lr, lr_min, total, power)
    if policy == "one_cycle":
        return OneCycle(lr_min, lr, total)
    if policy == "warm_restarts":
        return WarmRestarts(lr_min, lr, epochs_to_steps(cycle_epochs), cycle_mult)
    if policy == "cosine":
        return CosineAnnealing(lr, lr_min, total)
    if policy == "triangular":
        return Triangular(lr_min, lr, epochs_to_steps(cycle_epochs))
    raise ValueError(f"unknown lr policy {policy!r}; choose one of {list(LR_POLICIES)}.")
