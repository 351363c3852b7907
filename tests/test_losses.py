"""Margin and reconstruction losses against hand computations."""

import keras
import numpy as np
import pytest

from keras_caps.losses import MarginLoss, ReconstructionLoss, margin_loss


def test_margin_loss_hand_computed():
    lengths = np.array([[0.95, 0.2, 0.05], [0.5, 0.6, 0.0]], "float32")
    y = np.array([[1, 0, 0], [0, 1, 0]], "float32")
    # sample 0: present 0 (0.95 > 0.9); absent 0.5*(0.1^2) + 0 = 0.005
    # sample 1: present (0.9-0.6)^2 = 0.09; absent 0.5*(0.4^2) = 0.08
    per_sample = keras.ops.convert_to_numpy(margin_loss(y, lengths))
    np.testing.assert_allclose(per_sample, [0.005, 0.17], rtol=1e-5)
    np.testing.assert_allclose(float(MarginLoss()(y, lengths)), 0.0875, rtol=1e-5)


def test_margin_loss_accepts_integer_labels():
    lengths = np.array([[0.95, 0.2, 0.05], [0.5, 0.6, 0.0]], "float32")
    np.testing.assert_allclose(
        float(MarginLoss()(np.array([0, 1]), lengths)),
        float(MarginLoss()(np.eye(3, dtype="float32")[[0, 1]], lengths)),
    )


def test_reconstruction_loss_is_weighted_sum_of_squares():
    x = np.zeros((2, 28, 28, 1), "float32")
    r = np.full((2, 28, 28, 1), 0.5, "float32")
    # SSE per image = 784 * 0.25 = 196; x 0.0005 = 0.098 (= 0.392 x MSE of 0.25)
    np.testing.assert_allclose(float(ReconstructionLoss()(x, r)), 0.098, rtol=1e-5)
    np.testing.assert_allclose(float(ReconstructionLoss(weight=1.0)(x, r)), 196.0, rtol=1e-5)


def test_losses_config_round_trip():
    for loss in (MarginLoss(m_plus=0.8, m_minus=0.2, down_weight=0.25), ReconstructionLoss(0.01)):
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()


def test_losses_reject_bad_parameters():
    with pytest.raises(ValueError, match="m_minus < m_plus"):
        MarginLoss(m_plus=0.1, m_minus=0.9)
    with pytest.raises(ValueError, match="reconstruction weight"):
        ReconstructionLoss(-1.0)
