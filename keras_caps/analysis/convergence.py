"""Convergence summaries of training runs: best accuracy, epochs and time to a target."""

from __future__ import annotations


def convergence_summary(accuracy, epoch_times, target=None):
    """Summarises one run's per-epoch test accuracy.

    Args:
        accuracy: test accuracy after each epoch, [a_1, ..., a_E].
        epoch_times: wall seconds of each epoch (same length).
        target: accuracy to reach (e.g. the baseline's best); None to skip.
    Returns:
        dict: max_accuracy, max_epoch (1-based, first epoch reaching the max), final_accuracy,
        epochs_to_target and time_to_target_s (None when never reached), total_time_s.
    """
    if not accuracy:
        raise ValueError("a run needs at least one epoch of accuracy to summarise.")
    if len(accuracy) != len(epoch_times):
        raise ValueError(f"{len(accuracy)} accuracies but {len(epoch_times)} epoch times.")
    best = max(accuracy)
    summary = {
        "max_accuracy": float(best),
        "max_epoch": accuracy.index(best) + 1,
        "final_accuracy": float(accuracy[-1]),
        "total_time_s": float(sum(epoch_times)),
        "epochs_to_target": None,
        "time_to_target_s": None,
    }
    if target is not None:
        for epoch, acc in enumerate(accuracy, start=1):
            if acc >= target:
                summary["epochs_to_target"] = epoch
                summary["time_to_target_s"] = float(sum(epoch_times[:epoch]))
                break
    return summary
