"""Capsule activations and dead capsules (paper 003 Sec. 3.5, figures 2-6).

For a capsule layer with outputs u (B, H, W, C, D) over a set of inputs, the activation of
the capsule at (h, w, c) is the norm over the capsule dimension of its mean output:

    a[h, w, c] = || mean_b u[b, h, w, c, :] ||_2           grid (H, W, C)

and the capsule is dead when a <= 0.01. Layers: PrimaryCaps and every IntermediateCaps
(ConvCapsule). Note this is the norm of the *mean* vector (as the paper describes), not the
mean length: a capsule whose direction varies from input to input can have long outputs and
a small activation.

Shapes: B batch, H x W grid, C capsule types, D capsule dim.
"""

from __future__ import annotations

import csv
import os

import keras
import numpy as np

from keras_caps.data import image_batches
from keras_caps.io_utils import history_csv, write_text
from keras_caps.layers import ConvCapsule, PrimaryCapsule
from keras_caps.models.heads import unwrap
from keras_caps.plots import pyplot, save_png

#: Activation at or below which a capsule is dead.
DEAD_THRESHOLD = 0.01


def capsule_layer_names(model):
    """PrimaryCaps and IntermediateCaps (ConvCapsule) layer names, input to output."""
    return [layer.name for layer in unwrap(model).layers
            if isinstance(layer, (PrimaryCapsule, ConvCapsule))]


def activation_model(model, layer_names=None):
    """image -> {layer name: capsules (B, H, W, C, D)}, sharing weights with `model`."""
    from keras_caps.models.heads import image_input

    model = unwrap(model)
    names = capsule_layer_names(model) if layer_names is None else list(layer_names)
    if not names:
        raise ValueError(f"model {model.name!r} has no PrimaryCaps / IntermediateCaps layers.")
    outputs = {}
    for name in names:
        out = model.get_layer(name).output
        outputs[name] = out[0] if isinstance(out, (list, tuple)) else out  # drop feature map
    return keras.Model(image_input(model), outputs, name="capsule_activations")


def capsule_activations(model, data, num_batches=None, batch_size=64, layer_names=None):
    """Activation grids of every PrimaryCaps / IntermediateCaps layer.

    Args:
        model: a capsnet / deep_capsnet (or a `CCMTrainer`).
        data: a tf.data.Dataset of (x, y) / x batches, an image array or (images, labels)
            (uint8 scaled to [0, 1]).
        num_batches: batches to average over (None: all).
        batch_size: for arrays.
        layer_names: layers (default: `capsule_layer_names`).
    Returns:
        {layer name: (H, W, C) float64 norms of the mean capsule outputs}.
    """
    probe = activation_model(model, layer_names)
    sums, count = None, 0
    if num_batches is not None and int(num_batches) < 1:
        raise ValueError(f"num_batches must be >= 1 or None (all), got {num_batches}.")
    for x in image_batches(data, num_batches, int(batch_size)):
        outs = probe(x, training=False)  # {name: (B, H, W, C, D)}
        batch = {k: np.asarray(v, dtype=np.float64) for k, v in outs.items()}
        if sums is None:
            sums = {k: v.sum(axis=0) for k, v in batch.items()}
        else:
            for k, v in batch.items():
                sums[k] += v.sum(axis=0)
        count += len(next(iter(batch.values())))
    if not count:
        raise ValueError("capsule_activations got no data: the dataset or array is empty.")
    return {k: np.linalg.norm(v / count, axis=-1) for k, v in sums.items()}  # (H, W, C)


def activations_from_outputs(capsules):
    """Activation grid from capsule outputs (B, H, W, C, D) -> (H, W, C) (for tests/arrays)."""
    u = np.asarray(capsules, dtype=np.float64)
    return np.linalg.norm(u.mean(axis=0), axis=-1)


def dead_fraction(activation, threshold=DEAD_THRESHOLD):
    """Fraction of capsules with activation <= threshold, in [0, 1]."""
    a = np.asarray(activation)
    if a.size == 0:
        raise ValueError("dead_fraction got an empty activation grid.")
    return float(np.count_nonzero(a <= threshold) / a.size)


def dead_percentages(activations, threshold=DEAD_THRESHOLD):
    """{layer: percentage of dead capsules} plus "all": over every capsule of every layer."""
    out = {name: 100.0 * dead_fraction(a, threshold) for name, a in activations.items()}
    total = sum(np.asarray(a).size for a in activations.values())
    dead = sum(np.count_nonzero(np.asarray(a) <= threshold) for a in activations.values())
    out["all"] = float(100.0 * dead / max(1, total))
    return out


def _draw(ax, activation, threshold, title, plt):
    h, w, c = activation.shape
    grid = np.asarray(activation).reshape(h * w, c).T  # (C, H * W): types x positions
    cmap = plt.get_cmap("viridis").with_extremes(under="black")  # dead capsules in black
    image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=threshold * (1 + 1e-9), vmax=1.0,
                      interpolation="nearest")
    ax.set_xlabel(f"position (h * {w} + w), {h}x{w} grid")
    ax.set_ylabel("capsule type")
    ax.set_title(f"{title}: {100 * dead_fraction(activation, threshold):.1f}% dead")
    return image


