"""The quantization spec: per-layer bit-widths and power-of-two exponents, as validated JSON.

One spec drives simulated quantized inference (`keras_caps.quantization.simulate`), memory
accounting (`keras_caps.quantization.memory`) and the searches
(`keras_caps.quantization.progressive`). JSON layout (`SCHEMA` is the same as JSON Schema):

    {
      "format": "keras_caps.pot_spec", "version": 1,
      "rounding": "nearest",            # ROUNDING_MODES; "stochastic" rounds weights only
      "clipping": "mse",                # CLIPPING_METHODS, how missing exponents are chosen
      "percentile": 99.99,              # for clipping "percentile"
      "weight_granularity": "channel",  # GRANULARITIES, for weights of rank >= 2
      "block_size": null,               # for "block"
      "layers": {
        "<layer name>": {
          "weight_bits": 8,             # null/absent: float32 weights
          "activation_bits": 8,         # every output of the layer (the input layer too)
          "routing_bits": 8,            # DenseCapsule/ConvCapsule: u_hat, b, c, s, v
          "weight_frac_bits": {"<weight name>": 5 or [per-channel ints]},   # optional
          "activation_frac_bits": [4],                                      # optional
          "routing_frac_bits": {"votes": 3, "logits": 2, "coupling": 7, "s": 3, "v": 7}
        }
      }
    }

Exponents (the *_frac_bits entries; value = integer * 2^-frac) are optional: missing ones are
chosen by calibration with the spec's clipping method, and `simulate.complete_spec` writes them
all, so a saved spec fixes the quantized model exactly.
"""

from __future__ import annotations

import copy
import json

import keras

from keras_caps.capsule_ops import ROUTING_TENSORS
from keras_caps.errors import UserError
from keras_caps.io_utils import write_json
from keras_caps.layers import ConvCapsule, DenseCapsule
from keras_caps.models.heads import classifier
from keras_caps.quantization.pot import (
    CLIPPING_METHODS,
    FRAC_BITS_LIMIT,
    GRANULARITIES,
    MAX_BITS,
    MIN_BITS,
    ROUNDING_MODES,
    check_bits,
)

FORMAT = "keras_caps.pot_spec"
VERSION = 1
BIT_KINDS = ("weight", "activation", "routing")
LAYER_KEYS = {f"{k}_bits" for k in BIT_KINDS} | {f"{k}_frac_bits" for k in BIT_KINDS}
TOP_KEYS = {"format", "version", "rounding", "clipping", "percentile", "weight_granularity",
            "block_size", "layers", "model", "notes"}
DEFAULTS = dict(rounding="nearest", clipping="mse", percentile=99.99,
                weight_granularity="channel", block_size=None)

_BITS = {"type": ["integer", "null"], "minimum": MIN_BITS, "maximum": MAX_BITS}
_FRAC = {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}]}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "keras_caps power-of-two quantization spec",
    "type": "object",
    "required": ["format", "version", "layers"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": FORMAT},
        "version": {"const": VERSION},
        "model": {"type": "string"},
        "notes": {"type": "string"},
        "rounding": {"enum": list(ROUNDING_MODES)},
        "clipping": {"enum": list(CLIPPING_METHODS)},
        "percentile": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
        "weight_granularity": {"enum": list(GRANULARITIES)},
        "block_size": {"type": ["integer", "null"], "minimum": 1},
        "layers": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "weight_bits": _BITS,
                    "activation_bits": _BITS,
                    "routing_bits": _BITS,
                    "weight_frac_bits": {"type": "object", "additionalProperties": _FRAC},
                    "activation_frac_bits": {"type": "array", "items": {"type": "integer"}},
                    "routing_frac_bits": {
                        "type": "object",
                        "propertyNames": {"enum": list(ROUTING_TENSORS)},
                        "additionalProperties": {"type": "integer"},
                    },
                },
            },
        },
    },
}


