"""Rebuilds a smaller capsnet / deep_capsnet that keeps only the selected channels.

`prune_model(model, kept)` rewrites the functional config (Conv2D filters, PrimaryCapsule and
ConvCapsule type counts), rebuilds the model, and copies the kept slices of every weight with
`keras_caps.models.weight_transfer.init_student_from_teacher` (the one implementation of
kept-channel copying; the kept channels are given to it as 0/1 importance scores):

    conv{i}          kernel (3, 3, F_in, F_out)[:, :, kept_in, kept_out], bias[kept_out]
    bn{i}            gamma, beta, moving mean and variance [kept]
    primary_caps     conv kernel (k, k, F_in, C * D)[:, :, kept_in, kept_channels], bias
    intermediate_caps_{k}  kernel (k * k * C_in, C_out, Din, Dout)[rows, cols]: rows
                     p * C_in + c for every kernel offset p and kept input type c;
                     cols the kept output types (see `intermediate_caps`)
    class_caps       fresh (paper 003: the pruned capsules are re-routed by a new ClassCaps)
                     or transferred: kernel (N, J, Din, Dout) rows n = (h * W + w) * C + c
                     of the kept types c (with weight sharing: rows c of (C, J, Din, Dout))
    everything else  (Length, Mask, Decoder, ...) copied unchanged

The models are chains (image -> backbone -> PrimaryCaps -> IntermediateCaps* -> ClassCaps ->
heads), so the kept channels of each map flow to the next layer's inputs.

Equivalence (tested): with transferred ClassCaps the pruned model computes what the original
computes with the pruned channels zeroed (`zero_channels`), to float32 rounding, when the
IntermediateCaps keep all their output types (or there are none): a zeroed capsule type gives
zero capsules, zero votes and zero agreements, so its routing logits stay 0 and add nothing to
any s_j, and the coupling softmax runs over the *output* capsules per input capsule, so
removing input capsules changes no other coupling. (Not bit-exact: sums over N run over
different numbers of terms in a different order.) Pruning IntermediateCaps output types
(`intermediate_caps="prune"`, the paper's C' = C of PrimaryCaps) is not equivalent to zeroing
them: the first iteration's uniform coupling is 1 / C_out and later softmaxes normalise over
all C_out output types, so removing outputs changes the kept outputs' couplings.
"""

from __future__ import annotations

import copy

import keras
import numpy as np

from keras_caps.layers import ConvCapsule, DenseCapsule, PrimaryCapsule
from keras_caps.models.heads import feature_layer_names, unwrap
from keras_caps.models.weight_transfer import init_student_from_teacher

CLASS_CAPS_MODES = ("fresh", "transfer")
INTERMEDIATE_MODES = ("prune", "keep", "fresh")


def conv_layer_for_tap(model, tap):
    """Name of the convolution whose output channels the feature map `tap` holds.

    Backbone taps are "relu{i}" (deep_capsnet, conv{i} -> bn{i} -> relu{i}) or the conv itself
    (capsnet's conv1 has its ReLU built in); PrimaryCaps taps are the PrimaryCapsule layer.

    Args:
        model: a `capsnet` / `deep_capsnet`.
        tap: str, a name from `keras_caps.models.feature_layer_names(model)`.
    Returns:
        str, the Conv2D or PrimaryCapsule layer name.
    Raises:
        ValueError: no convolution belongs to `tap`.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.pruning.surgery import conv_layer_for_tap

    model = mcu_capsnet("S")
    assert conv_layer_for_tap(model, "relu2") == "conv2"
    assert conv_layer_for_tap(model, "primary_caps") == "primary_caps"
    ```
    """
    layer = model.get_layer(tap)
    if isinstance(layer, (PrimaryCapsule, keras.layers.Conv2D)):
        return tap
    conv = tap.replace("relu", "conv", 1)
    try:
        model.get_layer(conv)
    except ValueError as err:
        raise ValueError(f"no convolution found for feature map {tap!r} (looked for {conv!r}).") \
            from err
    return conv


