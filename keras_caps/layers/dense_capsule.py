"""DenseCapsule: fully connected capsules with dynamic routing (DigitCaps / ClassCaps)."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_caps.capsule_ops import (
    capsule_initializer,
    dense_routing,
    dynamic_routing,
    initializer_config,
    predict_votes,
    predict_votes_shared,
)


@keras.saving.register_keras_serializable(package="keras_caps")
class DenseCapsule(keras.layers.Layer):
    """Fully connected capsules with dynamic routing (Sabour's DigitCaps / ClassCaps).

    Every input capsule u_i votes for every output capsule j with u_hat_{j|i} = W_ij u_i;
    routing by agreement (`keras_caps.capsule_ops.dynamic_routing`) turns the votes into the
    output capsules v_j, whose lengths are the class scores (`Length`).

    Shapes (B batch, N input capsules, J = `num_capsules`, Din / Dout input / output capsule
    dims, H x W grid and T capsule types of a grid input):
        input:  (B, N, Din), or a capsule grid (B, H, W, T, Din) from `PrimaryCapsule` /
                `ConvCapsule`, flattened to N = H * W * T (capsule index n = (h * W + w) * T + t).
        output: (B, J, Dout); with `return_coupling=True` the tuple (capsules, coupling), the
                coupling coefficients of the last iteration being (B, J, N).

    Weights: without sharing one transform per (input, output) capsule, a (N, J, Din, Dout)
    kernel. With `weight_sharing=True` (FasTrCaps Alg. 4) one transform per input capsule *type*
    shared over all positions, a (T, J, Din, Dout) kernel; this needs the grid input.

    Two exact forms of the same routing: in training (`training=True`, as `fit` and
    `train_on_batch` call it) without weight sharing, `capsule_ops.dense_routing`, which never
    forms the (B, J, N, Dout) votes and trains ~2-3x faster on CPU (benchmarks/throughput.py);
    otherwise (inference, export) `dynamic_routing(votes(inputs))`, which has ~3x fewer
    multiply-adds and a single BATCH_MATMUL with the kernel: the better TFLite form (smaller
    arena, ~5x faster int8 on LiteRT for the demo student).

    Args:
        num_capsules: int, J, the output capsules (the classes of a CapsNet).
        capsule_dim: int, Dout, the dimension of every output capsule.
        routings: int, routing iterations (>= 1). Defaults to 3.
        stop_gradient: bool, let gradients flow through the votes in the last iteration only
            (Sabour's reference code). Defaults to True.
        weight_sharing: bool, share the transforms over the positions of a grid input.
            Defaults to False.
        return_coupling: bool, also return the coupling coefficients. Defaults to False.
        kernel_initializer: "capsule" (the default, see `capsule_ops.capsule_initializer`) or
            any Keras initializer of the transforms.
        kernel_regularizer: optional regularizer of the transforms.
        **kwargs: other keyword arguments of `keras.layers.Layer` (`name`, `trainable`,
            `dtype`, ...).

    Call arguments:
        inputs: the input capsules, (B, N, Din) or (B, H, W, T, Din).
        training: bool, True selects the training form of the routing (see above); the
            result is the same.

    Example:

    ```python
    import numpy as np
    from keras_caps.layers import DenseCapsule

    primary = np.random.rand(2, 6, 6, 4, 8).astype("float32")  # (B, H, W, T, Din)
    class_caps = DenseCapsule(num_capsules=10, capsule_dim=16, routings=3)
    capsules = class_caps(primary)
    assert capsules.shape == (2, 10, 16)  # (B, J, Dout)
    assert tuple(class_caps.kernel.shape) == (144, 10, 8, 16)  # (N, J, Din, Dout)

    # Weight sharing: one transform per capsule type, and the coupling coefficients.
    shared = DenseCapsule(10, 16, weight_sharing=True, return_coupling=True)
    capsules, coupling = shared(primary)
    assert tuple(shared.kernel.shape) == (4, 10, 8, 16)  # (T, J, Din, Dout)
    assert coupling.shape == (2, 10, 144)  # (B, J, N)
    ```
    """

    def __init__(
        self,
        num_capsules,
        capsule_dim,
        routings=3,
        stop_gradient=True,
        weight_sharing=False,
        return_coupling=False,
        kernel_initializer="capsule",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_capsules) < 1 or int(capsule_dim) < 1:
            raise ValueError(
                f"num_capsules and capsule_dim must be >= 1, got {num_capsules}, {capsule_dim}."
            )
        if int(routings) < 1:
            raise ValueError(f"routings must be >= 1, got {routings}.")
        self.num_capsules = int(num_capsules)
        self.capsule_dim = int(capsule_dim)
        self.routings = int(routings)
        self.stop_gradient = bool(stop_gradient)
        self.weight_sharing = bool(weight_sharing)
        self.return_coupling = bool(return_coupling)
        self.kernel_initializer = kernel_initializer
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        # Runtime hook (not serialized): `(kind, tensor) -> tensor` applied to the routing
        # internals, see `capsule_ops.dynamic_routing(quantize=...)`. Set by
        # `keras_caps.quantization` for simulated quantization and its calibration.
        self.routing_quantizer = None

    def build(self, input_shape):
        rank = len(input_shape)
        if rank not in (3, 5) or any(d is None for d in input_shape[1:]):
            raise ValueError(
                "DenseCapsule expects capsules of shape (batch, N, D) or a capsule grid "
                f"(batch, H, W, T, D) with known sizes, got {tuple(input_shape)}."
            )
        if self.weight_sharing and rank != 5:
            raise ValueError(
                "weight_sharing=True needs the capsule grid (batch, H, W, T, D) from "
                "PrimaryCapsule/ConvCapsule to know the capsule types, got "
                f"{tuple(input_shape)}."
            )
        self.input_dim = int(input_shape[-1])
        self.num_inputs = int(math.prod(input_shape[1:-1]))
        if self.weight_sharing:
            self.num_types = int(input_shape[3])
            rows = self.num_types
        else:
            self.num_types = None
            rows = self.num_inputs
        self.kernel = self.add_weight(
            name="kernel",
            shape=(rows, self.num_capsules, self.input_dim, self.capsule_dim),
            initializer=capsule_initializer(
                self.kernel_initializer, self.num_inputs, self.num_capsules, self.capsule_dim
            ),
            regularizer=self.kernel_regularizer,
        )

    def votes(self, inputs):
        """The votes u_hat_{j|i} = W_ij u_i of `inputs` (see the class docstring).

        Args:
            inputs: the input capsules, (B, N, Din) or (B, H, W, T, Din), of the layer's
                built input shape.
        Returns:
            The votes in routing layout, (B, J, N, Dout).
        """
        # static sizes and -1 for the batch: no SHAPE ops in exported graphs
        if self.weight_sharing:
            positions = self.num_inputs // self.num_types
            u = ops.reshape(inputs, (-1, positions, self.num_types, self.input_dim))  # (B, P, T, Din)
            return predict_votes_shared(u, self.kernel)
        u = ops.reshape(inputs, (-1, self.num_inputs, self.input_dim))  # (B, N, Din)
        return predict_votes(u, self.kernel)

    def call(self, inputs, training=None):
        kwargs = dict(
            iterations=self.routings,
            stop_gradient=self.stop_gradient,
            return_coupling=self.return_coupling,
        )
        if training and not self.weight_sharing and self.routing_quantizer is None:
            # the training form, see the class docstring
            u = ops.reshape(inputs, (-1, self.num_inputs, self.input_dim))  # (B, N, Din)
            return dense_routing(u, self.kernel, **kwargs)
        return dynamic_routing(self.votes(inputs), quantize=self.routing_quantizer, **kwargs)

    def compute_output_shape(self, input_shape):
        out = (input_shape[0], self.num_capsules, self.capsule_dim)
        if self.return_coupling:
            n = int(math.prod(input_shape[1:-1]))
            return out, (input_shape[0], self.num_capsules, n)
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            num_capsules=self.num_capsules,
            capsule_dim=self.capsule_dim,
            routings=self.routings,
            stop_gradient=self.stop_gradient,
            weight_sharing=self.weight_sharing,
            return_coupling=self.return_coupling,
            kernel_initializer=initializer_config(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