class SpecError(UserError):
    """A quantization spec that is malformed or does not fit the model (raised by `validate`)."""


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_frac(value, where):
    ok = _is_int(value) or (isinstance(value, list) and value and all(_is_int(v) for v in value))
    if not ok:
        raise SpecError(f"{where} must be an integer or a non-empty list of integers, got {value!r}.")
    _check_frac_range(value if isinstance(value, list) else [value], where)


def _check_frac_range(values, where):
    bad = [v for v in values if abs(v) > FRAC_BITS_LIMIT]
    if bad:
        raise SpecError(
            f"{where} has exponent(s) {bad[:4]} outside [-{FRAC_BITS_LIMIT}, {FRAC_BITS_LIMIT}]: "
            "scales of 2^-f that far from 1 overflow float32 (NaN outputs). Re-create the spec "
            "with train.quantize, or delete the *_frac_bits entries to re-calibrate them."
        )


def validate(spec, model=None):
    """Checks a spec dict against the schema, and against `model`'s layers if given.

    Args:
        spec: dict, the spec (see the module docstring for its layout).
        model: optional keras_caps model whose inference model the layer names must belong
            to (and whose layers must have the weights / routing the entries quantize).
            Defaults to None.
    Returns:
        A new dict: the spec with the top-level defaults (`DEFAULTS`) filled in.
    Raises:
        SpecError: the first offending entry, named, with what to do.

    Example:

    ```python
    from keras_caps.quantization import SpecError, validate

    spec = {"format": "keras_caps.pot_spec", "version": 1,
            "layers": {"conv1": {"weight_bits": 8, "activation_bits": 8}}}
    assert validate(spec)["clipping"] == "mse"  # defaults filled in
    try:
        validate({**spec, "layers": {"conv1": {"weight_bits": 1}}})
    except SpecError as err:
        assert "weight_bits must be an integer in 2..16" in str(err)
    else:
        raise AssertionError("1 bit is invalid")
    ```
    """
    if not isinstance(spec, dict):
        raise SpecError(f"a quantization spec is a JSON object, got {type(spec).__name__}.")
    unknown = set(spec) - TOP_KEYS
    if unknown:
        raise SpecError(f"unknown spec keys {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}.")
    if spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise SpecError(
            f"not a {FORMAT} version {VERSION} file (format={spec.get('format')!r}, "
            f"version={spec.get('version')!r}); write it with keras_caps.quantization."
        )
    out = {**DEFAULTS, **copy.deepcopy(spec)}
    choices = dict(rounding=ROUNDING_MODES, clipping=CLIPPING_METHODS,
                   weight_granularity=GRANULARITIES)
    for key, allowed in choices.items():
        if out[key] not in allowed:
            raise SpecError(f"spec {key} {out[key]!r} is not one of {list(allowed)}.")
    if not 0 < float(out["percentile"]) <= 100:
        raise SpecError(f"spec percentile must be in (0, 100], got {out['percentile']!r}.")
    if out["weight_granularity"] == "block" and not (
        _is_int(out["block_size"]) and out["block_size"] >= 1
    ):
        raise SpecError(
            "weight_granularity 'block' needs an integer block_size >= 1, "
            f"got {out['block_size']!r}."
        )
    layers = out.get("layers")
    if not isinstance(layers, dict):
        raise SpecError("spec 'layers' must be an object {layer name: {...}}.")
    names = None if model is None else layer_capabilities(model)
    for name, entry in layers.items():
        where = f"layer {name!r}"
        if names is not None and name not in names:
            raise SpecError(
                f"{where} is not a layer of model {model.name!r}; its layers are {sorted(names)}."
            )
        if not isinstance(entry, dict):
            raise SpecError(f"{where}: expected an object of bit-widths, got {entry!r}.")
        bad = set(entry) - LAYER_KEYS
        if bad:
            raise SpecError(f"{where}: unknown keys {sorted(bad)}; allowed: {sorted(LAYER_KEYS)}.")
        for kind in BIT_KINDS:
            bits = entry.get(f"{kind}_bits")
            if bits is not None:
                try:
                    check_bits(bits, f"{where} {kind}_bits")
                except ValueError as err:
                    raise SpecError(str(err)) from None
        if names is not None:
            caps = names[name]
            if entry.get("weight_bits") is not None and not caps["weights"]:
                raise SpecError(f"{where} has no quantizable weights; remove its weight_bits.")
            if entry.get("routing_bits") is not None and not caps["routing"]:
                raise SpecError(
                    f"{where} does no dynamic routing; routing_bits apply to DenseCapsule and "
                    "ConvCapsule layers only."
                )
        for w, value in (entry.get("weight_frac_bits") or {}).items():
            _check_frac(value, f"{where} weight_frac_bits[{w!r}]")
        act = entry.get("activation_frac_bits")
        if act is not None:
            if not isinstance(act, list) or not all(_is_int(v) for v in act):
                raise SpecError(f"{where} activation_frac_bits must be a list of integers.")
            _check_frac_range(act, f"{where} activation_frac_bits")
        for kind, value in (entry.get("routing_frac_bits") or {}).items():
            if kind not in ROUTING_TENSORS or not _is_int(value):
                raise SpecError(
                    f"{where} routing_frac_bits[{kind!r}]={value!r}: keys are "
                    f"{list(ROUTING_TENSORS)} with integer values."
                )
            _check_frac_range([value], f"{where} routing_frac_bits[{kind!r}]")
    return out


