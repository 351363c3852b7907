"""Plot helpers: learning-rate schedules, accuracy curves, batch-size policies (PNG files).

Each function draws with `pyplot()` (Agg unless pyplot is already in use), writes its PNG atomically (a temporary file in
the target folder, then os.replace) and returns the path.
"""

from __future__ import annotations

import numpy as np

from keras_caps.io_utils import atomic_path

_MAX_POINTS = 200_000  # steps evaluated per LR curve (all of them up to this many)


def pyplot():
    """matplotlib.pyplot, on the non-interactive Agg backend unless pyplot is already in use
    (a notebook's inline backend is left alone) or MPLBACKEND chooses one."""
    import os
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path, plt):
    """Writes `fig` to `path` as PNG atomically and closes it; returns `path`."""
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _lr_values(schedule, steps):
    """schedule(step) for each step; vectorized when the schedule is elementwise."""
    values = np.asarray(schedule(steps), dtype=np.float64)
    if values.shape == steps.shape:
        return values
    if values.size == 1:
        return np.full(steps.shape, float(values.reshape(())), dtype=np.float64)
    idx = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 2000)).astype(int))
    return np.interp(np.arange(len(steps)), idx,
                     [float(np.asarray(schedule(int(steps[i])))) for i in idx])


def plot_lr_schedules(schedules, total_steps, path, title="learning-rate policies"):
    """One curve per schedule over steps 0 .. total_steps - 1, log y-axis.

    Args:
        schedules: {name: LearningRateSchedule or callable step -> lr}.
        total_steps: number of training steps to draw (>= 1).
        path: PNG file to write.
    Returns:
        `path`.
    """
    total_steps = int(total_steps)
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
    if not schedules:
        raise ValueError("schedules is empty: nothing to plot.")
    if total_steps <= _MAX_POINTS:
        steps = np.arange(total_steps, dtype=np.int64)
    else:
        steps = np.unique(np.linspace(0, total_steps - 1, _MAX_POINTS).astype(np.int64))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, schedule in schedules.items():
        ax.plot(steps, _lr_values(schedule, steps), label=str(name), linewidth=1.2)
    ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("training step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return save_png(fig, path, plt)


def plot_accuracy_curves(curves, path, ylabel="test accuracy", xlabel="epoch", title=None):
    """One curve per entry, value i drawn at epoch i + 1.

    Args:
        curves: {name: list of floats (one per epoch)}.
        path: PNG file to write.
    Returns:
        `path`.
    """
    if not curves:
        raise ValueError("curves is empty: nothing to plot.")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, values in curves.items():
        values = np.asarray(list(values), dtype=np.float64)
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=str(name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return save_png(fig, path, plt)


def plot_batch_schedule(policy, epochs, path, title=None):
    """Batch size per epoch of a batch-size policy (`policy.batch_size(epoch)`), log2 y-axis.

    Args:
        policy: e.g. schedules.AdaBatch().
        epochs: number of epochs to draw (>= 1).
        path: PNG file to write.
    Returns:
        `path`.
    """
    epochs = int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    sizes = [policy.batch_size(e) for e in range(epochs)]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(epochs + 1)
    ax.step(x, sizes + sizes[-1:], where="post")
    ax.set_yscale("log", base=2)
    ticks = sorted(set(sizes))
    ax.set_yticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("epoch (0-based)")
    ax.set_ylabel("batch size")
    ax.set_title(title or type(policy).__name__)
    ax.grid(True, which="both", alpha=0.3)
    return save_png(fig, path, plt)


def plot_accuracy_vs_size(points, path, title="accuracy vs model size"):
    """Accuracy against model bytes (log x-axis), one labelled point per model.

    Args:
        points: list of (name, size in bytes, accuracy).
        path: PNG file to write.
    Returns:
        `path`.
    """
    points = [(n, float(b), float(a)) for n, b, a in points if b and a is not None]
    if not points:
        raise ValueError("points is empty: nothing to plot.")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    ax.plot(xs, ys, color="0.7", zorder=1)
    ax.scatter(xs, ys, zorder=2)
    for name, x, y in points:
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize="small")
    ax.set_xscale("log")
    ax.set_xlabel("model size (bytes, log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    return save_png(fig, path, plt)


def confusion_matrix(labels, predictions, num_classes):
    """Counts (K, K): row = true class, column = predicted class.

    Args:
        labels, predictions: (N,) integer class ids in [0, num_classes).
    """
    labels = np.asarray(labels, np.int64).reshape(-1)
    predictions = np.asarray(predictions, np.int64).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions.")
    k = int(num_classes)
    bad = (labels < 0) | (labels >= k) | (predictions < 0) | (predictions >= k)
    if bad.any():
        raise ValueError(f"class ids must lie in [0, {k}).")
    return np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k)


def plot_confusion_matrix(matrix, path, class_names=None, title="confusion matrix",
                          normalize=True):
    """A confusion matrix as a heatmap with the class names on both axes (PNG).

    Args:
        matrix: (K, K) counts, row = true class, column = predicted class (`confusion_matrix`).
        path: PNG file to write.
        class_names: K names (default "0" .. "K-1"); long names are shortened to 20 characters.
        normalize: colour by the fraction of each true class (each row sums to 1); the cells
            show the counts.
    Returns:
        `path`.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"matrix must be (K, K) with K >= 1, got shape {matrix.shape}.")
    k = matrix.shape[0]
    names = [str(n) for n in (class_names if class_names is not None else range(k))]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k}x{k} confusion matrix.")
    names = [n if len(n) <= 20 else n[:19] + "…" for n in names]
    rows = matrix.sum(axis=1, keepdims=True)
    colour = matrix / np.maximum(rows, 1) if normalize else matrix
    plt = pyplot()
    side = min(max(4.0, 0.45 * k + 2.0), 30.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    im = ax.imshow(colour, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                 label="fraction of the true class" if normalize else "count")
    ax.set_xticks(range(k), labels=names, rotation=45 if k > 3 else 0, ha="right" if k > 3
                  else "center", fontsize="small")
    ax.set_yticks(range(k), labels=names, fontsize="small")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center",
                        fontsize="x-small", color="white" if colour[i, j] > 0.5 * (
                            colour.max() or 1) else "black")
    total = int(matrix.sum())
    acc = float(np.trace(matrix)) / total if total else float("nan")
    ax.set_title(f"{title} (accuracy {acc:.3f}, {total} images)")
    return save_png(fig, path, plt)
