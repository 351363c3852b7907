"""The public API documents itself: every argument in an `Args:` section, and an `Example:` that runs.

Covers the public objects (the `__all__` functions and classes a module defines) of
keras_caps.models, keras_caps.layers, keras_caps.pruning, keras_caps.quantization,
keras_caps.capsule_ops and keras_caps.losses, and the examples of those modules'
own docstrings. Conventions (keras-hub): `Args:` lists each parameter as `name: ...` (several
may share one entry, `a, b: ...`; `**kwargs` included), layers list their call() parameters
under `Call arguments:`, dataclasses their fields under `Attributes:`, and `Example:` holds
```python fenced blocks (doctest `>>>` lines work too). Each block runs on its own, in a fresh
namespace, in an empty working directory, on tiny inputs; an example that raises (or whose
asserts fail) fails here.
"""

import doctest
import importlib
import inspect
import re

import pytest

MODULES = [
    "keras_caps.models.baseline",
    "keras_caps.models.capsnet",
    "keras_caps.models.compat",
    "keras_caps.models.compiling",
    "keras_caps.models.deep_capsnet",
    "keras_caps.models.heads",
    "keras_caps.models.mcu_capsnet",
    "keras_caps.models.reference",
    "keras_caps.layers.conv_capsule",
    "keras_caps.layers.decoder",
    "keras_caps.layers.dense_capsule",
    "keras_caps.layers.masking",
    "keras_caps.layers.primary_capsule",
    "keras_caps.pruning.ccm",
    "keras_caps.pruning.chip",
    "keras_caps.pruning.magnitude",
    "keras_caps.pruning.selection",
    "keras_caps.pruning.surgery",
    "keras_caps.quantization.pot",
    "keras_caps.quantization.progressive",
    "keras_caps.quantization.spec",
    "keras_caps.quantization.simulate",
    "keras_caps.quantization.memory",
    "keras_caps.quantization.report",
    "keras_caps.quantization.qat",
    "keras_caps.capsule_ops",
    "keras_caps.losses",
]

#: Methods a Keras layer / loss / callback overrides: documented by Keras itself.
KERAS_OVERRIDES = {"build", "call", "compute_output_shape", "get_config", "from_config"}

SECTION = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
ENTRY = re.compile(r"^(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*:")
FENCED = re.compile(r"```python\n(.*?)```", re.S)


def public_objects():
    """[(qualified name, object)] of the functions and classes each module defines in __all__."""
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n in vars(module) if not n.startswith("_")]
        for attr in names:
            obj = getattr(module, attr)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == name:
                found.append((f"{name}.{attr}", obj))
    return found


def sections(doc):
    """{section title: its lines (dedented to the section's entries)} of a Google docstring."""
    out, title, lines = {}, None, []
    for line in (doc or "").splitlines():
        match = SECTION.match(line)
        if match and not line.startswith(" "):
            if title is not None:
                out[title] = lines
            title, lines = match.group(1), []
        elif title is not None:
            if line and not line.startswith(" ") and not line.startswith("```") and (
                title not in ("Example", "Examples")
            ):
                out[title], title, lines = lines, None, []  # prose after the section
            else:
                lines.append(line)
    if title is not None:
        out[title] = lines
    return out


def documented_names(lines):
    """Parameter names of the entries of an Args-like section (first indentation level)."""
    names = set()
    for line in lines:
        if line.startswith("    ") and not line.startswith("     "):
            match = ENTRY.match(line.strip())
            if match:
                names.update(n.strip().lstrip("*") for n in match.group(1).split(","))
    return names


def parameters(func, skip_first=False):
    params = list(inspect.signature(func).parameters.values())
    if skip_first:
        params = params[1:]
    return [p.name for p in params]


def example_blocks(doc):
    """The code blocks of the Example(s) section: ("python", code) or ("doctest", text)."""
    secs = sections(doc)
    text = "\n".join(secs.get("Example", []) + secs.get("Examples", []))
    blocks = [("python", code) for code in FENCED.findall(text)]
    if ">>>" in text and not blocks:
        blocks.append(("doctest", inspect.cleandoc(text)))
    return blocks


def _is_exception(obj):
    return inspect.isclass(obj) and issubclass(obj, BaseException)


def _is_dataclass(obj):
    return inspect.isclass(obj) and hasattr(obj, "__dataclass_fields__")


OBJECTS = public_objects()
EXAMPLES = [
    pytest.param(kind, code, id=f"{name}[{i}]")
    for name, doc in [(n, inspect.getdoc(o)) for n, o in OBJECTS]
    + [(m, importlib.import_module(m).__doc__) for m in MODULES]
    for i, (kind, code) in enumerate(example_blocks(doc))
]


def test_the_modules_have_public_objects():
    assert len(OBJECTS) > 100  # the collection itself works


@pytest.mark.parametrize("name,obj", OBJECTS, ids=[n for n, _ in OBJECTS])
def test_public_object_documents_every_argument_and_has_an_example(name, obj):
    doc = inspect.getdoc(obj)
    assert doc, f"{name} has no docstring"
    if _is_exception(obj):
        return  # an error type: a docstring saying when it is raised
    secs = sections(doc)
    problems = []
    if _is_dataclass(obj):
        missing = set(parameters(obj)) - documented_names(secs.get("Attributes", []))
        if missing:
            problems.append(f"Attributes: misses {sorted(missing)}")
    else:
        params = parameters(obj)
        missing = set(params) - documented_names(secs.get("Args", []))
        if params and missing:
            problems.append(f"Args: misses {sorted(missing)}")
    if inspect.isclass(obj) and issubclass(obj, _keras_layer()):
        missing = set(parameters(obj.call, skip_first=True)) - documented_names(
            secs.get("Call arguments", []))
        if missing:
            problems.append(f"Call arguments: misses {sorted(missing)}")
    if not example_blocks(doc):
        problems.append("no Example: section with a ```python block")
    assert not problems, f"{name}: " + "; ".join(problems)


def _keras_layer():
    import keras

    return keras.layers.Layer


def _public_methods():
    out = []
    for name, obj in OBJECTS:
        if not inspect.isclass(obj) or _is_exception(obj):
            continue
        for attr, member in vars(obj).items():
            if attr.startswith("_") or attr in KERAS_OVERRIDES or attr.startswith("on_"):
                continue
            if inspect.isfunction(member):
                out.append((f"{name}.{attr}", member))
    return out


METHODS = _public_methods()


@pytest.mark.parametrize("name,method", METHODS, ids=[n for n, _ in METHODS])
def test_public_method_documents_its_arguments(name, method):
    doc = inspect.getdoc(method)
    assert doc, f"{name} has no docstring"
    params = parameters(method, skip_first=True)
    missing = set(params) - documented_names(sections(doc).get("Args", []))
    assert not (params and missing), f"{name}: Args: misses {sorted(missing)}"


@pytest.fixture
def eager_functions():
    """tf.functions (fit, predict) run eagerly: the same values without tracing a graph per
    model, which makes the many one-batch evaluations of the examples ~5x faster."""
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run_functions")
@pytest.mark.parametrize("kind,code", EXAMPLES)
def test_example_runs(kind, code, tmp_path, monkeypatch, eager_functions):
    monkeypatch.chdir(tmp_path)  # examples may write files ("spec.json", a model folder)
    if kind == "python":
        exec(compile(code, "<example>", "exec"), {"__name__": "__example__"})
        return
    test = doctest.DocTestParser().get_doctest(code, {}, "example", "<example>", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{runner.failures} doctest line(s) failed (output above)"