ROUTING_LAYERS = (DenseCapsule, ConvCapsule)
FLOAT_WEIGHT_LAYERS = (keras.layers.BatchNormalization,)


def inference_model(model):
    """The model whose outputs are evaluated and quantized.

    Args:
        model: a keras_caps model, or any Keras model.
    Returns:
        The classifier view of a capsnet / deep_capsnet (image -> lengths (B, J)), or `model`
        itself when it has no "length" layer.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization.spec import inference_model

    model = mcu_capsnet("S", decoder="reduced")  # {"image", "label"} -> {...}
    assert inference_model(model).output.shape == (None, 10)  # image -> lengths (B, J)
    ```
    """
    names = {layer.name for layer in model.layers}
    return classifier(model) if "length" in names else model


def layer_capabilities(model):
    """What each layer of the inference model can quantize, input layers included.

    Args:
        model: a keras_caps model.
    Returns:
        {layer name: {"weights": has quantizable weights (not BatchNormalization),
        "routing": does dynamic routing}}; every layer has activations (an input layer's
        "activation" is the input).

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization.spec import layer_capabilities

    caps = layer_capabilities(mcu_capsnet("S"))
    assert caps["conv1"] == {"weights": True, "routing": False}
    assert caps["bn1"]["weights"] is False  # BatchNorm stays float
    assert caps["class_caps"] == {"weights": True, "routing": True}
    ```
    """
    out = {}
    for layer in inference_model(model).layers:
        out[layer.name] = {
            "weights": bool(layer.weights) and not isinstance(layer, FLOAT_WEIGHT_LAYERS),
            "routing": isinstance(layer, ROUTING_LAYERS),
        }
    return out


def uniform_spec(model, bits, weight_bits=None, activation_bits=None, routing_bits=None,
                 **options):
    """A spec giving every layer of `model` the same bit-width (per kind, if given).

    Args:
        model: a keras_caps model.
        bits: int in 2..16, the bit-width of every kind not given below.
        weight_bits: optional int, the bits of every weight (default `bits`).
        activation_bits: optional int, the bits of every activation (default `bits`).
        routing_bits: optional int, the bits of every routing tensor (default `bits`).
        **options: top-level spec entries (`rounding`, `clipping`, `percentile`,
            `weight_granularity`, `block_size`, `notes`, `model`).
    Returns:
        The validated spec dict, without exponents (calibrate them with
        `simulate.complete_spec`).
    Raises:
        SpecError: invalid bits or options.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization import uniform_spec

    spec = uniform_spec(mcu_capsnet("S"), 8, routing_bits=16, clipping="maxabs")
    assert spec["layers"]["class_caps"] == {
        "activation_bits": 8, "weight_bits": 8, "routing_bits": 16}
    assert spec["layers"]["image"] == {"activation_bits": 8}
    ```
    """
    bits = {"weight": weight_bits or bits, "activation": activation_bits or bits,
            "routing": routing_bits or bits}
    layers = {}
    for name, caps in layer_capabilities(model).items():
        entry = {"activation_bits": check_bits(bits["activation"])}
        if caps["weights"]:
            entry["weight_bits"] = check_bits(bits["weight"])
        if caps["routing"]:
            entry["routing_bits"] = check_bits(bits["routing"])
        layers[name] = entry
    spec = {"format": FORMAT, "version": VERSION, **DEFAULTS, **options, "layers": layers}
    return validate(spec, model)


