"""The training binary: artifacts, resume without repeating epochs, bad flags, distribution."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_caps.runs import TrainConfig, datasets, models, optimization
from keras_caps.runs.train import train
from tests.synthetic import striped_images


def _config(tmp_path, **overrides):
    values = dict(
        model_dir=str(tmp_path / "run"), conv_filters=8, conv_kernel=3, primary_capsules=4,
        primary_dim=4, primary_kernel=3, class_dim=6, decoder="reduced", epochs=2,
        batch_size=8, verbose=0,
    )
    values.update(overrides)
    return TrainConfig(**values)


def _data(n=48, seed=0):
    return striped_images(n, seed)


def test_run_writes_every_artifact(tmp_path):
    fv = _config(tmp_path)
    metrics = train(fv, datasets_override=(_data(), _data(16, 1)))
    run_dir = tmp_path / "run"
    for name in ("model.keras", "best.keras", "history.csv", "metrics.json",
                 "checkpoints/last.keras", "checkpoints/state.json"):
        assert (run_dir / name).exists(), name
    assert any(os.scandir(run_dir / "logs"))
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["epochs"] == 2 and 0.0 <= saved["test_accuracy"] <= 1.0
    assert metrics["params"] > 0 and len(metrics["history"]) == 2
    assert (run_dir / "history.csv").read_text().count("\n") == 3  # header + 2 epochs


def test_resume_continues_without_repeating_epochs(tmp_path):
    data = (_data(), _data(16, 1))
    train(_config(tmp_path, epochs=1), datasets_override=data)
    state_path = tmp_path / "run" / "checkpoints" / "state.json"
    assert json.loads(state_path.read_text())["epoch"] == 1
    # an "interrupted" run: a second invocation asking for 3 epochs trains only epochs 2 and 3
    metrics = train(_config(tmp_path, epochs=3), datasets_override=data)
    epochs = [row["epoch"] for row in metrics["history"]]
    assert epochs == [1, 2, 3]
    # a finished run re-invoked trains nothing more
    again = train(_config(tmp_path, epochs=3), datasets_override=data)
    assert [row["epoch"] for row in again["history"]] == [1, 2, 3]


def test_interrupted_epoch_resumes_from_last_completed(tmp_path):
    import keras

    from keras_caps.training import fit_capsnet
    from keras_caps.training.loop import compile_capsnet
    fv = _config(tmp_path, epochs=3)

    class Crash(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("simulated interruption")

    def build():
        return compile_capsnet(models.build_model(fv, (12, 12, 1), 10))

    data = (_data(), _data(16, 1))
    with pytest.raises(KeyboardInterrupt):
        fit_capsnet(build, *data, fv.model_dir, epochs=3, batch_size=8, verbose=0,
                    callbacks=[Crash()])
    metrics = fit_capsnet(build, *data, fv.model_dir, epochs=3, batch_size=8, verbose=0)
    assert [row["epoch"] for row in metrics["history"]] == [1, 2, 3]


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="model_dir is required"):
        train(_config(tmp_path, model_dir=""), datasets_override=(_data(), _data()))
    x, y = _data()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        train(_config(tmp_path), datasets_override=((x, y + 5), _data()))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        train(_config(tmp_path, batch_size=0), datasets_override=(_data(), _data()))


def test_adaptive_batch_really_changes_batch_size_and_lr_restarts(tmp_path):
    """WarmAdaBatch: the batch size the model sees changes at the epoch the policy says."""
    import keras

    from keras_caps.training import compile_capsnet, fit_capsnet

    seen = []
    fv = _config(tmp_path, epochs=3, batch_policy="warmadabatch", batch_warmup_size=4,
                batch_warmup_epochs=1, batch_exponent=4, learning_rate=2e-3, lr_min=1e-4)
    batch_policy = optimization.batch_policy(fv)
    x, y = _data(32)
    optimizer = optimization.make_optimizer(fv, len(x), batch_policy)

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(int(self.model.optimizer.iterations.numpy()))

    def build():
        model = models.build_model(fv, (12, 12, 1), 10)
        return compile_capsnet(model, optimizer)

    fit_capsnet(build, (x, y), _data(8, 1), fv.model_dir, epochs=3,
                batch_policy=batch_policy, verbose=0, callbacks=[Spy()])
    # epoch 0: batch 4 -> 8 steps; epochs 1, 2: batch 16 -> 2 steps each
    assert seen == [8, 10, 12]
    # the LR restarts to its maximum exactly at the batch-size change (step 8)
    schedule = optimization.lr_schedule(fv, len(x), batch_policy)
    assert float(schedule(8)) == pytest.approx(2e-3)
    assert float(schedule(7)) < 0.2 * 2e-3


def test_training_reduces_loss_on_synthetic_data(tmp_path):
    metrics = train(
        _config(tmp_path, epochs=4, learning_rate=3e-3, decoder="none"),
        datasets_override=(_data(96), _data(32, 1)),
    )
    losses = [row["loss"] for row in metrics["history"]]
    assert losses[-1] < 0.8 * losses[0]


MIRRORED_SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
n = int(sys.argv[1])
if n > 1:
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
import keras, numpy as np
from keras_caps.models import capsnet
from keras_caps.training import compile_capsnet, model_io
keras.utils.set_random_seed(0)
rng = np.random.RandomState(0)
y = rng.randint(0, 3, 64)
x = rng.rand(64, 12, 12, 1).astype("float32") * 0.1
for i, k in enumerate(y):
    x[i, 2 + 3 * k:5 + 3 * k, 2:6] = 1.0
ds = tf.data.Dataset.from_tensor_slices((x, np.eye(3, dtype="float32")[y])).batch(16)
ds = ds.map(lambda a, b: (a, {"lengths": b}))
strategy = tf.distribute.MirroredStrategy() if n > 1 else tf.distribute.get_strategy()
with strategy.scope():
    m = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                primary_dim=4, primary_kernel=3, class_dim=6, num_classes=3, decoder=None)
    compile_capsnet(m, keras.optimizers.SGD(0.5))
h = m.fit(ds, epochs=4, verbose=0)
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": h.history["loss"]}))
"""


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="3")
    runs = {}
    for n in (1, 2):
        out = subprocess.run([sys.executable, str(script), str(n)], capture_output=True,
                             text=True, env=env, timeout=300, check=True)
        runs[n] = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs[2]["replicas"] == 2
    one, two = np.array(runs[1]["loss"]), np.array(runs[2]["loss"])
    assert two[-1] < two[0]  # it trains
    np.testing.assert_allclose(one, two, rtol=0.05)


