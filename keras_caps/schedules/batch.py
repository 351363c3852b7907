"""Batch-size policies (FasTrCaps Alg. 3 and 5): `batch_size(epoch)`, a pure function of the epoch.

Plain python objects. A training binary rebuilds its dataset per epoch with that batch size;
the optimizer's step counter keeps running across epochs, so step-based LR schedules stay in
sync. `WarmAdaBatch.lr_schedule` gives the warm restarts synchronised with its batch sizes.
"""

from __future__ import annotations

from keras_caps.schedules._checks import _int, _lookup
from keras_caps.schedules.lr import PiecewiseCycles, WarmRestarts


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


#: The batch-size policies by name (each class's `name`).
_BATCH_POLICIES = {policy.name: policy for policy in (FixedBatch, AdaBatch, WarmAdaBatch)}
BATCH_POLICIES = tuple(_BATCH_POLICIES)


def make_batch_policy(name, **params):
    """A batch-size policy by name: "fixed", "adabatch", "warmadabatch"."""
    return _lookup("batch-size policy", _BATCH_POLICIES, name)(**params)


def steps_for_epochs(policy, num_examples, epochs):
    """Optimizer steps in each of the first `epochs` epochs under `policy` (a list of ints)."""
    epochs = _int("epochs", epochs, 0)
    return [policy.steps_per_epoch(e, num_examples) for e in range(epochs)]


__all__ = [
    "BATCH_POLICIES",
    "AdaBatch",
    "BatchSizePolicy",
    "FixedBatch",
    "WarmAdaBatch",
    "make_batch_policy",
    "steps_for_epochs",
]