def plot_activation_heatmap(activation, path, title="capsule activations",
                            threshold=DEAD_THRESHOLD):
    """One layer's activation grid (H, W, C) as a heatmap: rows = capsule types, columns =
    positions h * W + w; colour = activation in [0, 1], dead capsules black. Atomic PNG write.
    Returns `path`."""
    plt = pyplot()
    activation = np.asarray(activation)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.12 * activation.shape[0] * activation.shape[1]),
                                    max(2.5, 0.25 * activation.shape[2])), layout="constrained")
    image = _draw(ax, activation, threshold, title, plt)
    fig.colorbar(image, ax=ax, extend="min", label="|mean capsule output|")
    return save_png(fig, path, plt)


def plot_activation_heatmaps(activations, path, title=None, threshold=DEAD_THRESHOLD):
    """All layers of one model stacked in one figure (like the paper's figures 2, 4, 6)."""
    plt = pyplot()
    names = list(activations)
    if not names:
        raise ValueError("activations is empty: nothing to plot.")
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.2 + 2.2 * len(names)), squeeze=False,
                             layout="constrained")
    image = None
    for ax, name in zip(axes[:, 0], names):
        image = _draw(ax, np.asarray(activations[name]), threshold, name, plt)
    fig.colorbar(image, ax=axes[:, 0].tolist(), extend="min", label="|mean capsule output|")
    if title:
        fig.suptitle(title)
    return save_png(fig, path, plt)


def write_heatmaps(activations, out_dir, prefix="", threshold=DEAD_THRESHOLD):
    """One PNG per layer (<prefix><layer>.png) and an overview (<prefix>all_layers.png).

    Returns:
        list of written paths.
    """
    paths = []
    for name, activation in activations.items():
        paths.append(plot_activation_heatmap(
            activation, os.path.join(out_dir, f"{prefix}{name}.png"), title=name,
            threshold=threshold))
    paths.append(plot_activation_heatmaps(
        activations, os.path.join(out_dir, f"{prefix}all_layers.png"), threshold=threshold))
    return paths


class DeadCapsuleLogger(keras.callbacks.Callback):
    """Logs the percentage of dead capsules per capsule layer at the end of epochs.

    Adds "dead_<layer>" (percent) and "dead_all" to the epoch logs, so Keras History and any
    callback after this one (CSV loggers, checkpoints) record them. Keeps `self.history` and,
    with `csv_path`, writes it atomically each epoch (rows of a resumed run are kept).
    With `heatmap_dir`, also writes the latest heatmaps there.

    Args:
        data: inputs to average over (dataset, array or (images, labels)).
        num_batches, batch_size: as in `capsule_activations`.
        threshold: dead threshold (0.01).
        every: compute every this many epochs (and always on the first).
        csv_path: CSV file of the per-epoch percentages (optional).
        heatmap_dir: folder for the heatmaps of the last computed epoch (optional).
    """

    def __init__(self, data, num_batches=None, batch_size=64, threshold=DEAD_THRESHOLD,
                 every=1, csv_path=None, heatmap_dir=None):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}.")
        self.data = data
        self.num_batches = num_batches
        self.batch_size = int(batch_size)
        self.threshold = float(threshold)
        self.every = int(every)
        self.csv_path = csv_path
        self.heatmap_dir = heatmap_dir
        self.history = _read_csv(csv_path) if csv_path else []
        self.last_activations = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.every and epoch != 0:
            return
        acts = capsule_activations(self.model, self.data, self.num_batches, self.batch_size)
        self.last_activations = acts
        percentages = dead_percentages(acts, self.threshold)
        row = {"epoch": int(epoch) + 1}
        row.update({f"dead_{k}": v for k, v in percentages.items()})
        if logs is not None:
            logs.update({k: v for k, v in row.items() if k != "epoch"})
        self.history = [r for r in self.history if r["epoch"] < row["epoch"]] + [row]
        if self.csv_path:
            write_text(self.csv_path, history_csv(self.history))
        if self.heatmap_dir:
            write_heatmaps(acts, self.heatmap_dir, threshold=self.threshold)


def _read_csv(path):
    if not path or not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = []
        for r in csv.DictReader(f):
            row = {"epoch": int(r.pop("epoch"))}
            row.update({k: float(v) for k, v in r.items() if v != ""})
            rows.append(row)
    return rows


__all__ = [
    "DEAD_THRESHOLD",
    "DeadCapsuleLogger",
    "activation_model",
    "activations_from_outputs",
    "capsule_activations",
    "capsule_layer_names",
    "dead_fraction",
    "dead_percentages",
    "plot_activation_heatmap",
    "plot_activation_heatmaps",
    "write_heatmaps",
]
