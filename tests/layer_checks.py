"""keras-hub style standard checks for a keras_caps layer."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf


def _first(x):
    return x[0] if isinstance(x, (list, tuple)) else x


def run_layer_checks(layer_cls, init_kwargs, input_data, expected_output_shape):
    """Config round trip, symbolic + eager call, a gradient step, .keras save/load (safe_mode).

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_data: a numpy array (batch first), or a list of them for multi-input layers.
        expected_output_shape: shape of the (first) output, batch included.
    """
    layer = layer_cls(**init_kwargs)
    # 1. config round trip
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    for key, value in init_kwargs.items():
        got = config[key]
        assert got == value or tuple(np.ravel(got)) == tuple(np.ravel(value)), (key, got, value)

    # 2. symbolic call
    multi = isinstance(input_data, list)
    inputs = (
        [keras.Input(shape=x.shape[1:]) for x in input_data]
        if multi
        else keras.Input(shape=input_data.shape[1:])
    )
    sym = _first(layer(inputs))
    assert tuple(sym.shape[1:]) == tuple(expected_output_shape[1:])

    # 3. eager call
    eager = _first(layer(input_data))
    assert tuple(eager.shape) == tuple(expected_output_shape)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(eager)))

    # 4. a gradient step reaches every trainable weight
    if layer.trainable_weights:
        x = [tf.constant(v) for v in input_data] if multi else tf.constant(input_data)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(_first(layer(x, training=True))))
        grads = tape.gradient(loss, layer.trainable_weights)
        for w, g in zip(layer.trainable_weights, grads):
            assert g is not None, f"no gradient for {w.path}"
            assert np.any(keras.ops.convert_to_numpy(g) != 0), f"zero gradient for {w.path}"
        opt = keras.optimizers.SGD(0.1)
        before = [keras.ops.convert_to_numpy(w).copy() for w in layer.trainable_weights]
        opt.apply_gradients(zip(grads, layer.trainable_weights))
        after = [keras.ops.convert_to_numpy(w) for w in layer.trainable_weights]
        assert any(not np.allclose(b, a) for b, a in zip(before, after))

    # 5. save / load a model around the layer with safe_mode=True: identical outputs
    model = keras.Model(inputs, layer(inputs))
    expected = model.predict(input_data, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    got = loaded.predict(input_data, verbose=0)
    for e, g in zip(keras.tree.flatten(expected), keras.tree.flatten(got)):
        np.testing.assert_allclose(e, g, rtol=1e-6, atol=1e-6)
    return layer