def with_bits(spec, layer, kind, bits):
    """A copy of `spec` with one entry's bits set and its exponents for that kind dropped.

    Args:
        spec: dict, the spec.
        layer: str, the layer name.
        kind: "weight", "activation" or "routing".
        bits: int in 2..16.
    Returns:
        A new spec dict (`spec` is unchanged).

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization.spec import uniform_spec, with_bits

    spec = uniform_spec(mcu_capsnet("S"), 8)
    lower = with_bits(spec, "class_caps", "weight", 4)
    assert lower["layers"]["class_caps"]["weight_bits"] == 4
    assert spec["layers"]["class_caps"]["weight_bits"] == 8
    ```
    """
    out = copy.deepcopy(spec)
    entry = out["layers"][layer]
    entry[f"{kind}_bits"] = check_bits(bits)
    entry.pop(f"{kind}_frac_bits", None)
    return out


def strip_exponents(spec):
    """A copy of `spec` without the *_frac_bits entries (to be re-calibrated).

    Args:
        spec: dict, the spec.
    Returns:
        A new spec dict with the bit-widths only.

    Example:

    ```python
    from keras_caps.quantization.spec import strip_exponents

    spec = {"layers": {"conv1": {"weight_bits": 8, "weight_frac_bits": {"kernel": 6}}}}
    assert strip_exponents(spec) == {"layers": {"conv1": {"weight_bits": 8}}}
    ```
    """
    out = copy.deepcopy(spec)
    for entry in out["layers"].values():
        for kind in BIT_KINDS:
            entry.pop(f"{kind}_frac_bits", None)
    return out


def load_spec(path, model=None):
    """Reads and validates a spec JSON file.

    Args:
        path: str, the JSON file.
        model: optional keras_caps model to validate against (see `validate`).
    Returns:
        The validated spec dict.
    Raises:
        SpecError: no file, invalid JSON or an invalid spec.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization import load_spec, save_spec, uniform_spec

    model = mcu_capsnet("S")
    save_spec(uniform_spec(model, 6), "spec.json")
    assert load_spec("spec.json", model)["layers"]["conv1"]["weight_bits"] == 6
    ```
    """
    try:
        with open(path) as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise SpecError(f"no quantization spec at {path!r}; write one with train.quantize.") from None
    except json.JSONDecodeError as err:
        raise SpecError(f"{path} is not valid JSON: {err}.") from None
    return validate(spec, model)


def save_spec(spec, path, model=None):
    """Validates `spec` and writes it atomically as JSON.

    Args:
        spec: dict, the spec.
        path: str, the JSON file to write.
        model: optional keras_caps model to validate against (see `validate`).
    Returns:
        `path`.
    Raises:
        SpecError: an invalid spec (nothing is written).

    Example:

    ```python
    import json
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization import save_spec, uniform_spec

    path = save_spec(uniform_spec(mcu_capsnet("S"), 8), "spec.json")
    with open(path) as f:
        assert json.load(f)["format"] == "keras_caps.pot_spec"
    ```
    """
    write_json(path, validate(spec, model))
    return path


__all__ = [
    "FLOAT_WEIGHT_LAYERS",
    "FORMAT",
    "ROUTING_LAYERS",
    "SCHEMA",
    "SpecError",
    "VERSION",
    "inference_model",
    "layer_capabilities",
    "load_spec",
    "save_spec",
    "strip_exponents",
    "uniform_spec",
    "validate",
    "with_bits",
]
