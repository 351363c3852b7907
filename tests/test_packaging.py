"""What `pip install keras-caps` installs: the keras_caps packages only (no top-level train,
tflite or benchmarks, which clash with other packages: `tflite` is on PyPI), its data, and
console scripts that resolve."""

import fnmatch
import glob
import importlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import setuptools

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs Python 3.11+ "
                                                  "(tomllib) or tomli")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _packages():
    """The packages setuptools puts in the wheel, from pyproject's [tool.setuptools.packages]."""
    find = _pyproject()["tool"]["setuptools"]["packages"]["find"]
    finder = (setuptools.find_namespace_packages if find.get("namespaces", True)
              else setuptools.find_packages)
    return finder(where=ROOT, include=find.get("include", ("*",)),
                  exclude=find.get("exclude", ()))


def test_the_wheel_claims_no_top_level_name_but_keras_caps():
    packages = _packages()
    assert {p.split(".")[0] for p in packages} == {"keras_caps"}, packages
    assert {"keras_caps.lite", "keras_caps.runs", "keras_caps.pretrained_models"} <= set(packages)
    # every folder of the library with Python files is a package of the wheel
    folders = {os.path.relpath(os.path.dirname(p), ROOT).replace(os.sep, ".")
               for p in glob.glob(os.path.join(ROOT, "keras_caps", "**", "*.py"), recursive=True)}
    assert folders <= set(packages), folders - set(packages)


def test_package_data_and_console_scripts():
    config = _pyproject()
    data = config["tool"]["setuptools"]["package-data"]["keras_caps.pretrained_models"]
    shipped = os.listdir(os.path.join(ROOT, "keras_caps", "pretrained_models"))
    for pattern in data:
        assert fnmatch.filter(shipped, pattern), pattern
    scripts = config["project"]["scripts"]
    assert {"keras-caps-train", "keras-caps-pipeline", "keras-caps-export"} <= set(scripts)
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert module.split(".")[0] == "keras_caps", name
        assert callable(getattr(importlib.import_module(module), function)), name


def _pip(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_built_wheel_installs_beside_the_pypi_tflite_package(tmp_path):
    """Builds the wheel from a copy of the checkout, installs it and PyPI's `tflite` into one
    folder, and imports both there (needs the package registry; skipped without it)."""
    probe = _pip("download", "--quiet", "--no-deps", "--dest", str(tmp_path / "dl"), "tflite",
                 timeout=300)
    if probe.returncode != 0:
        pytest.skip("the package registry is not reachable (pip download tflite failed: "
                    f"{(probe.stderr.strip().splitlines() or ['?'])[-1]})")
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "results", "*.egg-info", "build")
    for name in ("keras_caps", "train", "tflite", "benchmarks"):
        shutil.copytree(os.path.join(ROOT, name), src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    built = _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path / "wheel"),
                 str(src))
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = glob.glob(str(tmp_path / "wheel" / "keras_caps-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/")[0] for name in archive.namelist()}
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        assert "keras-caps-export = keras_caps.lite.cli:export_cli" in archive.read(
            entry_points).decode()
    assert {t for t in top if not t.endswith((".dist-info", ".data"))} == {"keras_caps"}, top
    site = tmp_path / "site"
    installed = _pip("install", "--quiet", "--no-deps", "--target", str(site), wheel,
                     *glob.glob(str(tmp_path / "dl" / "*")))
    assert installed.returncode == 0, installed.stderr[-3000:]
    script = ("import json, tflite, keras_caps.lite.audit, keras_caps.lite.export as e\n"
              "print(json.dumps({'tflite': tflite.__file__, 'model': hasattr(tflite, 'Model'),"
              " 'lite': e.__file__}))\n")
    env = dict(os.environ, PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    paths = json.loads(out.stdout.strip().splitlines()[-1])
    assert paths["tflite"].startswith(str(site / "tflite")) and paths["model"]
    assert paths["lite"].startswith(str(site / "keras_caps" / "lite"))
