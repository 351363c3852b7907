"""The import graph of keras_caps: imports run one way, without cycles, never into the binaries.

Every module of keras_caps is parsed with `ast` (imports inside functions count: they run as
soon as the function does). The layers, lowest first, are LAYERS below; a module may import
its own layer and the layers below it, never a layer above. Inside the "fit" layer the
packages training, pruning, quantization and analysis are peers that do not import each
other: what two of them share lives in a lower layer (e.g. `models.weight_transfer`,
`data.image_batches`, `io_utils.markdown_table`).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "keras_caps"

#: The layers of keras_caps, lowest first: (name, module prefixes, peers_independent). A module
#: belongs to the layer of its longest matching prefix (the prefix itself or a module below
#: it); with peers_independent, the prefixes of that layer must not import each other.
LAYERS = [
    # keras_caps.cli: run_main / guarded, the user-error guard of every command line (it
    # imports only errors), used by lite and runs alike
    ("base", ["keras_caps.errors", "keras_caps.io_utils", "keras_caps.plots", "keras_caps.cli",
              "keras_caps.quiet"],
     False),
    ("data", ["keras_caps.validation", "keras_caps.data", "keras_caps.data_sources"], False),
    ("layers", ["keras_caps.capsule_ops", "keras_caps.layers", "keras_caps.losses",
                "keras_caps.schedules"], False),
    ("models", ["keras_caps.models", "keras_caps.pretrained_models"], False),
    ("fit", ["keras_caps.training", "keras_caps.pruning", "keras_caps.quantization",
             "keras_caps.analysis"], True),
    ("lite", ["keras_caps.lite"], False),
    ("runs", ["keras_caps.runs"], False),
]
#: keras_caps/__init__.py imports capsule_ops, layers, losses, models and schedules (it
#: registers every serializable object), so importing the package itself is a "models" import.
ROOT_LAYER = "models"
#: Top-level packages of this repository that keras_caps must never import.
BINARIES = ("train", "tflite", "benchmarks", "tests")
#: Known back edges, each with the reason it is still there. The test fails when one is gone
#: (remove it here then) as well as on any edge not listed.
ALLOWED_BACK_EDGES = {}


def _modules():
    """{module name: path} of every .py file under keras_caps/."""
    found = {}
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name):
    """The deepest keras_caps module that `name` (a dotted import target) lies in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module, path):
    """[(line, imported name)] of every import in `module`, at any depth of the code."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            submodules = [f"{source}.{a.name}" for a in node.names
                          if f"{source}.{a.name}" in MODULES]
            found += [(node.lineno, name) for name in submodules]
            if len(submodules) < len(node.names):  # names defined in `source` itself
                found.append((node.lineno, source))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def _graph():
    """{module: {imported keras_caps module: first line}} and [(module, line, binary)]."""
    edges, binaries = {}, []
    for module, path in MODULES.items():
        for line, name in _imports(module, path):
            top = name.split(".")[0]
            if top in BINARIES:
                binaries.append((module, line, name))
            elif top == PACKAGE:
                target = _resolve(name)
                if target != module:
                    edges.setdefault(module, {}).setdefault(target, line)
    return edges, binaries


EDGES, BINARY_IMPORTS = _graph()


def _unit(module):
    """(layer index, prefix) of `module`, or None when no layer lists it."""
    if module == PACKAGE:
        return [name for name, _, _ in LAYERS].index(ROOT_LAYER), PACKAGE
    best = None
    for index, (_, prefixes, _) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                    best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    return best


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if _unit(m) is None)
    assert not missing, (f"modules in no layer of tests/test_import_graph.py LAYERS: {missing}; "
                         "add each to the layer it belongs to")


def test_keras_caps_never_imports_the_binaries():
    lines = [f"{MODULES[m].relative_to(REPO)}:{line} imports {name}"
             for m, line, name in BINARY_IMPORTS]
    assert not lines, ("keras_caps must not import the binaries (train, tflite, benchmarks, "
                       "tests):\n" + "\n".join(lines))


def _back_edges():
    found = {}
    for module, targets in EDGES.items():
        if module == PACKAGE:
            continue  # the package's own __init__: checked by ROOT_LAYER's definition
        source = _unit(module)
        for target, line in targets.items():
            dest = _unit(target)
            if source is None or dest is None:
                continue  # reported by test_every_module_has_a_layer
            (layer, prefix), (target_layer, target_prefix) = source, dest
            name, target_name = LAYERS[layer][0], LAYERS[target_layer][0]
            if target_layer > layer:
                why = f"layer {name!r} imports the higher layer {target_name!r}"
            elif target_layer == layer and LAYERS[layer][2] and prefix != target_prefix:
                why = f"{prefix} imports its peer {target_prefix} (layer {name!r})"
            else:
                continue
            found[(module, target)] = f"{MODULES[module].relative_to(REPO)}:{line} imports {target}: {why}"
    return found


def test_imports_run_one_way():
    found = _back_edges()
    unexpected = [text for edge, text in sorted(found.items()) if edge not in ALLOWED_BACK_EDGES]
    assert not unexpected, ("imports against the layer order (LAYERS in "
                            "tests/test_import_graph.py):\n" + "\n".join(unexpected))
    stale = sorted(set(ALLOWED_BACK_EDGES) - set(found))
    assert not stale, f"ALLOWED_BACK_EDGES lists edges that no longer exist: {stale}"


def test_root_layer_covers_what_the_package_imports():
    root = [name for name, _, _ in LAYERS].index(ROOT_LAYER)
    above = sorted(t for t in EDGES.get(PACKAGE, {}) if _unit(t) and _unit(t)[0] > root)
    assert not above, f"keras_caps/__init__.py imports {above}, above ROOT_LAYER {ROOT_LAYER!r}"


def _cycle():
    """One import cycle [m0, m1, ..., m0] between keras_caps modules, or None."""
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(EDGES.get(module, {})):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(MODULES):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = _cycle()
    if cycle:
        steps = [f"{a} (line {EDGES[a][b]}) -> {b}" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle between keras_caps modules:\n" + "\n".join(steps))


def test_the_checks_see_function_level_and_relative_imports(tmp_path):
    """The parser finds imports inside functions, relative imports and import_module calls."""
    module = "keras_caps.analysis.flops"
    path = tmp_path / "probe.py"
    path.write_text("import os\n\ndef f():\n    from keras_caps.training import loop\n"
                    "    from ..data import images\n    from . import activations\n"
                    "    import importlib\n    importlib.import_module('train.prune')\n")
    names = [name for _, name in _imports(module, path)]
    assert names == ["os", "keras_caps.training.loop", "keras_caps.data.images",
                     "keras_caps.analysis.activations", "importlib", "train.prune"]
