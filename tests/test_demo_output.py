"""The pipeline of `make demo` prints stage progress and its table, not the native noise.

Runs `python -m train.pipeline` as make demo does (quick preset, TF_CPP_MIN_LOG_LEVEL=2),
on a tiny generated .npz dataset, and counts the lines it prints.
"""

import os
import subprocess
import sys

import pytest

from tests.data_fixtures import write_npz

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_NOISE = ("I0000", "W0000", "absl::InitializeLog", "oneDNN", "cuda", "XNNPACK",
                "Failed to allocate", "Failed to resize", "SavedModel", "INFO:")


def _run(tmp_path, *extra):
    data = write_npz(tmp_path / "d.npz", n_train=64, n_test=24, size=16, num_classes=3)
    command = [sys.executable, "-m", "train.pipeline", f"--model_dir={tmp_path / 'run'}",
               "--preset=quick", f"--dataset=npz:{data}", "--epochs=1", "--student_epochs=1",
               "--ccm_epochs=1", "--retrain_epochs=1", "--batch_policy=fixed",
               "--batch_size=16", "--conv_filters=8", "--primary_capsules=4",
               "--class_dim=6", "--decoder=none", "--conv_kernel=3", "--primary_kernel=3", "--calibration_batches=1",
               "--search_examples=8", "--tflite_examples=8", "--latency_repeats=2",
               "--ci_batches=1", "--qat_epochs=0", *extra]
    # the environment of the Makefile's demo target (conftest hides GPUs with
    # CUDA_VISIBLE_DEVICES="", which makes TensorFlow log a cuInit error of its own)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return (done.stdout + done.stderr).splitlines()


@pytest.mark.slow
def test_demo_pipeline_prints_at_most_50_lines_without_native_noise(tmp_path):
    lines = _run(tmp_path)
    noise = [line for line in lines if any(n in line for n in NATIVE_NOISE)]
    assert not noise, "\n".join(noise)
    assert len(lines) <= 50, "\n".join(lines)
    assert any(line.startswith("[pipeline] teacher") for line in lines)
    assert any(line.startswith("| export+evaluate int8 |") for line in lines)
    assert not any(line.startswith("# Channel pruning") for line in lines)  # --verbose=2 only
    assert not any(line.startswith("  eval ") for line in lines)  # the PoT search log, too


@pytest.mark.parametrize("binary", ["train.train_capsnet", "tflite.export"])
def test_binaries_hide_tensorflow_start_up_lines_unless_verbose(binary):
    # no TF_CPP_MIN_LOG_LEVEL: the binaries' own default hides the C++ lines; --verbose=2
    # (or the variable) shows them again
    env = {k: v for k, v in os.environ.items()
           if k not in ("CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL")}

    def output(*args):
        done = subprocess.run([sys.executable, "-m", binary, *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        return done.stdout + done.stderr

    quiet = output("--help")
    assert "usage" in quiet.lower() or "flags" in quiet.lower(), quiet[-2000:]
    assert not [n for n in ("I0000", "W0000", "absl::InitializeLog", "oneDNN") if n in quiet], (
        quiet[-2000:])
    assert "oneDNN" not in output("--verbose=1", "--help")
    assert "oneDNN" in output("--verbose", "2", "--help")
