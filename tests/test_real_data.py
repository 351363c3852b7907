"""Real Fashion-MNIST: a small CapsNet trained briefly is well above chance (10%)."""

import os

import pytest

from keras_caps import data
from keras_caps.models import capsnet
from keras_caps.training import compile_capsnet, fit_capsnet
from tests.conftest import FASHION_MNIST_DIR

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR),
                       reason="real Fashion-MNIST absent: apt-get install dataset-fashion-mnist"),
]


def test_small_capsnet_learns_fashion_mnist(tmp_path):
    train = data.load_arrays("fashion_mnist", "train", max_examples=3000)
    test = data.load_arrays("fashion_mnist", "test", max_examples=1000)

    def build():
        model = capsnet(conv_filters=32, primary_capsules=8, primary_dim=8, class_dim=8,
                        decoder=None)
        return compile_capsnet(model)

    metrics = fit_capsnet(build, train, test, str(tmp_path), epochs=1, batch_size=32, verbose=0)
    assert metrics["test_accuracy"] > 0.6, metrics["test_accuracy"]


def test_default_train_capsnet_learns_fashion_mnist(tmp_path):
    """Sabour's CapsNet with every train_capsnet default (recipe included) learns in one short
    epoch: before the capsule-length init was the default it stayed at chance (BENCHMARKS)."""
    from keras_caps.runs import TrainConfig
    from keras_caps.runs.train import train

    config = TrainConfig(model_dir=str(tmp_path / "run"), train_examples=3000,
                         test_examples=1000, epochs=1, verbose=0)
    assert config.init_length == 0.5 and config.model == "capsnet"
    metrics = train(config)
    assert metrics["test_accuracy"] > 0.5, metrics["test_accuracy"]