LOAD_SCRIPT = r"""
import sys
import keras
import keras_caps  # noqa: F401  (the package import alone must register everything)
model = keras.saving.load_model(sys.argv[1])
print("loaded", type(model.optimizer.learning_rate).__name__ if hasattr(model, "optimizer") else "")
"""


def test_trained_model_loads_in_a_fresh_process(tmp_path):
    """A model compiled with a keras_caps LR schedule loads where only keras_caps is imported."""
    fv = _config(tmp_path, epochs=1, lr_policy="cosine")
    train(fv, datasets_override=(_data(), _data(16, 1)))
    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "run" / "model.keras")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "loaded" in out.stdout


def test_compile_capsnet_run_eagerly_trains_without_tf_function():
    """run_eagerly=True: layers see eager tensors (pdb/print work) and the step still learns."""
    import keras
    import tensorflow as tf

    from keras_caps.models import capsnet
    from keras_caps.training import compile_capsnet

    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x):
            seen.append(tf.executing_eagerly())
            return x

    keras.utils.set_random_seed(0)
    base = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=2,
                   primary_dim=4, primary_kernel=3, class_dim=4, decoder=None)
    image = keras.Input((12, 12, 1))
    model = keras.Model(image, base(Probe()(image)))
    eager = compile_capsnet(model, run_eagerly=True)
    assert eager.run_eagerly
    x, y = _data(8)
    seen.clear()  # the symbolic call that built the model
    first = float(eager.train_on_batch(x, {"lengths": y})[0])
    assert seen and all(seen)
    assert np.isfinite(first)
    assert not compile_capsnet(capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3,
                                       primary_capsules=2, primary_dim=4, primary_kernel=3,
                                       class_dim=4, decoder=None)).run_eagerly


