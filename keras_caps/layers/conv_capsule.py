"""ConvCapsule: convolutional capsules with local dynamic routing (IntermediateCaps, paper 003)."""

from __future__ import annotations

import keras
from keras import ops

from keras_caps.capsule_ops import (
    capsule_initializer,
    dynamic_routing,
    initializer_config,
    predict_votes,
)


def capsule_patches(capsules, kernel_size, strides, padding):
    """Gathers the k x k neighbourhood of every output position of a capsule grid.

    Written with pads and strided slices of a 4-D tensor (no image-patch op), the form that
    TFLite Micro runs.

    Args:
        capsules: the capsule grid, (B, H, W, C, D).
        kernel_size: int, k.
        strides: int, the step between neighbourhoods.
        padding: "same" (zero capsules around the grid, (k - 1) // 2 on the leading side)
            or "valid".
    Returns:
        (B, H_out, W_out, k * k, C, D); patch index = dy * k + dx.

    Example:

    ```python
    import numpy as np
    from keras_caps.layers.conv_capsule import capsule_patches

    grid = np.random.rand(2, 5, 5, 3, 4).astype("float32")  # (B, H, W, C, D)
    patches = capsule_patches(grid, kernel_size=3, strides=1, padding="same")
    assert patches.shape == (2, 5, 5, 9, 3, 4)  # (B, H_out, W_out, k * k, C, D)
    # the centre of the neighbourhood (dy = dx = 1) is the capsule itself
    np.testing.assert_allclose(patches[:, :, :, 4], grid)
    assert capsule_patches(grid, 3, 2, "valid").shape == (2, 2, 2, 9, 3, 4)
    ```
    """
    _, h, w, c, d = capsules.shape
    x = ops.reshape(capsules, (-1, h, w, c * d))  # 4-D: TFLite Micro slices at most 4-D well
    if padding == "same":
        total = kernel_size - 1
        lo = total // 2
        x = ops.pad(x, [[0, 0], [lo, total - lo], [lo, total - lo], [0, 0]])
        h_out, w_out = -(-h // strides), -(-w // strides)
    else:
        h_out, w_out = (h - kernel_size) // strides + 1, (w - kernel_size) // strides + 1
    patches = []
    for dy in range(kernel_size):
        for dx in range(kernel_size):
            patches.append(
                x[
                    :,
                    dy : dy + (h_out - 1) * strides + 1 : strides,
                    dx : dx + (w_out - 1) * strides + 1 : strides,
                ]
            )  # (B, H_out, W_out, C * D)
    stacked = ops.stack(patches, axis=3)  # (B, H_out, W_out, k * k, C * D)
    return ops.reshape(stacked, (-1, h_out, w_out, kernel_size * kernel_size, c, d))


@keras.saving.register_keras_serializable(package="keras_caps")
class ConvCapsule(keras.layers.Layer):
    """Convolutional capsules with local dynamic routing (paper 003's IntermediateCaps).

    ConvCaps of Hinton et al. (2018) with dynamic routing: each output position routes its
    k x k x C_in input capsules (N = k * k * C_in votes per output type) to the C_out output
    capsule types at that position, with the coupling softmax over C_out at each position.
    One transform per (kernel offset, input type, output type), shared across positions.
    Paper 003 uses kernel 3, stride 1, padding 1 ("same"), C_out = C_in and Dout = Din.

    Shapes (B batch, H x W grid, C_in / C_out capsule types, Din / Dout capsule dims,
    k = `kernel_size`):
        input:  (B, H, W, C_in, Din).
        output: (B, H_out, W_out, C_out, Dout); with `return_coupling=True` the tuple
                (capsules, coupling), the coupling coefficients being
                (B, H_out, W_out, C_out, k * k * C_in).

    Args:
        num_capsules: int, C_out, the output capsule types.
        capsule_dim: int, Dout, the dimension of every output capsule.
        kernel_size: int, k. Defaults to 3.
        strides: int. Defaults to 1.
        padding: "same" (the default; padding 1 for k = 3) or "valid".
        routings: int, routing iterations (>= 1). Defaults to 3.
        stop_gradient: bool, as in `DenseCapsule`. Defaults to True.
        return_coupling: bool, also return the coupling coefficients. Defaults to False.
        kernel_initializer: "capsule" (the default, see `capsule_ops.capsule_initializer`) or
            any Keras initializer of the (k * k * C_in, C_out, Din, Dout) transforms.
        kernel_regularizer: optional regularizer of the transforms.
        **kwargs: other keyword arguments of `keras.layers.Layer` (`name`, `trainable`,
            `dtype`, ...).

    Call arguments:
        inputs: the capsule grid, (B, H, W, C_in, Din).

    Example:

    ```python
    import numpy as np
    from keras_caps.layers import ConvCapsule

    grid = np.random.rand(2, 5, 5, 4, 8).astype("float32")  # (B, H, W, C_in, Din)
    layer = ConvCapsule(num_capsules=4, capsule_dim=8)  # 3x3, stride 1, "same"
    capsules = layer(grid)
    assert capsules.shape == (2, 5, 5, 4, 8)  # (B, H_out, W_out, C_out, Dout)
    assert tuple(layer.kernel.shape) == (36, 4, 8, 8)  # (k * k * C_in, C_out, Din, Dout)

    strided = ConvCapsule(6, 4, strides=2, padding="valid", return_coupling=True)
    capsules, coupling = strided(grid)
    assert capsules.shape == (2, 2, 2, 6, 4)
    assert coupling.shape == (2, 2, 2, 6, 36)  # (B, H_out, W_out, C_out, k * k * C_in)
    ```
    """

    def __init__(
        self,
        num_capsules,
        capsule_dim,
        kernel_size=3,
        strides=1,
        padding="same",
        routings=3,
        stop_gradient=True,
        return_coupling=False,
        kernel_initializer="capsule",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}.")
        for name, value in (
            ("num_capsules", num_capsules),
            ("capsule_dim", capsule_dim),
            ("kernel_size", kernel_size),
            ("strides", strides),
            ("routings", routings),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        self.num_capsules = int(num_capsules)
        self.capsule_dim = int(capsule_dim)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.padding = padding
        self.routings = int(routings)
        self.stop_gradient = bool(stop_gradient)
        self.return_coupling = bool(return_coupling)
        self.kernel_initializer = kernel_initializer
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        # Runtime hook (not serialized), as DenseCapsule.routing_quantizer.
        self.routing_quantizer = None

    def build(self, input_shape):
        if len(input_shape) != 5 or any(d is None for d in input_shape[1:]):
            raise ValueError(
                "ConvCapsule expects a capsule grid (batch, H, W, C, D) with known sizes, "
                f"got {tuple(input_shape)}."
            )
        self.input_types = int(input_shape[3])
        self.input_dim = int(input_shape[4])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(
                self.kernel_size * self.kernel_size * self.input_types,
                self.num_capsules,
                self.input_dim,
                self.capsule_dim,
            ),
            initializer=capsule_initializer(
                self.kernel_initializer,
                self.kernel_size * self.kernel_size * self.input_types,
                self.num_capsules,
                self.capsule_dim,
            ),
            regularizer=self.kernel_regularizer,
        )

    def _output_grid(self, h, w):
        if self.padding == "same":
            return -(-h // self.strides), -(-w // self.strides)
        k, s = self.kernel_size, self.strides
        return (h - k) // s + 1, (w - k) // s + 1

    def call(self, inputs):
        patches = capsule_patches(inputs, self.kernel_size, self.strides, self.padding)
        h_out, w_out = patches.shape[1], patches.shape[2]
        n_in = patches.shape[3] * patches.shape[4]
        u = ops.reshape(patches, (-1, n_in, self.input_dim))  # (B * H * W, k*k*C_in, Din)
        votes = predict_votes(u, self.kernel)  # (B*H*W, C_out, N, Dout)
        out = dynamic_routing(
            votes,
            self.routings,
            self.stop_gradient,
            return_coupling=self.return_coupling,
            quantize=self.routing_quantizer,
        )
        v, coupling = out if self.return_coupling else (out, None)
        v = ops.reshape(v, (-1, h_out, w_out, self.num_capsules, self.capsule_dim))
        if coupling is None:
            return v
        return v, ops.reshape(coupling, (-1, h_out, w_out, self.num_capsules, n_in))

    def compute_output_shape(self, input_shape):
        h, w = self._output_grid(input_shape[1], input_shape[2])
        out = (input_shape[0], h, w, self.num_capsules, self.capsule_dim)
        if self.return_coupling:
            n_in = self.kernel_size**2 * input_shape[3]
            return out, (input_shape[0], h, w, self.num_capsules, n_in)
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            num_capsules=self.num_capsules,
            capsule_dim=self.capsule_dim,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            routings=self.routings,
            stop_gradient=self.stop_gradient,
            return_coupling=self.return_coupling,
            kernel_initializer=initializer_config(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
