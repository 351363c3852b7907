"""Reference models shipped with the package: load with one call, safe_mode on.

Each reference model is a folder of files in `keras_caps/pretrained_models/`:
    <name>.keras          the trained model (no optimizer state), loadable with safe_mode
    <name>_int8.tflite    its int8 TFLite export (what a microcontroller runs), if any
    <name>.json           the model card: data, recipe, the command that reproduces it,
                          float / int8 LiteRT / int8 TFLite Micro test accuracy, bytes, arena

Example:

```python
from keras_caps.models import pretrained, pretrained_card

model = pretrained("fashion_mnist_mcu_s")  # a keras.Model
card = pretrained_card("fashion_mnist_mcu_s")
print(card["accuracy"]["int8_tflm"])  # test accuracy on TFLite Micro
```
"""

from __future__ import annotations

import json
import os

import importlib_resources

_PACKAGE = "keras_caps.pretrained_models"


def _folder():
    return importlib_resources.files(_PACKAGE)


def available():
    """Names of the shipped reference models (those with a model card).

    Returns:
        Sorted list of str.

    Example:

    ```python
    from keras_caps.models.reference import available

    assert "fashion_mnist_mcu_s" in available()
    ```
    """
    return sorted(p.name[: -len(".json")] for p in _folder().iterdir()
                  if p.name.endswith(".json"))


def _path(name, suffix):
    names = available()
    if name not in names:
        raise ValueError(f"no reference model {name!r}; shipped models: {names}.")
    path = _folder() / f"{name}{suffix}"
    if not path.is_file():
        raise FileNotFoundError(
            f"reference model {name!r} is missing its file {path.name}: the installation is "
            "incomplete; reinstall keras-caps."
        )
    return path


def pretrained_card(name):
    """The model card of reference model `name` (see the module docstring).

    Args:
        name: str, one of `available()`.
    Returns:
        dict: "dataset", "recipe", "command" (that reproduces it), "accuracy" ({"float",
        "int8_litert", "int8_tflm"} on the test split), "params", "int8_bytes",
        "arena_bytes", ...
    Raises:
        ValueError: no reference model of that name.

    Example:

    ```python
    from keras_caps.models import pretrained_card

    card = pretrained_card("fashion_mnist_mcu_s")
    assert card["dataset"] == "fashion_mnist"
    assert set(card["accuracy"]) >= {"float", "int8_litert", "int8_tflm"}
    ```
    """
    return json.loads(_path(name, ".json").read_text())


def pretrained(name, compile=False):
    """Loads reference model `name` (a `keras.Model`) with `safe_mode=True`.

    Args:
        name: str, one of `available()`, e.g. "fashion_mnist_mcu_s".
        compile: bool, also compile it with the margin loss (for `evaluate` / fine-tuning).
            Defaults to False.
    Returns:
        The model (no optimizer state), with the inputs and outputs of its builder.
    Raises:
        ValueError: no reference model of that name.
        FileNotFoundError: the installation lacks the model file.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import pretrained

    model = pretrained("fashion_mnist_mcu_s")  # mcu_capsnet("S") trained on Fashion-MNIST
    images = np.zeros((2, 28, 28, 1), "float32")  # (B, H, W, C), pixels in [0, 1]
    assert model.predict(images, verbose=0)["lengths"].shape == (2, 10)  # (B, J)
    ```
    """
    import keras  # the layers are registered: importing any keras_caps module ran keras_caps/__init__

    with importlib_resources.as_file(_path(name, ".keras")) as path:
        model = keras.saving.load_model(os.fspath(path), compile=False, safe_mode=True)
    if compile:
        from keras_caps.models.compiling import compile_capsnet

        compile_capsnet(model)
    return model


def model_file(name):
    """The path of reference model `name`'s .keras file (e.g. to copy it or to give it as a
    teacher: `python -m train.pipeline --teacher_model=pretrained:NAME`).

    Args:
        name: str, one of `available()`.
    Returns:
        pathlib.Path of the shipped file (inside the installed package).
    Raises:
        ValueError: no reference model of that name.

    Example:

    ```python
    from keras_caps.models.reference import model_file

    assert model_file("fashion_mnist_mcu_s").name == "fashion_mnist_mcu_s.keras"
    ```
    """
    return _path(name, ".keras")


def pretrained_tflite(name):
    """The int8 TFLite flatbuffer of reference model `name`.

    Args:
        name: str, one of `available()`.
    Returns:
        bytes, the flatbuffer (run it with `ai_edge_litert` or TFLite Micro).
    Raises:
        ValueError: no reference model of that name.
        FileNotFoundError: the model ships without an int8 flatbuffer.

    Example:

    ```python
    from keras_caps.models import pretrained_card, pretrained_tflite

    flatbuffer = pretrained_tflite("fashion_mnist_mcu_s")
    assert len(flatbuffer) == pretrained_card("fashion_mnist_mcu_s")["int8_bytes"]
    ```
    """
    return _path(name, "_int8.tflite").read_bytes()


def write_reference(model, name, card, int8_flatbuffer=None, folder=None):
    """Writes a reference model's files: the model without optimizer state, its card and its
    int8 flatbuffer.

    Args:
        model: the trained `keras.Model`.
        name: str, the reference name (the file stem).
        card: dict, the model card (see the module docstring), written as `<name>.json`.
        int8_flatbuffer: optional bytes, written as `<name>_int8.tflite`.
        folder: str, where to write. Defaults to the package's pretrained_models/ (where
            `pretrained` looks).

    Example:

    ```python
    import os
    from keras_caps.models import mcu_capsnet
    from keras_caps.models.reference import write_reference

    write_reference(mcu_capsnet("S"), "my_model", {"dataset": "none"}, folder="references")
    assert sorted(os.listdir("references")) == ["my_model.json", "my_model.keras"]
    ```
    """
    import keras

    from keras_caps.io_utils import save_model, write_bytes, write_json

    folder = folder or os.fspath(_folder())
    bare = keras.models.clone_model(model)  # uncompiled: no optimizer state in the file
    bare.set_weights(model.get_weights())
    save_model(bare, os.path.join(folder, f"{name}.keras"))
    if int8_flatbuffer is not None:
        write_bytes(os.path.join(folder, f"{name}_int8.tflite"), int8_flatbuffer)
    write_json(os.path.join(folder, f"{name}.json"), card)


__all__ = ["available", "pretrained", "pretrained_card", "pretrained_tflite", "write_reference"]