def test_validation_examples_hold_out_the_training_tail(tmp_path):
    train_split, test_split = _data(40), _data(16, 1)
    fv = _config(tmp_path, validation_examples=10)
    (xt, yt), (xv, yv) = datasets.load_datasets(fv, datasets_override=(train_split, test_split))
    assert len(xt) == 30 and len(xv) == 10
    np.testing.assert_array_equal(xv, train_split[0][30:])  # the tail, not the test split
    np.testing.assert_array_equal(yt, train_split[1][:30])
    assert datasets.evaluation_split(fv) == "validation"
    assert datasets.evaluation_split(_config(tmp_path)) == "test"
    # what load_datasets returns is already split: passed on (as the pipeline's stages do)
    # it is used as it is, not split a second time
    assert isinstance(datasets.load_datasets(fv, datasets_override=(train_split, test_split)),
                      datasets.PreparedSplits)
    again = datasets.load_datasets(fv, datasets_override=datasets.load_datasets(
        fv, datasets_override=(train_split, test_split)))
    assert len(again[0][0]) == 30 and len(again[1][0]) == 10
    np.testing.assert_array_equal(again[1][0], train_split[0][30:])
    with pytest.raises(ValueError, match="validation_examples=40 must lie in"):
        datasets.load_datasets(_config(tmp_path, validation_examples=40),
                               datasets_override=(train_split, test_split))
    # the binary trains on the head and reports the held-out tail
    metrics = train(_config(tmp_path, validation_examples=10, epochs=1),
                    datasets_override=(train_split, test_split))
    assert metrics["history"][0]["epoch"] == 1


def test_validation_examples_read_no_test_split(tmp_path, monkeypatch):
    from keras_caps import data

    asked = []

    def fake_load_arrays(name, split, max_examples=None, **_):
        asked.append(split)
        return _data(40)

    monkeypatch.setattr(data, "load_arrays", fake_load_arrays)
    datasets.load_datasets(_config(tmp_path, validation_examples=8))
    assert asked == ["train"]


def test_init_length_calibrates_a_fresh_model_only(tmp_path):
    """--init_length scales the capsule layers of a fresh model to the target mean length on
    training images (report in init_lengths.json); a resumed run keeps its checkpoint."""
    fv = _config(tmp_path, init_length=0.5, epochs=1, decoder="none")
    train(fv, datasets_override=(_data(), _data(16, 1)))
    report = json.loads((tmp_path / "run" / "init_lengths.json").read_text())
    assert set(report) == {"class_caps"}  # capsnet: PrimaryCaps is a conv, not routed
    assert abs(report["class_caps"]["length_after"] - 0.5) <= 0.011
    assert report["class_caps"]["length_before"] > 0.6  # the initializer saturates them
    before = os.path.getmtime(tmp_path / "run" / "init_lengths.json")
    train(_config(tmp_path, init_length=0.5, epochs=2, decoder="none"),
          datasets_override=(_data(), _data(16, 1)))  # resumes: no new calibration
    assert os.path.getmtime(tmp_path / "run" / "init_lengths.json") == before
    with pytest.raises(ValueError, match="init_length must lie in"):
        train(_config(tmp_path, init_length=1.0),
              datasets_override=(_data(), _data(16, 1)))
