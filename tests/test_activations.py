"""Capsule activations, dead capsules, the per-epoch logger and heatmaps."""

import csv

import keras
import numpy as np
import pytest

from keras_caps.analysis.activations import (
    DEAD_THRESHOLD,
    DeadCapsuleLogger,
    activations_from_outputs,
    capsule_activations,
    capsule_layer_names,
    dead_fraction,
    dead_percentages,
    write_heatmaps,
)
from keras_caps.data import image_batches
from keras_caps.models import deep_capsnet
from keras_caps.training import compile_capsnet, model_io


def test_activation_is_the_norm_of_the_mean_output():
    u = np.zeros((2, 1, 1, 3, 2))
    u[:, 0, 0, 0] = [[0.6, 0.8], [0.6, 0.8]]  # constant direction: activation 1
    u[:, 0, 0, 1] = [[0.5, 0.0], [-0.5, 0.0]]  # long but opposite outputs: mean 0 -> dead
    u[:, 0, 0, 2] = [[0.01, 0.0], [0.0, 0.0]]  # mean (0.005, 0): dead
    a = activations_from_outputs(u)
    np.testing.assert_allclose(a[0, 0], [1.0, 0.0, 0.005])
    assert dead_fraction(a) == pytest.approx(2 / 3)


def test_dead_threshold_is_inclusive_and_percentages_per_layer():
    grid = np.array([0.0, 0.01, 0.0100001, 0.5]).reshape(1, 2, 2)
    assert DEAD_THRESHOLD == 0.01
    assert dead_fraction(grid) == 0.5  # 0 and exactly 0.01 are dead
    pct = dead_percentages({"a": grid, "b": np.ones((2, 2, 2))})
    assert pct["a"] == 50.0 and pct["b"] == 0.0 and pct["all"] == pytest.approx(100 * 2 / 12)
    with pytest.raises(ValueError, match="empty"):
        dead_fraction(np.zeros((0, 2, 2)))


def _model(num_intermediate=2):
    return deep_capsnet(4, 2, num_intermediate, input_shape=(12, 12, 1),
                        backbone_filters=(4, 8, 8), class_dim=4)


def test_capsule_activations_match_the_layer_outputs():
    model = _model()
    x = np.random.RandomState(0).rand(10, 12, 12, 1).astype("float32")
    assert capsule_layer_names(model) == ["primary_caps", "intermediate_caps_1",
                                          "intermediate_caps_2"]
    acts = capsule_activations(model, x, batch_size=4)  # 3 batches, the last one partial
    probe = keras.Model(model.input, model.get_layer("intermediate_caps_2").output)
    np.testing.assert_allclose(acts["intermediate_caps_2"],
                               activations_from_outputs(probe(x)), rtol=1e-5, atol=1e-7)
    assert acts["primary_caps"].shape == (2, 2, 4)
    # uint8 images are scaled like make_dataset; (images, labels) tuples work too
    x8 = (x * 255).astype("uint8")
    scaled = next(image_batches((x8, np.zeros(10)), batch_size=10))
    np.testing.assert_allclose(scaled, x8.astype("float32") / 255.0)


def test_dead_capsule_logger_adds_percentages_to_logs_and_csv(tmp_path):
    from keras_caps import data

    model = compile_capsnet(_model(1), jit_compile=False)
    model.run_eagerly = True
    rng = np.random.RandomState(0)
    x, y = (rng.rand(16, 12, 12, 1) * 255).astype("uint8"), rng.randint(0, 10, 16)
    ds = data.make_dataset(x, y, batch_size=8).map(model_io(model))
    logger = DeadCapsuleLogger(x, num_batches=1, batch_size=8,
                               csv_path=str(tmp_path / "dead.csv"),
                               heatmap_dir=str(tmp_path / "maps"))
    history = model.fit(ds, epochs=2, verbose=0, shuffle=False, callbacks=[logger]).history
    for key in ("dead_primary_caps", "dead_intermediate_caps_1", "dead_all"):
        assert len(history[key]) == 2 and all(0.0 <= v <= 100.0 for v in history[key])
    with open(tmp_path / "dead.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["dead_all"]) == pytest.approx(history["dead_all"][-1])
    for name in ("primary_caps.png", "intermediate_caps_1.png", "all_layers.png"):
        path = tmp_path / "maps" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    # a resumed logger keeps earlier rows
    again = DeadCapsuleLogger(x, csv_path=str(tmp_path / "dead.csv"))
    assert [r["epoch"] for r in again.history] == [1, 2]


def test_write_heatmaps_writes_one_png_per_layer(tmp_path):
    acts = {"primary_caps": np.random.RandomState(0).rand(3, 3, 5),
            "intermediate_caps_1": np.zeros((3, 3, 5))}
    paths = write_heatmaps(acts, str(tmp_path), prefix="I1_")
    assert sorted(p.split("/")[-1] for p in paths) == [
        "I1_all_layers.png", "I1_intermediate_caps_1.png", "I1_primary_caps.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
