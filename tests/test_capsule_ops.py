"""Routing invariants and squash maths."""

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from keras_caps import capsule_ops as co


def test_squash_matches_formula_and_norms_below_one():
    s = np.random.RandomState(0).randn(5, 7, 4).astype("float32") * 3
    v = ops.convert_to_numpy(co.squash(s))
    sq = (s**2).sum(-1, keepdims=True)
    expected = s * sq / (1 + sq) / np.sqrt(sq + co.EPSILON)
    np.testing.assert_allclose(v, expected, rtol=1e-5, atol=1e-7)
    norms = np.linalg.norm(v, axis=-1)
    assert (norms >= 0).all() and (norms < 1).all()
    # direction is kept
    cos = (v * s).sum(-1) / (np.linalg.norm(v, axis=-1) * np.linalg.norm(s, axis=-1))
    np.testing.assert_allclose(cos, 1.0, rtol=1e-5)


def test_squash_of_zero_is_zero_with_finite_gradient():
    s = tf.zeros((2, 3, 8))
    with tf.GradientTape() as tape:
        tape.watch(s)
        v = co.squash(s)
        total = tf.reduce_sum(v)
    grad = tape.gradient(total, s).numpy()
    assert np.all(v.numpy() == 0)
    assert np.all(np.isfinite(grad))


def test_safe_length_finite_gradient_at_zero():
    s = tf.zeros((2, 3, 4))
    with tf.GradientTape() as tape:
        tape.watch(s)
        length = co.safe_length(s)
    grad = tape.gradient(length, s).numpy()
    np.testing.assert_allclose(length.numpy(), np.sqrt(co.EPSILON), rtol=1e-5)
    assert np.all(np.isfinite(grad))


def _votes(b=3, j=5, n=11, d=4, seed=0):
    return np.random.RandomState(seed).randn(b, j, n, d).astype("float32")


def test_coupling_sums_to_one_over_outputs_and_norms_in_range():
    votes = _votes()
    v, c = co.dynamic_routing(votes, iterations=3, return_coupling=True)
    c = ops.convert_to_numpy(c)
    np.testing.assert_allclose(c.sum(axis=1), 1.0, rtol=1e-5)
    norms = np.linalg.norm(ops.convert_to_numpy(v), axis=-1)
    assert v.shape == (3, 5, 4)
    assert (norms >= 0).all() and (norms < 1).all()


def test_one_iteration_is_uniform_coupling():
    votes = _votes()
    v, c = co.dynamic_routing(votes, iterations=1, return_coupling=True)
    np.testing.assert_allclose(ops.convert_to_numpy(c), 1.0 / 5, rtol=1e-6)
    expected = co.squash(votes.sum(axis=2) / 5.0)
    np.testing.assert_allclose(ops.convert_to_numpy(v), ops.convert_to_numpy(expected), rtol=1e-5)


def _reference_routing(u_hat, iterations):
    """Plain numpy Procedure 1 of Sabour et al. with u_hat (B, N, J, D)."""
    b = np.zeros(u_hat.shape[:3])
    for r in range(iterations):
        c = np.exp(b) / np.exp(b).sum(axis=2, keepdims=True)
        s = (c[..., None] * u_hat).sum(axis=1)  # (B, J, D)
        sq = (s**2).sum(-1, keepdims=True)
        v = s * sq / (1 + sq) / np.sqrt(sq + co.EPSILON)
        if r < iterations - 1:
            b = b + (u_hat * v[:, None]).sum(-1)
    return v, c


@pytest.mark.parametrize("iterations", [1, 2, 3, 5])
def test_routing_matches_numpy_reference(iterations):
    votes = _votes(seed=iterations)
    v, c = co.dynamic_routing(votes, iterations=iterations, return_coupling=True)
    v_ref, c_ref = _reference_routing(votes.transpose(0, 2, 1, 3).astype("float64"), iterations)
    np.testing.assert_allclose(ops.convert_to_numpy(v), v_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(c), c_ref.transpose(0, 2, 1), rtol=1e-4, atol=1e-6)


