"""Fitting keras_caps models: the one resumable, per-epoch loop (`fit_resumable`) that every
trainer runs through, with any batch-size policy.

`compile_capsnet` and `accuracy_key` live in `keras_caps.models.compiling` (re-exported here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable

import keras

from keras_caps import data as data_lib
from keras_caps import validation
from keras_caps.data_sources import StreamedSplit, streamed_errors
from keras_caps.io_utils import save_model, write_json
from keras_caps.models.compiling import accuracy_key, compile_capsnet  # noqa: F401 (re-exported)
from keras_caps.models.heads import has_decoder, image_input
from keras_caps.training.callbacks import (
    ResumableCheckpoint,
    StopOnNonFiniteLoss,
    load_last_model,
    read_state,
)
from keras_caps.training.progress import EpochProgress
from keras_caps.training.run_dir import RunDirectory, data_fingerprint


def model_io(model):
    """A tf.data map function (image, one-hot label) -> (model inputs, targets) for `model`."""
    if has_decoder(model):
        return lambda x, y: ({"image": x, "label": y}, {"lengths": y, "reconstruction": x})
    return lambda x, y: (x, {"lengths": y})


def _check_arrays(name, arrays, model):
    expected = tuple(image_input(model).shape[1:])
    if isinstance(arrays, StreamedSplit):
        if tuple(arrays.image_shape) != expected:
            raise validation.InputDataError(
                f"{name} images of {arrays.source} are {tuple(arrays.image_shape)} but the model "
                f"expects {expected}; pass --image_size / --grayscale to match, or build the "
                f"model with input_shape={tuple(arrays.image_shape)}.")
        return
    images, labels = arrays
    if tuple(images.shape[1:]) != expected:
        raise validation.InputDataError(
            f"{name} images have shape {tuple(images.shape[1:])} but the model expects "
            f"{expected}; build the model with input_shape={tuple(images.shape[1:])} or "
            "choose the matching dataset."
        )
    if len(images) != len(labels):
        raise validation.InputDataError(f"{name}: {len(images)} images but {len(labels)} labels.")
    if len(images) == 0:
        raise validation.InputDataError(f"{name} split is empty.")


def check_splits(train_data, val_data):
    """Both (images, labels) splits through `keras_caps.validation` (dtype, range, finite); a
    `StreamedSplit` (checked as it is read) passes as it is."""
    return tuple(split if isinstance(split, StreamedSplit)
                 else validation.check_dataset(*split, name=name)
                 for name, split in (("training", train_data), ("validation", val_data)))


def num_examples(split):
    """N of an (images, labels) split or a `StreamedSplit`."""
    return len(split) if isinstance(split, StreamedSplit) else len(split[0])


def split_dataset(split, batch_size, num_classes, **kwargs):
    """tf.data of (x float32 (B, H, W, C), y one-hot (B, K)) batches of an (images, labels)
    split (`keras_caps.data.make_dataset`) or a `StreamedSplit` (read from disk), with the
    same shuffling, shifts and scaling; kwargs: shuffle, augment_shift, seed.

    Example:
        >>> ds = split_dataset((images, labels), batch_size=64, num_classes=10)  # doctest: +SKIP
    """
    if isinstance(split, StreamedSplit):
        return split.dataset(batch_size=batch_size, num_classes=num_classes, **kwargs)
    return data_lib.make_dataset(*split, batch_size=batch_size, num_classes=num_classes, **kwargs)


def _fingerprint(train_data, val_data):
    """The run's data identity: `data_fingerprint` of arrays (unchanged, so runs resume), the
    file lists of streamed splits."""
    splits = (train_data, val_data)
    if not any(isinstance(s, StreamedSplit) for s in splits):
        return data_fingerprint(train_data, val_data)
    return {"splits": [s.fingerprint() if isinstance(s, StreamedSplit) else data_fingerprint(s)
                       for s in splits]}


def is_chief(strategy):
    """Whether this process writes the run's results: True except for the non-chief workers
    of a multi-worker strategy (task "chief", or "worker" 0 when there is no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return task_type == "worker" and int(resolver.task_id) == 0 and "chief" not in cluster


@contextlib.contextmanager
def run_directory(model_dir, strategy=None, config=None, overwrite=False, verbose=1):
    """The RunDirectory a training loop writes to (lock, checkpoint state, config checks).

    The chief (every single-process run) locks and writes `model_dir`. A non-chief worker of a
    multi-worker run resumes from the chief's checkpoint in `model_dir` but writes to a
    temporary folder that is removed afterwards (as in Keras' multi-worker guide), so only the
    chief's files end up in `model_dir`. Yields (RunDirectory, folder to write to).
    """
    if is_chief(strategy):
        with RunDirectory(model_dir, config, overwrite=overwrite, verbose=verbose) as rd:
            yield rd, model_dir
        return
    task_id = strategy.cluster_resolver.task_id
    folder = tempfile.mkdtemp(prefix=f"keras_caps_worker{task_id}_")
    try:
        rd = RunDirectory(folder, lock=False)
        rd.state = read_state(os.path.join(model_dir, "checkpoints"))
        rd.checkpoint_dir = os.path.join(model_dir, "checkpoints")  # where to resume from
        yield rd, folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def build_or_resume(rd, build, strategy=None):
    """The model of the RunDirectory's checkpoint (when it has one), or `build()`, in scope."""
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        return load_last_model(rd.checkpoint_dir) if rd.state else build()


def in_multi_worker_mode(strategy):
    """Whether `strategy` is a multi-worker (collective) strategy with more than one worker."""
    extended = getattr(strategy, "extended", None)
    check = getattr(extended, "_in_multi_worker_mode", None)
    return bool(check and check())


def prepare_multi_worker(model, strategy, sample_ds):
    """Works around Keras 3 (<= 3.15) failing `fit` / `evaluate` under a multi-worker strategy.

    Keras' TF trainer (keras-team/keras#20585, tensorflow/tensorflow#72388) fails twice under
    MultiWorkerMirroredStrategy: (1) it builds the model state from one distributed batch that
    it first averages with `strategy.reduce`, which fails for a nested batch ("Attempt to
    convert a value (PerReplica...) ... to a Tensor"); (2) it averages every step's scalar logs
    with `strategy.reduce("MEAN", v, axis=0)`, which fails for scalars ("Invalid reduction
    dimension 0 for input with 0 dimensions").

    (1): the state (metrics, loss, optimizer variables) is built once here from a local batch
    inside the strategy's scope, and this model's per-call build step is skipped. (2): see
    `multi_worker_logs`. Both patch Keras internals (`Trainer._symbolic_build`, the TF
    trainer's `_collective_all_reduce_multi_worker`); recheck them on a Keras upgrade. Gradients are all-reduced by the optimizer either way, so every worker
    holds the same weights. Other strategies are left alone.
    """
    if not in_multi_worker_mode(strategy):
        return model
    batch = next(iter(sample_ds))
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    return model


@contextlib.contextmanager
def multi_worker_logs(strategy):
    """Inside: Keras returns each worker's logs as its metric objects hold them instead of
    failing to average scalars across workers with `axis=0` (see `prepare_multi_worker`).
    Measured (tests/test_multi_worker.py, two local workers): both workers log the same
    losses, equal to a one-process run of the same global batch within 5 %."""
    if not in_multi_worker_mode(strategy):
        yield
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer._collective_all_reduce_multi_worker
    tf_trainer._collective_all_reduce_multi_worker = lambda strategy: False
    try:
        yield
    finally:
        tf_trainer._collective_all_reduce_multi_worker = original


def batch_size_fn(batch_size=None, batch_policy=None):
    """epoch -> batch size: the policy's, or a validated fixed size."""
    if batch_policy is not None:
        return batch_policy.batch_size
    if batch_size is None or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    fixed = int(batch_size)
    return lambda epoch: fixed


@dataclasses.dataclass(frozen=True)
class FitTarget:
    """What `fit_resumable` needs to know about the model it trains.

    Made by a `target` callable from the built (or resumed) model: `capsnet_target` for the
    models of `compile_capsnet` (a `CCMTrainer` included), `distillation.distiller_target` for a
    `Distiller`.

    Attributes:
        accuracy: key of the class accuracy in the Keras logs; "val_" + it picks best.keras.
        num_classes: J, the one-hot width of the labels.
        model_io: tf.data map (image, one-hot label) -> (model inputs, targets), or None to
            feed (image, one-hot label) as they are.
        product: model -> the model that best.keras and model.keras hold (default: itself;
            a Distiller's is its student). Its image input is what the data must match.
        test_keys: further `evaluate` results reported as "test_" + key in the metrics.
        sizes: model -> the size entries of the metrics (default {"params": ...}).

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.training.loop import FitTarget

    model = mcu_capsnet("S")
    target = FitTarget(accuracy="accuracy", num_classes=10)  # feed (image, one-hot) as is
    assert target.product(model) is model and target.sizes(model)["params"] > 0
    ```
    """

    accuracy: str
    num_classes: int
    model_io: Callable | None = None
    product: Callable = lambda model: model
    test_keys: tuple = ()
    sizes: Callable = lambda model: {"params": int(model.count_params())}


def capsnet_target(model):
    """The `FitTarget` of a model compiled by `compile_capsnet` (plain or a `CCMTrainer`).

    Args:
        model: a compiled capsnet / deep_capsnet, or a `CCMTrainer` wrapping one.
    Returns:
        FitTarget: accuracy `accuracy_key(model)`, the classes of its "length" layer, inputs
        and targets by `model_io`, the model itself saved as best.keras / model.keras.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.training import compile_capsnet
    from keras_caps.training.loop import capsnet_target

    target = capsnet_target(compile_capsnet(mcu_capsnet("S", decoder="reduced")))
    assert target.accuracy == "lengths_accuracy" and target.num_classes == 10
    ```
    """
    return FitTarget(accuracy=accuracy_key(model),
                     num_classes=int(model.get_layer("length").output.shape[-1]),
                     model_io=model_io(model))


def _resumed_best(state, monitor):
    """The best `monitor` value of a resumed run: the state's, or (a state that monitored
    something else, e.g. a Distiller checkpoint from before best.keras moved into the
    checkpoint callback) the maximum over its history."""
    if not state:
        return None
    if state.get("monitor") == monitor and state.get("best") is not None:
        return state["best"]
    return max((r[monitor] for r in state["history"] if monitor in r), default=None)


def fit_resumable(build_model, train_data, val_data, model_dir, epochs, target=capsnet_target,
                  batch_size=None, batch_policy=None, strategy=None, augment_shift=0, seed=0,
                  verbose=1, callbacks=(), run_config=None, overwrite=False):
    """The training loop of keras_caps: epoch by epoch, resuming from `model_dir`.

    Every trainer runs through it: `fit_capsnet` (plain models and `CCMTrainer`) and
    `fit_distiller` (a `Distiller`). Each epoch rebuilds its tf.data pipeline with the batch
    size the policy gives for that epoch (so AdaBatch-style policies really change the
    batch), then runs one Keras `fit` epoch with the callbacks

        StopOnNonFiniteLoss, EpochTimer, *callbacks, ResumableCheckpoint, TensorBoard

    (user callbacks before the checkpoint, so metrics they add to the logs reach history.csv).
    The run directory is locked, its config.json written or compared (RunDirectory); under a
    multi-worker strategy only the chief writes `model_dir` (`run_directory`). Under
    `model_dir` it writes checkpoints/ (last.keras with the optimizer and the loop state: the
    resume point), best.keras (the target's product with the best validation accuracy),
    history.csv, logs/ (TensorBoard), and at the end model.keras and metrics.json.

    Args:
        build_model: callable returning a compiled model; called inside the strategy scope,
            only when there is no checkpoint to resume.
        train_data: (images (N, H, W, C) uint8 or float in [0, 1], labels (N,) int), or a
            `keras_caps.data_sources.StreamedSplit` (a folder read from disk per batch).
        val_data: the validation split, the same forms; evaluated after every epoch and at
            the end (the "test_" metrics).
        model_dir: run folder.
        epochs: total epochs (a resumed run trains only the missing ones).
        target: callable model -> `FitTarget` (default `capsnet_target`); it may raise
            ValueError for a model it cannot train.
        batch_size: fixed batch size (when `batch_policy` is None).
        batch_policy: object with `batch_size(epoch)` (0-based epoch).
        strategy: a tf.distribute strategy (None: default).
        augment_shift: random shift augmentation in pixels (0: none).
        seed: shuffling / augmentation seed (epoch e uses seed + e, so resumes reproduce).
        verbose: Keras progress bar (1) or silence (0).
        callbacks: extra Keras callbacks.
        run_config: dict of what defines the run (e.g. {"architecture": {...}, "data": {...}}),
            saved as config.json with a fingerprint of the data; a resume with a different one
            is an error (see keras_caps.training.run_dir).
        overwrite: move what `model_dir` holds to a backup folder and start fresh.
    Returns:
        metrics dict: test_accuracy, test_loss (+ "test_" + the target's test_keys),
        best_test_accuracy, epochs, train_time_s, the target's sizes (params, ...), history,
        model_path.
    Raises:
        RunDirError: `model_dir` locked by another run, a damaged checkpoint, results without
            a checkpoint, or a changed configuration.
        InputDataError: bad images or labels (keras_caps.validation), or images of another
            shape than the model's input.
        NonFiniteLossError: the loss became NaN/Inf (the last good checkpoint is kept).

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet

    def tiny(**kw):  # a CapsNet for 12 x 12 images
        return capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                       primary_dim=4, primary_kernel=3, class_dim=6, decoder=None, **kw)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)  # (N, H, W, C)
    labels = rng.integers(0, 10, 16)  # (N,)

    from keras_caps.training import compile_capsnet
    from keras_caps.training.loop import capsnet_target, fit_resumable

    metrics = fit_resumable(lambda: compile_capsnet(tiny()), (images, labels), (images, labels),
                            "run", epochs=2, target=capsnet_target, batch_size=8, verbose=0)
    assert metrics["epochs"] == 2
    # asked again for 3 epochs, it resumes from run/checkpoints and trains epoch 3 only
    again = fit_resumable(lambda: compile_capsnet(tiny()), (images, labels), (images, labels),
                          "run", epochs=3, batch_size=8, verbose=0)
    assert [row["epoch"] for row in again["history"]] == [1, 2, 3]
    ```
    """
    batch_of = batch_size_fn(batch_size, batch_policy)
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    train_data, val_data = check_splits(train_data, val_data)
    config = {**(run_config or {}), "data_fingerprint": _fingerprint(train_data, val_data)}
    with run_directory(model_dir, strategy, config, overwrite, verbose) as (rd, out_dir):
        return _fit_epochs(build_model, target, train_data, val_data, out_dir, epochs,
                           batch_of, rd, strategy, augment_shift, seed, verbose, callbacks)


def _fit_epochs(build_model, target, train_data, val_data, model_dir, epochs, batch_of, rd,
                strategy, augment_shift, seed, verbose, callbacks):
    model = build_or_resume(rd, build_model, strategy)
    state, checkpoint_dir = rd.state, rd.checkpoint_dir
    spec = target(model)
    _check_arrays("training", train_data, spec.product(model))
    _check_arrays("validation", val_data, spec.product(model))
    start = state["epoch"] if state else 0
    monitor = "val_" + spec.accuracy
    checkpoint = ResumableCheckpoint(
        model_dir,
        history=state["history"] if state else None,
        monitor=monitor,
        best=_resumed_best(state, monitor),
        best_model=spec.product,
    )
    timer = EpochTimer()
    progress = EpochProgress(epochs)  # Keras' bar in a terminal, one line per epoch in a log
    tensorboard = keras.callbacks.TensorBoard(os.path.join(model_dir, "logs"))

    def dataset(data, **kwargs):
        ds = split_dataset(data, num_classes=spec.num_classes, **kwargs)
        return ds.map(spec.model_io) if spec.model_io is not None else ds

    val_ds = dataset(val_data, batch_size=max(batch_of(0), 64), shuffle=False)
    prepare_multi_worker(model, strategy, val_ds)
    with multi_worker_logs(strategy), streamed_errors(train_data, val_data):
        if start and verbose:
            print(f"Resuming from {checkpoint_dir}: {start} of {epochs} epochs done.")
        for epoch in range(start, int(epochs)):
            train_ds = dataset(train_data, batch_size=batch_of(epoch), shuffle=True,
                               augment_shift=augment_shift, seed=seed + epoch)
            model.fit(
                train_ds,
                initial_epoch=epoch,
                epochs=epoch + 1,
                validation_data=val_ds,
                # user callbacks before the checkpoint, so metrics they add reach history.csv
                callbacks=[StopOnNonFiniteLoss(checkpoint_dir), timer, *callbacks, checkpoint,
                           tensorboard, progress],
                shuffle=False,  # the dataset is already shuffled per epoch
                verbose=verbose,
            )
        results = model.evaluate(val_ds, verbose=0, return_dict=True)
    history = checkpoint.history
    metrics = {
        "test_accuracy": float(results[spec.accuracy]),
        "test_loss": float(results["loss"]),
        **{f"test_{key}": float(results[key]) for key in spec.test_keys},
        "best_test_accuracy": max((r.get(monitor, 0.0) for r in history), default=None),
        "epochs": len(history),
        "train_time_s": float(sum(r.get("time_s", 0.0) for r in history)),
        **spec.sizes(model),
        "history": history,
        "model_path": os.path.join(model_dir, "model.keras"),
    }
    save_model(spec.product(model), metrics["model_path"])
    write_json(os.path.join(model_dir, "metrics.json"), metrics)
    return metrics


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
    run_config=None,
    overwrite=False,
):
    """Trains a `compile_capsnet` model (or a `CCMTrainer`) with `fit_resumable`.

    Resumes from `model_dir` when a checkpoint is there. Under `model_dir` it writes
    checkpoints/ (resume point), best.keras, history.csv, logs/ (TensorBoard), and at the end
    model.keras and metrics.json.

    Args:
        build_model: callable returning a compiled model (see `compile_capsnet`); called
            inside the strategy scope, only when there is no checkpoint to resume.
        train_data: (images (N, H, W, C) uint8 or float in [0, 1], labels (N,) int), or a
            `keras_caps.data_sources.StreamedSplit` (a folder read from disk per batch).
        val_data: the validation split, the same forms.
        model_dir: run folder.
        epochs: total epochs (a resumed run trains only the missing ones).
        batch_size: fixed batch size (when `batch_policy` is None).
        batch_policy: object with `batch_size(epoch)` (0-based epoch).
        strategy: a tf.distribute strategy (None: default).
        augment_shift: random shift augmentation in pixels (0: none).
        seed: shuffling / augmentation seed (epoch e uses seed + e, so resumes reproduce).
        verbose: Keras progress bar (1) or silence (0).
        callbacks: extra Keras callbacks (run before the checkpoint: what they add to the
            logs reaches history.csv).
        run_config: dict of what defines the run (e.g. {"architecture": {...}, "data": {...}}),
            saved as config.json with a fingerprint of the data; a resume with a different one
            is an error (see keras_caps.training.run_dir).
        overwrite: move what `model_dir` holds to a backup folder and start fresh.
    Returns:
        metrics dict: test_accuracy, test_loss, best_test_accuracy, epochs, train_time_s,
        params, history, model_path.
    Raises:
        RunDirError: `model_dir` locked by another run, a damaged checkpoint, results without
            a checkpoint, or a changed configuration.
        InputDataError: bad images or labels (keras_caps.validation).
        NonFiniteLossError: the loss became NaN/Inf (the last good checkpoint is kept).

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet

    def tiny(**kw):  # a CapsNet for 12 x 12 images
        return capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                       primary_dim=4, primary_kernel=3, class_dim=6, decoder=None, **kw)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)  # (N, H, W, C)
    labels = rng.integers(0, 10, 16)  # (N,)

    import keras
    from keras_caps.training import compile_capsnet, fit_capsnet

    metrics = fit_capsnet(lambda: compile_capsnet(tiny()), (images, labels), (images, labels),
                          "run", epochs=1, batch_size=8, verbose=0)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    model = keras.saving.load_model(metrics["model_path"])  # also run/best.keras, history.csv
    ```
    """
    return fit_resumable(build_model, train_data, val_data, model_dir, epochs, capsnet_target,
                         batch_size=batch_size, batch_policy=batch_policy, strategy=strategy,
                         augment_shift=augment_shift, seed=seed, verbose=verbose,
                         callbacks=callbacks, run_config=run_config, overwrite=overwrite)


class EpochTimer(keras.callbacks.Callback):
    """Adds the epoch's wall time as "time_s" to the logs (before the checkpoint records them)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["time_s"] = time.perf_counter() - self._start
