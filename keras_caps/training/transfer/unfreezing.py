"""Layer-wise fine-tuning (paper 000, Sec. 3.5.1): the last layers first, earlier layers
unfrozen stage by stage (`GradualUnfreezing`, a Keras callback)."""

from __future__ import annotations

import contextlib

import keras


def default_stages(model):
    """Layer-name stages from the head back to the input: [[class_caps, decoder, ...],
    [primary_caps], ..., [conv1]]; each BatchNormalization goes with the conv before it."""
    groups = []
    for layer in model.layers:
        if not layer.weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization) and groups:
            groups[-1].append(layer.name)
        else:
            groups.append([layer.name])
    if not groups:
        raise ValueError(f"model {model.name!r} has no layers with weights to unfreeze.")
    names = [g[0] for g in groups]
    head = names.index("class_caps") if "class_caps" in names else len(groups) - 1
    head_group = [n for g in groups[head:] for n in g]
    return [head_group] + [g for g in reversed(groups[:head])]


@keras.saving.register_keras_serializable(package="keras_caps")
class GradualUnfreezing(keras.callbacks.Callback):
    """Layer-wise fine-tuning: last layers first, earlier layers unfrozen stage by stage.

    At the start of each epoch the layers of every stage that has begun are trainable, all
    other layers with weights are frozen, and the learning rate is
    base_learning_rate * lr_factor ** (stages begun - 1). The state is a pure function of the
    epoch, so per-epoch `fit` calls (`fit_capsnet`) and resumed runs get the same schedule.
    Layers named in no stage stay frozen throughout.

    Mechanism: freezing sets `variable.trainable = False` on the layer's trainable variables
    (Keras's `trainable_weights` filters on it) and re-traces the train step with
    `model.make_train_function(force=True)` whenever the set changes. Variable flags, unlike
    `layer.trainable`, are not saved in the model config: a checkpoint reloads with every
    variable trainable, so the optimizer is rebuilt over all of them and can update a layer
    unfrozen later (an optimizer only updates variables it was built with). Compile the
    model with all layers trainable; the callback freezes them. BatchNormalization moving
    statistics of frozen layers still adapt to the new data (only gamma / beta are frozen).

    Args:
        schedule: "auto" (`default_stages(model)`), a list of stages (lists of layer names,
            last layers first; stage k begins at epoch k * epochs_per_stage), or a dict
            {epoch (0-based): [layer names]} that must include epoch 0.
        epochs_per_stage: epochs per stage for "auto" / list schedules.
        lr_factor: learning-rate factor per stage (paper: a smaller LR for earlier layers).
        base_learning_rate: the stage-0 LR (default: the optimizer's LR at the first
            train begin; must be a float LR, not a schedule, when lr_factor != 1).
        verbose: print each change.
    Attributes:
        log: [{"epoch", "stage", "trainable", "learning_rate"}] for each epoch begun.
    """

    def __init__(self, schedule="auto", epochs_per_stage=1, lr_factor=0.5,
                 base_learning_rate=None, verbose=0):
        super().__init__()
        if int(epochs_per_stage) < 1:
            raise ValueError(f"epochs_per_stage must be >= 1, got {epochs_per_stage}.")
        if not 0 < float(lr_factor) <= 1:
            raise ValueError(f"lr_factor must lie in (0, 1], got {lr_factor}.")
        if isinstance(schedule, dict):
            schedule = {int(k): list(v) for k, v in schedule.items()}
            if 0 not in schedule:
                raise ValueError("a dict schedule must list the layers trainable from epoch 0, "
                                 f"e.g. {{0: ['class_caps'], 2: ['primary_caps']}}; got keys "
                                 f"{sorted(schedule)}.")
        elif schedule != "auto" and not (isinstance(schedule, (list, tuple)) and schedule):
            raise ValueError("schedule must be 'auto', a non-empty list of stages or a dict "
                             f"{{epoch: [layer names]}}, got {schedule!r}.")
        self.schedule = schedule
        self.epochs_per_stage = int(epochs_per_stage)
        self.lr_factor = float(lr_factor)
        self.base_learning_rate = (None if base_learning_rate is None
                                   else float(base_learning_rate))
        self.verbose = int(verbose)
        self.starts = None
        self.log = []
        self._managed = None
        self._model_id = None

    def get_config(self):
        return {"schedule": self.schedule, "epochs_per_stage": self.epochs_per_stage,
                "lr_factor": self.lr_factor, "base_learning_rate": self.base_learning_rate,
                "verbose": self.verbose}

    # -- the schedule as a function of the epoch ------------------------------------------------

    def resolve(self, model):
        """Sorted [(start epoch, [layer names])] for `model` (checks the names exist)."""
        if self.schedule == "auto":
            stages = default_stages(model)
        elif isinstance(self.schedule, dict):
            stages = None
            starts = sorted(self.schedule.items())
        else:
            stages = [list(s) for s in self.schedule]
        if stages is not None:
            starts = [(k * self.epochs_per_stage, s) for k, s in enumerate(stages)]
        known = {layer.name for layer in model.layers}
        unknown = sorted({n for _, names in starts for n in names} - known)
        if unknown:
            raise ValueError(f"GradualUnfreezing: model {model.name!r} has no layers {unknown}; "
                             f"its layers are {[layer.name for layer in model.layers]}.")
        return starts

    def stage_at(self, epoch):
        """Index of the latest stage begun at `epoch` (0-based)."""
        return sum(1 for start, _ in self.starts if start <= epoch) - 1

    def trainable_at(self, epoch):
        """Names of the layers trainable during `epoch`."""
        return sorted({n for start, names in self.starts if start <= epoch for n in names})

    def learning_rate_at(self, epoch):
        return self.base_learning_rate * self.lr_factor ** self.stage_at(epoch)

    # -- Keras hooks ----------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        if self._model_id == id(model):
            return  # a later fit() on the same model (per-epoch loops): already set up
        self._model_id = id(model)
        self.starts = self.resolve(model)
        # Layers and the variables they train, recorded once (before any freezing).
        self._managed = {layer.name: [v for v in layer.weights if v.trainable]
                         for layer in model.layers if layer.weights}
        scheduled = {n for _, names in self.starts for n in names}
        frozen = sorted(n for n in scheduled if n in self._managed and not self._managed[n])
        if frozen:
            raise ValueError(
                f"GradualUnfreezing schedules layers {frozen} but they have no trainable "
                "weights at the start of training (frozen already, e.g. a teacher that a "
                "Distiller froze): set model.trainable = True (or reload the model) first."
            )
        optimizer = model.optimizer
        if not optimizer.built:
            # Build over every variable now (fit would build it lazily over the unfrozen ones
            # only, and could then never update the layers unfrozen later).
            strategy = getattr(model, "distribute_strategy", None)
            with strategy.scope() if strategy is not None else contextlib.nullcontext():
                optimizer.build(model.trainable_variables)
        known = getattr(optimizer, "_trainable_variables_indices", None)
        if getattr(optimizer, "built", False) and known is not None:
            missing = [v.path for vs in self._managed.values() for v in vs
                       if optimizer._var_key(v) not in known]
            if missing:
                raise ValueError(
                    f"the optimizer was built without {missing}: compile and fit the model with "
                    "every layer trainable and let GradualUnfreezing freeze them (an optimizer "
                    "can only update the variables it was built with)."
                )
        if self.base_learning_rate is None:
            if isinstance(getattr(optimizer, "_learning_rate", None),
                          keras.optimizers.schedules.LearningRateSchedule):
                if self.lr_factor != 1:
                    raise ValueError(
                        "GradualUnfreezing lowers the learning rate per stage, but the optimizer "
                        "uses a LearningRateSchedule; use a float learning rate or "
                        "lr_factor=1.0."
                    )
                self.base_learning_rate = None
            else:
                self.base_learning_rate = float(keras.ops.convert_to_numpy(
                    optimizer.learning_rate))

    def on_epoch_begin(self, epoch, logs=None):
        wanted = set(self.trainable_at(epoch))
        changed = False
        for name, variables in self._managed.items():
            flag = name in wanted
            for v in variables:
                if v.trainable != flag:
                    v.trainable = flag
                    changed = True
        if changed:
            self.model.make_train_function(force=True)
        lr = None
        if self.base_learning_rate is not None and self.lr_factor != 1:
            lr = self.learning_rate_at(epoch)
            self.model.optimizer.learning_rate = lr
        entry = {"epoch": int(epoch), "stage": self.stage_at(epoch), "trainable": sorted(wanted),
                 "learning_rate": lr}
        self.log.append(entry)
        if self.verbose and changed:
            print(f"GradualUnfreezing: epoch {epoch + 1}, stage {entry['stage']}, trainable "
                  f"{entry['trainable']}, learning rate {lr}")


def trainable_layer_names(model):
    """Names of the layers of `model` that currently have trainable weights."""
    return [layer.name for layer in model.layers if layer.trainable_weights]


__all__ = ["GradualUnfreezing", "default_stages", "trainable_layer_names"]