def test_stop_gradient_only_changes_gradients_not_values():
    votes = tf.constant(_votes())
    outs, grads = [], []
    for stop in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(votes)
            v = co.dynamic_routing(votes, iterations=3, stop_gradient=stop)
            loss = tf.reduce_sum(v * tf.range(4, dtype=tf.float32))
        outs.append(v.numpy())
        grads.append(tape.gradient(loss, votes).numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6)
    assert not np.allclose(grads[0], grads[1])
    assert all(np.isfinite(g).all() for g in grads)


def test_votes_match_explicit_matmul():
    rng = np.random.RandomState(1)
    u = rng.randn(2, 6, 3).astype("float32")
    w = rng.randn(6, 4, 3, 5).astype("float32")
    votes = ops.convert_to_numpy(co.predict_votes(u, w))
    expected = np.einsum("bni,njio->bjno", u, w)
    np.testing.assert_allclose(votes, expected, rtol=1e-5, atol=1e-6)  # float32 sums
    assert votes.shape == (2, 4, 6, 5)


def test_shared_votes_use_one_transform_per_type():
    rng = np.random.RandomState(2)
    u = rng.randn(2, 5, 3, 4).astype("float32")  # (B, P, T, Din)
    w = rng.randn(3, 2, 4, 6).astype("float32")  # (T, J, Din, Dout)
    votes = ops.convert_to_numpy(co.predict_votes_shared(u, w))  # (B, J, P*T, Dout)
    full = np.tile(w[None], (5, 1, 1, 1, 1)).reshape(15, 2, 4, 6)  # position-major
    expected = np.einsum("bni,njio->bjno", u.reshape(2, 15, 4), full)
    np.testing.assert_allclose(votes, expected, rtol=1e-5, atol=1e-6)  # float32 sums


def test_routing_rejects_zero_iterations():
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        co.dynamic_routing(_votes(), iterations=0)


def test_capsule_initializer_scale_and_passthrough():
    init = co.capsule_initializer("capsule", num_inputs=100, num_outputs=10, output_dim=16)
    w = np.asarray(init((100, 10, 8, 16)))
    expected_std = co.CAPSULE_INIT_GAIN * 10 / np.sqrt(100 * 16)
    # truncated at 2 std: the sample std is ~0.88 of the nominal one
    assert 0.8 * expected_std < w.std() < 0.95 * expected_std
    assert co.capsule_initializer("zeros", 1, 1, 1).__class__.__name__ == "Zeros"


@pytest.mark.parametrize("iterations", [1, 2, 3])
@pytest.mark.parametrize("stop", [True, False])
def test_dense_routing_equals_votes_routing_values_and_gradients(iterations, stop):
    """dense_routing never forms the votes but is the same function, gradients included."""
    rng = np.random.RandomState(iterations)
    u = tf.constant(rng.randn(3, 7, 4).astype("float32") * 0.5)
    w = tf.constant(rng.randn(7, 5, 4, 6).astype("float32") * 0.3)
    weights = tf.constant(rng.randn(3, 5, 6).astype("float32"))
    results = []
    for fused in (True, False):
        with tf.GradientTape() as tape:
            tape.watch([u, w])
            if fused:
                v, c = co.dense_routing(u, w, iterations, stop, return_coupling=True)
            else:
                v, c = co.dynamic_routing(co.predict_votes(u, w), iterations, stop,
                                          return_coupling=True)
            loss = tf.reduce_sum(v * weights) + tf.reduce_sum(c[:, :2] * 0.1)
        results.append([v, c] + tape.gradient(loss, [u, w]))
    for fused, ref in zip(*results):
        np.testing.assert_allclose(fused.numpy(), ref.numpy(), rtol=1e-4, atol=1e-6)
    assert results[0][1].shape == (3, 5, 7)


def test_dense_routing_matches_numpy_reference():
    rng = np.random.RandomState(4)
    u = rng.randn(2, 9, 3).astype("float32")
    w = rng.randn(9, 4, 3, 5).astype("float32") * 0.4
    v, c = co.dense_routing(u, w, iterations=3, return_coupling=True)
    v_ref, c_ref = _reference_routing(np.einsum("bni,njio->bnjo", u, w).astype("float64"), 3)
    np.testing.assert_allclose(ops.convert_to_numpy(v), v_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(c), c_ref.transpose(0, 2, 1), rtol=1e-4, atol=1e-6)