def _normalise_kept(model, kept):
    """{tap or conv name: indices} -> {conv / primary layer name: sorted unique int array}."""
    taps = feature_layer_names(model)
    out = {}
    for name, idx in kept.items():
        conv = conv_layer_for_tap(model, name) if name in taps else name
        layer = model.get_layer(conv)
        if isinstance(layer, PrimaryCapsule):
            channels = layer.num_capsules * layer.capsule_dim
        elif isinstance(layer, keras.layers.Conv2D):
            channels = layer.filters
        else:
            raise ValueError(
                f"kept[{name!r}]: {conv!r} is a {type(layer).__name__}; only backbone "
                f"feature maps {taps} (or their Conv2D layers) can be pruned."
            )
        arr = np.unique(np.asarray(idx, dtype=np.int64).reshape(-1))
        if arr.size == 0:
            raise ValueError(f"kept[{name!r}] is empty: a layer must keep at least one channel.")
        if arr[0] < 0 or arr[-1] >= channels:
            raise ValueError(f"kept[{name!r}] has indices outside [0, {channels}).")
        if isinstance(layer, PrimaryCapsule):
            d = layer.capsule_dim
            types = np.unique(arr // d)
            if arr.size != types.size * d or not np.array_equal(
                arr, (types[:, None] * d + np.arange(d)).reshape(-1)
            ):
                raise ValueError(
                    f"kept[{name!r}] must hold whole capsule types (all D = {d} channels "
                    f"t * D .. t * D + D - 1 of each kept type t), got {arr.tolist()}."
                )
        out[conv] = arr
    return out


def _pruned_config(model, kept, intermediate_caps, name):
    """The functional config of the pruned model and the capsule types each layer keeps."""
    config = copy.deepcopy(model.get_config())
    config["name"] = name
    by_name = {layer["config"]["name"]: layer for layer in config["layers"]}
    primary_types = None
    for layer in model.layers:
        entry = by_name[layer.name]
        entry.pop("build_config", None)  # rebuilt on the new shapes
        if isinstance(layer, PrimaryCapsule):
            if layer.name in kept:
                primary_types = np.unique(kept[layer.name] // layer.capsule_dim)
                entry["config"]["num_capsules"] = int(primary_types.size)
        elif isinstance(layer, ConvCapsule):
            if intermediate_caps in ("prune", "fresh") and primary_types is not None:
                if layer.num_capsules != model.get_layer(_primary_name(model)).num_capsules:
                    raise ValueError(
                        f"intermediate_caps={intermediate_caps!r} gives {layer.name!r} the "
                        "PrimaryCaps' kept types, but its type count differs from PrimaryCaps'; "
                        "use intermediate_caps='keep'."
                    )
                entry["config"]["num_capsules"] = int(primary_types.size)
        elif isinstance(layer, keras.layers.Conv2D) and layer.name in kept:
            entry["config"]["filters"] = int(kept[layer.name].size)
    return config


def _primary_name(model):
    for layer in model.layers:
        if isinstance(layer, PrimaryCapsule):
            return layer.name
    raise ValueError(f"model {model.name!r} has no PrimaryCapsule layer.")


def prune_model(model, kept, class_caps="fresh", intermediate_caps="prune", name=None):
    """A smaller copy of `model` that keeps only the `kept` channels.

    Args:
        model: a built `capsnet` / `deep_capsnet` (a `CCMTrainer` is unwrapped).
        kept: {feature-map name (see `feature_layer_names`) or its conv layer name: kept
            channel indices} (from `select_channels`); layers not listed keep everything.
            PrimaryCaps indices must be whole capsule types.
        class_caps: "fresh" (the default: new ClassCaps, re-routed by retraining, as in the
            paper) or "transfer" (the kernel rows of the kept capsules).
        intermediate_caps: "prune" (the default and the paper's: IntermediateCaps have
            PrimaryCaps' C, so they keep the kept types as inputs and outputs, transforms
            sliced), "keep" (all output types, only the first layer's input rows are sliced;
            exact equivalence) or "fresh" (the kept type count, new weights).
        name: str, the name of the new model. Defaults to "<name>_pruned".
    Returns:
        The new, uncompiled functional model.
    Raises:
        ValueError: an unknown mode, kept indices that are out of range, empty, not whole
            capsule types or on a layer that cannot be pruned.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import deep_capsnet
    from keras_caps.pruning import architecture, prune_model, zero_channels

    model = deep_capsnet(num_capsules=4, capsule_dim=4, input_shape=(16, 16, 1),
                         backbone_filters=(8, 16), backbone_strides=(1, 2), class_dim=4)
    # keep 4 of relu1's 8 channels and capsule types 0 and 2 (channels 0-3, 8-11) of 4
    kept = {"relu1": [0, 2, 4, 6], "primary_caps": [0, 1, 2, 3, 8, 9, 10, 11]}
    pruned = prune_model(model, kept, class_caps="transfer")
    assert architecture(pruned)["backbone_filters"] == [4, 16]
    assert architecture(pruned)["num_capsules"] == 2

    # It computes what the original computes with the pruned channels zeroed.
    x = np.random.rand(2, 16, 16, 1).astype("float32")
    np.testing.assert_allclose(pruned(x)["lengths"], zero_channels(model, kept)(x)["lengths"],
                               atol=1e-5)
    ```
    """
    model = unwrap(model)
    if class_caps not in CLASS_CAPS_MODES:
        raise ValueError(f"class_caps must be one of {CLASS_CAPS_MODES}, got {class_caps!r}.")
    if intermediate_caps not in INTERMEDIATE_MODES:
        raise ValueError(
            f"intermediate_caps must be one of {INTERMEDIATE_MODES}, got {intermediate_caps!r}."
        )
    kept = _normalise_kept(model, kept)
    config = _pruned_config(model, kept, intermediate_caps, name or f"{model.name}_pruned")
    pruned = keras.Model.from_config(config)
    importance, fresh = _kept_as_importance(model, kept, intermediate_caps, class_caps)
    report = init_student_from_teacher(model, pruned, importance=importance, fresh=fresh)
    if report["skipped"]:  # a layer kind or wiring these rules do not cover
        raise ValueError(f"cannot prune {model.name!r}: these layers could not be sliced: "
                         f"{report['skipped']}.")
    return pruned


def _kept_as_importance(model, kept, intermediate_caps, class_caps):
    """The kept channels as `init_student_from_teacher` importance scores, and fresh layers.

    A kept channel scores 1 and a pruned one 0, so the transfer's "most important" outputs
    are exactly the kept ones (in their original order). With intermediate_caps "prune" or
    "fresh" every IntermediateCaps keeps PrimaryCaps' kept types as its outputs.
    """
    def indicator(size, idx):
        scores = np.zeros(size)
        scores[idx] = 1.0
        return scores

    importance, fresh, primary_types = {}, [], None
    for layer in model.layers:
        if layer.name in kept:
            channels = (layer.num_capsules * layer.capsule_dim
                        if isinstance(layer, PrimaryCapsule) else layer.filters)
            importance[layer.name] = indicator(channels, kept[layer.name])
            if isinstance(layer, PrimaryCapsule):
                primary_types = np.unique(kept[layer.name] // layer.capsule_dim)
        elif isinstance(layer, ConvCapsule):
            if intermediate_caps != "keep" and primary_types is not None:
                importance[layer.name] = indicator(layer.num_capsules, primary_types)
            if intermediate_caps == "fresh":
                fresh.append(layer.name)
        elif isinstance(layer, DenseCapsule) and class_caps == "fresh":
            fresh.append(layer.name)
    return importance, fresh


def zero_channels(model, kept):
    """A copy of `model` whose pruned channels output exactly zero (the pruning reference).

    Backbone conv + BatchNorm: gamma = beta = 0 for the pruned channels (BN outputs 0, ReLU
    keeps 0); a conv without BN (capsnet's conv1, ReLU built in): kernel and bias zeroed.
    PrimaryCaps: conv kernel and bias of the pruned types' channels zeroed, so those capsules
    are squash(0) = 0. IntermediateCaps are unchanged (their inputs from zeroed types are 0).

    Args:
        model: a built `capsnet` / `deep_capsnet` (a `CCMTrainer` is unwrapped).
        kept: {feature-map or conv name: kept channel indices}, as in `prune_model`.
    Returns:
        A new functional model with the same architecture; `model` is unchanged.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import feature_model, mcu_capsnet
    from keras_caps.pruning import zero_channels

    model = mcu_capsnet("S")
    zeroed = zero_channels(model, {"relu1": list(range(8))})  # drop channels 8..15
    maps = feature_model(zeroed)(np.random.rand(1, 28, 28, 1).astype("float32"))
    assert float(np.abs(maps["relu1"][..., 8:]).max()) == 0.0
    ```
    """
    model = unwrap(model)
    kept = _normalise_kept(model, kept)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    for conv_name, idx in kept.items():
        layer = clone.get_layer(conv_name)
        channels = (layer.num_capsules * layer.capsule_dim
                    if isinstance(layer, PrimaryCapsule) else layer.filters)
        dropped = np.setdiff1d(np.arange(channels), idx)
        bn_name = conv_name.replace("conv", "bn", 1)
        bn = None
        if not isinstance(layer, PrimaryCapsule):
            try:
                bn = clone.get_layer(bn_name)
            except ValueError:
                bn = None
        if isinstance(bn, keras.layers.BatchNormalization):
            gamma, beta, mean, var = bn.get_weights()
            gamma[dropped] = 0.0
            beta[dropped] = 0.0
            bn.set_weights([gamma, beta, mean, var])
        else:
            kernel, bias = layer.get_weights()
            kernel[..., dropped] = 0.0
            bias[dropped] = 0.0
            layer.set_weights([kernel, bias])
    return clone


def copy_matching_weights(source, target, layer_names=None):
    """Copies the weights of same-named layers whose weight shapes match (a backbone graft).

    Used to put a pruned base model's backbone and PrimaryCaps under fresh IntermediateCaps
    and ClassCaps (paper 003 Sec. 3.5).

    Args:
        source: a built functional model (a `CCMTrainer` is unwrapped).
        target: a built functional model with layers of the same names.
        layer_names: optional list of the layers to copy. Defaults to None: every backbone
            Conv2D / BatchNormalization and the PrimaryCapsule of `source`.
    Returns:
        list of the names of the layers copied.
    Raises:
        ValueError: a named layer is missing or its weight shapes differ.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import deep_capsnet
    from keras_caps.pruning import copy_matching_weights

    def build(num_intermediate):
        return deep_capsnet(num_capsules=4, capsule_dim=4, num_intermediate=num_intermediate,
                            input_shape=(16, 16, 1), backbone_filters=(8, 16),
                            backbone_strides=(1, 2), class_dim=4)

    base, deeper = build(0), build(1)  # graft the base's backbone under a new capsule stack
    copied = copy_matching_weights(base, deeper)
    assert copied == ["conv1", "bn1", "conv2", "bn2", "primary_caps"]
    np.testing.assert_array_equal(deeper.get_layer("conv1").kernel, base.get_layer("conv1").kernel)
    ```
    """
    source = unwrap(source)
    if layer_names is None:
        layer_names = [
            layer.name for layer in source.layers
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.BatchNormalization,
                                  PrimaryCapsule))
        ]
    copied = []
    for layer_name in layer_names:
        src, dst = source.get_layer(layer_name), target.get_layer(layer_name)
        weights = src.get_weights()
        shapes = [w.shape for w in weights]
        target_shapes = [tuple(w.shape) for w in dst.weights]
        if shapes != target_shapes:
            raise ValueError(
                f"layer {layer_name!r}: weight shapes {shapes} of the source do not match "
                f"{target_shapes} of the target."
            )
        dst.set_weights(weights)
        copied.append(layer_name)
    return copied


def architecture(model):
    """The channel widths of a capsnet / deep_capsnet (e.g. after pruning).

    Args:
        model: a `capsnet` / `deep_capsnet` (a `CCMTrainer` is unwrapped).
    Returns:
        {"backbone_filters": [int], "num_capsules": C, "capsule_dim": D,
        "num_intermediate": I}.
    Raises:
        ValueError: the model has no PrimaryCapsule layer.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.pruning import architecture

    assert architecture(mcu_capsnet("S")) == {
        "backbone_filters": [16, 32, 64], "num_capsules": 8, "capsule_dim": 8,
        "num_intermediate": 0}
    ```
    """
    model = unwrap(model)
    primary = model.get_layer(_primary_name(model))
    return {
        "backbone_filters": [
            layer.filters for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, PrimaryCapsule)
        ],
        "num_capsules": primary.num_capsules,
        "capsule_dim": primary.capsule_dim,
        "num_intermediate": sum(isinstance(layer, ConvCapsule) for layer in model.layers),
    }


__all__ = [
    "CLASS_CAPS_MODES",
    "INTERMEDIATE_MODES",
    "architecture",
    "conv_layer_for_tap",
    "copy_matching_weights",
    "prune_model",
    "zero_channels",
]
