r"""Data-dependent initialisation of capsule layers: scale each kernel to a target length.

The "capsule" initializer (capsule_ops.capsule_initializer) keeps capsule lengths stable
through a stack when its *inputs* have the lengths of a fresh network (~0.5). A trained
backbone does not: its primary capsules are much shorter (~0.2 on Fashion-MNIST after a few
epochs), and squash maps a short s to |v| = |s|^2 / (1 + |s|^2) ~ |s|^2, so fresh capsule layers
grafted onto it (paper 003 Sec. 3.5: a pruned backbone under new IntermediateCaps and
ClassCaps) start with vanishing outputs, layer after layer, and can stay dead.

`calibrate_capsule_lengths` fixes that the way LSUV does for convolutions: for each chosen
capsule layer, input to output, it multiplies the kernel by the factor a > 0 that makes the
layer's mean output length on a batch of real images equal `target_length`. The routing is
kept: the couplings depend on a (the agreements u_hat . v grow with it), so a is found by
bisection on log2(a) rather than in closed form. Without routing the mean length is increasing
in a (s = a * sum_i c_ij W_ij u_i, squash increasing in |s|); sharper couplings can bend that,
so the bisection returns the best factor it evaluated.

Shapes: images (B, H, W, C); a ConvCapsule output (B, H, W, C_out, D), a DenseCapsule output
(B, J, D); the mean length averages |v| over every axis but the last.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_caps.data import image_batches
from keras_caps.layers import ConvCapsule, DenseCapsule
from keras_caps.models.heads import image_input

CALIBRATED_LAYERS = (ConvCapsule, DenseCapsule)


def mean_capsule_length(capsules):
    """Mean of |v| over every axis but the last (the capsule dimension). capsules: (..., D)."""
    v = np.asarray(capsules, dtype=np.float64)
    return float(np.sqrt((v * v).sum(axis=-1)).mean())


def calibrate_capsule_lengths(model, images, layer_names=None, target_length=0.5,
                              num_images=256, tolerance=0.01, max_steps=20):
    """Scales capsule-layer kernels in place so their mean output length is `target_length`.

    Args:
        model: a keras_caps model (capsnet / deep_capsnet).
        images: (N, H, W[, C]) images (uint8 scaled to [0, 1]), a tf.data.Dataset or
            (images, labels); the first `num_images` are used.
        layer_names: ConvCapsule / DenseCapsule layers to scale, in any order (they are done
            input to output); default: every such layer.
        target_length: wanted mean |v|, in (0, 1).
        num_images: images in the calibration batch.
        tolerance: stop when |mean length - target| <= tolerance.
        max_steps: bisection steps per layer (log2 factor searched in [-16, 16]).
    Returns:
        {layer name: {"scale": a, "length_before": ..., "length_after": ...}}.
    Raises:
        ValueError: bad target, unknown or non-capsule layer names, or no images.
    """
    if not 0.0 < float(target_length) < 1.0:
        raise ValueError(f"target_length must lie in (0, 1) (squash outputs are shorter than "
                         f"1), got {target_length}.")
    capsule_layers = [layer for layer in model.layers if isinstance(layer, CALIBRATED_LAYERS)]
    if layer_names is None:
        chosen = capsule_layers
    else:
        names = {layer.name for layer in capsule_layers}
        unknown = [n for n in layer_names if n not in names]
        if unknown:
            raise ValueError(f"layers {unknown} are not ConvCapsule / DenseCapsule layers of "
                             f"{model.name!r}; capsule layers: {sorted(names)}.")
        chosen = [layer for layer in capsule_layers if layer.name in set(layer_names)]
    batches = list(image_batches(images, 1, int(num_images)))
    if not batches or len(batches[0]) == 0:
        raise ValueError("calibrate_capsule_lengths got no images.")
    x = batches[0]
    results = {}
    for layer in chosen:  # model order: each layer sees its already calibrated inputs
        probe = keras.Model(image_input(model), keras.tree.flatten(layer.output)[0])
        kernel = layer.kernel.numpy()

        def length(log2_scale, layer=layer, kernel=kernel, probe=probe):
            layer.kernel.assign(kernel * np.float32(2.0**log2_scale))
            return mean_capsule_length(probe(x, training=False))

        before = length(0.0)
        lo, hi, best = -16.0, 16.0, (abs(before - target_length), 0.0, before)
        if before < target_length:
            lo = 0.0
        else:
            hi = 0.0
        for _ in range(int(max_steps)):
            if best[0] <= tolerance:
                break
            mid = 0.5 * (lo + hi)
            value = length(mid)
            best = min(best, (abs(value - target_length), mid, value))
            if value < target_length:
                lo = mid
            else:
                hi = mid
        _, log2_scale, after = best
        layer.kernel.assign(kernel * np.float32(2.0**log2_scale))
        results[layer.name] = {"scale": float(2.0**log2_scale), "length_before": before,
                               "length_after": after}
    return results


__all__ = ["calibrate_capsule_lengths", "mean_capsule_length"]
