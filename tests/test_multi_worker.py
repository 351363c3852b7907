"""--distribution_strategy=multi_worker for real: two worker processes on this machine.

TF_CONFIG names two workers on 127.0.0.1 ports; worker 0 is the chief and the only one that
writes --model_dir (worker 1 writes to a temporary folder it removes, as in Keras'
multi-worker guide). Losses must equal a one-process run of the same global batch, and an
interrupted (shorter) multi-worker run must resume from the chief's checkpoint.

Keras 3 (<= 3.15) cannot `fit` under MultiWorkerMirroredStrategy without the two workarounds
in keras_caps.training.loop.prepare_multi_worker / multi_worker_logs (keras-team/keras#20585);
this test is what shows they give the one-process result.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = r"""
import json, sys
from keras_caps.runs import TrainConfig
from keras_caps.runs.train import train
from tests.synthetic import striped_images

model_dir, strategy, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = TrainConfig(model_dir=model_dir, conv_filters=8, conv_kernel=3, primary_capsules=4,
                     primary_dim=4, primary_kernel=3, class_dim=6, decoder="none", epochs=epochs,
                     batch_size=16, verbose=0, optimizer="sgd", learning_rate=0.3,
                     lr_policy="fixed", init_length=0.0, distribution_strategy=strategy)
metrics = train(config, datasets_override=(striped_images(64, 0), striped_images(32, 1)))
print("RESULT " + json.dumps({"loss": [r["loss"] for r in metrics["history"]],
                              "epochs": [r["epoch"] for r in metrics["history"]],
                              "test_accuracy": metrics["test_accuracy"],
                              "test_loss": metrics["test_loss"],
                              "model_path": metrics["model_path"]}))
"""


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(tf_config=None):
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _result(stdout):
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, stdout[-2000:]
    return json.loads(lines[-1][len("RESULT "):])


def _multi_worker(script, model_dir, epochs, timeout=400):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [subprocess.Popen(
        [sys.executable, str(script), str(model_dir), "multi_worker", str(epochs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        for i in range(2)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, err[-3000:]
            outs.append(_result(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outs


@pytest.mark.slow
def test_two_local_workers_match_one_process_and_resume(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "single"),
                             "one_device", "2"], capture_output=True, text=True, env=_env(),
                            timeout=400)
    assert single.returncode == 0, single.stderr[-3000:]
    one = _result(single.stdout)

    run = tmp_path / "multi"
    first = _multi_worker(script, run, epochs=1)  # "interrupted" after one epoch
    assert [r["epochs"] for r in first] == [[1], [1]]
    chief, worker = _multi_worker(script, run, epochs=2)  # resumes: trains epoch 2 only
    assert chief["epochs"] == worker["epochs"] == [1, 2]
    np.testing.assert_allclose(chief["loss"], worker["loss"], rtol=1e-5)
    np.testing.assert_allclose(chief["loss"], one["loss"], rtol=0.05)
    assert chief["loss"][-1] < 0.6 * chief["loss"][0]  # it trains
    # the chief and the worker evaluate the same (global) test loss, that of one process
    np.testing.assert_allclose(chief["test_loss"], worker["test_loss"], rtol=1e-5)
    np.testing.assert_allclose(chief["test_loss"], one["test_loss"], rtol=0.1)
    # only the chief wrote --model_dir; the worker's temporary folder is gone
    assert chief["model_path"] == str(run / "model.keras")
    assert not worker["model_path"].startswith(str(run))
    assert not os.path.exists(os.path.dirname(worker["model_path"]))
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
