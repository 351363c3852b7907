"""Compiling and fitting keras_caps models: resumable, per-epoch loop, any batch-size policy."""

from __future__ import annotations

import contextlib
import os
import time

import keras

from keras_caps import data as data_lib
from keras_caps.io_utils import save_model, write_json
from keras_caps.losses import MarginLoss, ReconstructionLoss
from keras_caps.models.heads import has_decoder, image_input
from keras_caps.training.callbacks import ResumableCheckpoint, load_last_model, read_state


def accuracy_key(model):
    """Key of the class accuracy in Keras logs ("val_" + key for validation).

    Keras prefixes metric names with the output name only when a model has several outputs.
    """
    return "lengths_accuracy" if has_decoder(model) else "accuracy"


def compile_capsnet(model, optimizer=None, recon_weight=0.0005, m_plus=0.9, m_minus=0.1,
                    down_weight=0.5, jit_compile="auto", run_eagerly=False):
    """Compiles a keras_caps model with the margin loss (+ reconstruction loss with a decoder).

    Args:
        model: from `capsnet` / `deep_capsnet`.
        optimizer: a Keras optimizer (default Adam(1e-3)).
        recon_weight: weight of the sum-of-squares reconstruction loss (Sabour: 0.0005).
        m_plus, m_minus, down_weight: the margin loss (Sabour: 0.9, 0.1, 0.5).
        jit_compile: passed to `model.compile` ("auto": XLA only where Keras enables it).
        run_eagerly: train without tf.function (slow; for debugging a layer with pdb/print).
    Returns:
        The model, compiled; its accuracy is logged under `accuracy_key(model)`.
    """
    losses = {"lengths": MarginLoss(m_plus, m_minus, down_weight)}
    if has_decoder(model):
        losses["reconstruction"] = ReconstructionLoss(recon_weight)
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-3),
        loss=losses,
        metrics={"lengths": [keras.metrics.CategoricalAccuracy(name="accuracy")]},
        jit_compile=jit_compile,
        run_eagerly=run_eagerly,
    )
    return model


def model_io(model):
    """A tf.data map function (image, one-hot label) -> (model inputs, targets) for `model`."""
    if has_decoder(model):
        return lambda x, y: ({"image": x, "label": y}, {"lengths": y, "reconstruction": x})
    return lambda x, y: (x, {"lengths": y})


def _check_arrays(name, arrays, model):
    images, labels = arrays
    expected = tuple(image_input(model).shape[1:])
    if tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"{name} images have shape {tuple(images.shape[1:])} but the model expects "
            f"{expected}; build the model with input_shape={tuple(images.shape[1:])} or "
            "choose the matching dataset."
        )
    if len(images) != len(labels):
        raise ValueError(f"{name}: {len(images)} images but {len(labels)} labels.")
    if len(images) == 0:
        raise ValueError(f"{name} split is empty.")


def batch_size_fn(batch_size=None, batch_policy=None):
    """epoch -> batch size: the policy's, or a validated fixed size."""
    if batch_policy is not None:
        return batch_policy.batch_size
    if batch_size is None or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    fixed = int(batch_size)
    return lambda epoch: fixed


def resume_or_build(model_dir, build, strategy=None):
    """(model, state, checkpoint_dir): the last checkpoint under model_dir, or `build()`.

    Both run inside the strategy's scope; state is None when nothing was checkpointed.
    """
    os.makedirs(model_dir, exist_ok=True)
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    state = read_state(checkpoint_dir)
    with scope:
        model = load_last_model(checkpoint_dir) if state else build()
    return model, state, checkpoint_dir


def fit_capsnet(
    build_model,
    train_data,
    val_data,
    model_dir,
    epochs,
    batch_size=None,
    batch_policy=None,
    strategy=None,
    augment_shift=0,
    seed=0,
    verbose=1,
    callbacks=(),
):
    """Trains a model epoch by epoch, resuming from `model_dir` when a checkpoint is there.

    Each epoch rebuilds its tf.data pipeline with the batch size the policy gives for that
    epoch (so AdaBatch-style policies really change the batch), then runs one `fit` epoch.
    Under `model_dir` it writes checkpoints/ (resume point), best.keras, history.csv,
    logs/ (TensorBoard), and at the end model.keras and metrics.json.

    Args:
        build_model: callable returning a compiled model (see `compile_capsnet`); called
            inside the strategy scope, only when there is no checkpoint to resume.
        train_data, val_data: (images (N, H, W, C) uint8 or float in [0, 1], labels (N,) int).
        model_dir: run folder.
        epochs: total epochs (a resumed run trains only the missing ones).
        batch_size: fixed batch size (when `batch_policy` is None).
        batch_policy: object with `batch_size(epoch)` (0-based epoch).
        strategy: a tf.distribute strategy (None: default).
        augment_shift: random shift augmentation in pixels (0: none).
        seed: shuffling / augmentation seed (epoch e uses seed + e, so resumes reproduce).
        verbose: Keras progress bar (1) or silence (0).
        callbacks: extra Keras callbacks.
    Returns:
        metrics dict: test_accuracy, test_loss, epochs, train_time_s, params, history, ...
    """
    batch_of = batch_size_fn(batch_size, batch_policy)
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    model, state, checkpoint_dir = resume_or_build(model_dir, build_model, strategy)
    _check_arrays("training", train_data, model)
    _check_arrays("validation", val_data, model)
    start = state["epoch"] if state else 0
    monitor = "val_" + accuracy_key(model)
    checkpoint = ResumableCheckpoint(
        model_dir,
        history=state["history"] if state else None,
        monitor=monitor,
        best=state["best"] if state else None,
    )
    timer = EpochTimer()
    tensorboard = keras.callbacks.TensorBoard(os.path.join(model_dir, "logs"))
    num_classes = model.get_layer("length").output.shape[-1]
    io = model_io(model)
    val_ds = data_lib.make_dataset(
        *val_data, batch_size=max(batch_of(0), 64), shuffle=False, num_classes=num_classes
    ).map(io)
    if start and verbose:
        print(f"Resuming from {checkpoint_dir}: {start} of {epochs} epochs done.")
    for epoch in range(start, int(epochs)):
        train_ds = data_lib.make_dataset(
            *train_data,
            batch_size=batch_of(epoch),
            shuffle=True,
            augment_shift=augment_shift,
            seed=seed + epoch,
            num_classes=num_classes,
        ).map(io)
        model.fit(
            train_ds,
            initial_epoch=epoch,
            epochs=epoch + 1,
            validation_data=val_ds,
            # user callbacks before the checkpoint, so metrics they add reach history.csv
            callbacks=[timer, *callbacks, checkpoint, tensorboard],
            shuffle=False,  # the dataset is already shuffled per epoch
            verbose=verbose,
        )
    results = model.evaluate(val_ds, verbose=0, return_dict=True)
    history = checkpoint.history
    metrics = {
        "test_accuracy": float(results[accuracy_key(model)]),
        "test_loss": float(results["loss"]),
        "best_test_accuracy": max((r.get(monitor, 0.0) for r in history), default=None),
        "epochs": len(history),
        "train_time_s": float(sum(r.get("time_s", 0.0) for r in history)),
        "params": int(model.count_params()),
        "history": history,
        "model_path": os.path.join(model_dir, "model.keras"),
    }
    save_model(model, metrics["model_path"])
    write_json(os.path.join(model_dir, "metrics.json"), metrics)
    return metrics


class EpochTimer(keras.callbacks.Callback):
    """Adds the epoch's wall time as "time_s" to the logs (before the checkpoint records them)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["time_s"] = time.perf_counter() - self._start
