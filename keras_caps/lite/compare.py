r"""Op-by-op comparison of one .tflite model on three runtimes: where do they part?

    python -m tflite.compare MODEL.tflite [--images=20] [--dataset=fashion_mnist] [--threshold=1]

The same flatbuffer runs on
    - "litert":     LiteRT (`ai_edge_litert`) with its default (optimized) kernels, i.e.
                    the XNNPACK delegate,
    - "litert_nodelegate": LiteRT's builtin kernels without the default delegate
                    (`OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`),
    - "litert_ref": LiteRT with its reference kernels (`OpResolverType.BUILTIN_REF`),
    - "tflm":       TFLite Micro (the `tflite-micro` Python interpreter: TFLM's reference
                    kernels, the ones a microcontroller build uses without CMSIS-NN).
TFLite Micro exposes only a model's outputs, so every runtime runs a *probe* copy of the
flatbuffer whose subgraph outputs are the outputs of every op (the model is otherwise
unchanged: same tensors, quantization and kernels). For each op (index, name, output tensor)
the table shows the max |difference| in quantized steps between each pair of runtimes over
all inputs, and names the first op where two runtimes differ by more than the threshold. The
final scores are also compared on the original, unmodified flatbuffer (argmax agreement).
Exit code 1 when any difference exceeds --threshold (2 when the model cannot be read).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from keras_caps.lite.quiet import quiet_fds

RUNTIMES = ("litert", "litert_nodelegate", "litert_ref", "tflm")
#: runtime -> keras_caps.lite.evaluate.LITERT_KERNELS
_KERNELS = {"litert": "default", "litert_nodelegate": "nodelegate", "litert_ref": "ref"}
PAIRS = tuple(itertools.combinations(RUNTIMES, 2))


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def read_model(flatbuffer):
    """The flatbuffer as the schema's mutable object API (`ModelT`)."""
    schema = _schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytes(flatbuffer), 0))


def write_model(model_t):
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model_t.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_names(model_t):
    """Builtin op name of every operator of subgraph 0, in execution order."""
    schema = _schema()
    code_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for op in model_t.subgraphs[0].operators:
        code = model_t.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        names.append(code_names.get(builtin, f"OP_{builtin}"))
    return names


def probe_model(flatbuffer):
    """A copy of `flatbuffer` whose outputs are every op's outputs (then the original ones).

    Returns:
        (probe flatbuffer bytes, list of (op index, op name, tensor index, tensor name) in the
        order of the probe's outputs).
    """
    model_t = read_model(flatbuffer)
    graph = model_t.subgraphs[0]
    names = op_names(model_t)
    taps, seen = [], set()
    for index, op in enumerate(graph.operators):
        for t in op.outputs:
            if t >= 0 and t not in seen:
                seen.add(t)
                name = graph.tensors[t].name
                taps.append((index, names[index], int(t), name.decode() if isinstance(name, bytes) else name))
    graph.outputs = [t for _, _, t, _ in taps]
    model_t.signatureDefs = []  # they name the original outputs
    return write_model(model_t), taps


def _is_constant(model_t, tensor_index):
    buf = model_t.buffers[model_t.subgraphs[0].tensors[tensor_index].buffer]
    return buf is not None and buf.data is not None and len(buf.data) > 0


def single_op_model(flatbuffer, op_index, model_t=None):
    """A model of op `op_index` alone: its variable inputs become the graph inputs.

    Returns:
        (flatbuffer bytes, [tensor index of each graph input], [tensor index of each output]).
    """
    model_t = model_t or read_model(flatbuffer)
    graph = model_t.subgraphs[0]
    op = graph.operators[op_index]
    inputs = [int(t) for t in op.inputs if t >= 0 and not _is_constant(model_t, t)]
    inputs = list(dict.fromkeys(inputs))
    outputs = [int(t) for t in op.outputs]
    saved = graph.operators, graph.inputs, graph.outputs, model_t.signatureDefs
    graph.operators, graph.inputs, graph.outputs = [op], inputs, outputs
    model_t.signatureDefs = []
    try:
        return write_model(model_t), inputs, outputs
    finally:
        graph.operators, graph.inputs, graph.outputs, model_t.signatureDefs = saved


def _arena_for(flatbuffer):
    model_t = read_model(flatbuffer)
    total = 0
    for t in model_t.subgraphs[0].tensors:
        shape = [int(d) for d in (t.shape if t.shape is not None else [])]
        total += int(np.prod(shape or [1])) * 4
    return 2 * total + (1 << 20)


class _Runner:
    """One runtime over one flatbuffer: `run(x)` -> list of output arrays in subgraph order."""

    def __init__(self, kind, flatbuffer):
        self.kind = kind
        if kind == "tflm":
            from tflite_micro.python.tflite_micro import runtime

            with quiet_fds():
                self.micro = runtime.Interpreter.from_bytes(bytes(flatbuffer),
                                                            arena_size=_arena_for(flatbuffer))
            self.count = len(read_model(flatbuffer).subgraphs[0].outputs)
            return
        from keras_caps.lite.evaluate import litert_interpreter

        self.lite = litert_interpreter(flatbuffer, num_threads=1, kernels=_KERNELS[kind])
        self.inputs = self.lite.get_input_details()
        self.outputs = self.lite.get_output_details()

    def run(self, x):
        """x: the input array, or a list of arrays (one per graph input)."""
        xs = x if isinstance(x, (list, tuple)) else [x]
        if self.kind == "tflm":
            for i, xi in enumerate(xs):
                self.micro.set_input(xi, i)
            self.micro.invoke()
            return [np.array(self.micro.get_output(i)) for i in range(self.count)]
        for detail, xi in zip(self.inputs, xs):
            self.lite.set_tensor(detail["index"], xi)
        self.lite.invoke()
        return [np.array(self.lite.get_tensor(d["index"])) for d in self.outputs]


def input_detail(flatbuffer):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=bytes(flatbuffer)).get_input_details()[0]


def quantized_inputs(flatbuffer, images):
    """Images (N, H, W, C) uint8 or float in [0, 1] -> batches for the model's input."""
    from keras_caps.lite.evaluate import quantize_input

    detail = input_detail(flatbuffer)
    batch = int(detail["shape"][0])
    x = quantize_input(images, detail)
    return [x[i : i + batch] for i in range(0, len(x) - len(x) % batch, batch)]


@dataclasses.dataclass
class OpRow:
    """One op output. `diffs`: max |a - b| in quantized steps as the runtimes compute the whole
    model (differences of earlier ops propagate); `local`: the op alone, every runtime fed the
    same inputs (what the reference kernels computed for them): the op's own divergence."""

    index: int
    op: str
    tensor: str
    dtype: str
    shape: tuple
    diffs: dict  # (runtime a, runtime b) -> max |a - b|
    local: dict  # (runtime a, runtime b) -> max |a - b| with identical inputs (or {})


@dataclasses.dataclass
class Comparison:
    rows: list  # OpRow per op output, in execution order
    argmax_agreement: dict  # pair -> fraction of inputs with the same argmax (original model)
    output_diffs: dict  # pair -> max |a - b| of the final scores (original model)
    examples: int
    threshold: float
    pairs: tuple = PAIRS

    def first_divergence(self, pair=None, local=False):
        """The first row where `pair` (or any pair) differs by more than the threshold."""
        pairs = [pair] if pair else self.pairs
        for row in self.rows:
            d = row.local if local else row.diffs
            if any(d.get(p, 0.0) > self.threshold for p in pairs):
                return row
        return None

    def max_diff(self, pair=None, local=False):
        pairs = [pair] if pair else self.pairs
        return max(((row.local if local else row.diffs).get(p, 0.0)
                    for row in self.rows for p in pairs), default=0.0)

    @property
    def ok(self):
        return self.max_diff() <= self.threshold and all(
            v <= self.threshold for v in self.output_diffs.values())

    def table(self):
        """Rows as plain dicts (for JSON or tests)."""
        return [{"op": r.index, "name": r.op, "tensor": r.tensor, "dtype": r.dtype,
                 "shape": list(r.shape), **{f"{a}|{b}": r.diffs[(a, b)] for a, b in self.pairs},
                 **{f"local {a}|{b}": v for (a, b), v in r.local.items()}}
                for r in self.rows]

    def text(self, only_diverging=False):
        short = {"litert": "lite", "litert_nodelegate": "nodel", "litert_ref": "ref",
                 "tflm": "tflm"}
        names = [f"{short.get(a, a)}|{short.get(b, b)}" for a, b in self.pairs]
        local = any(r.local for r in self.rows)
        heads = ["op", "name", "output tensor", "dtype", "shape"] + names
        if local:
            heads += [f"own {n}" for n in names]
        lines = []
        for row in self.rows:
            values = [row.diffs[p] for p in self.pairs]
            if local:
                values += [row.local.get(p, 0.0) for p in self.pairs]
            if only_diverging and not any(values):
                continue
            mark = " <" if any(v > self.threshold for v in values) else ""
            lines.append([str(row.index), row.op, row.tensor[-40:], row.dtype,
                          "x".join(map(str, row.shape))] + [f"{v:g}" for v in values] + [mark])
        widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(heads)]
        fmt = "  ".join(f"{{:{'>' if i == 0 or i >= 5 else '<'}{w}}}" for i, w in enumerate(widths))
        out = [f"max |difference| in quantized steps over {self.examples} input(s) "
               "(lite = LiteRT default kernels (XNNPACK), nodel = LiteRT without the default "
               "delegate, ref = LiteRT reference kernels, tflm = TFLite Micro)",
               "columns a|b: the whole model on each runtime; 'own a|b': the op alone, fed the "
               "same inputs (its own divergence)",
               f"'<' marks a difference above the threshold {self.threshold:g}"
               + ("; ops where all runtimes agree exactly are not listed" if only_diverging else ""),
               fmt.format(*heads), fmt.format(*["-" * w for w in widths])]
        out += [fmt.format(*line[:-1]) + line[-1] for line in lines]
        out.append("")
        for p in self.pairs:
            first = self.first_divergence(p)
            where = (f"first parts at op {first.index} {first.op} ({first.tensor[-40:]}): "
                     f"{first.diffs[p]:g} steps" if first else "agree within the threshold")
            out.append(f"{p[0]:>17} vs {p[1]:<17} argmax agreement {self.argmax_agreement[p]:.4f}, "
                       f"output max diff {self.output_diffs[p]:g}, per-op max "
                       f"{self.max_diff(p):g}; {where}")
        out.append("OK" if self.ok else f"FAILED: differences above {self.threshold:g} step(s)")
        return "\n".join(out)


def compare(flatbuffer, images, threshold=1.0, runtimes=RUNTIMES, local=True):
    """Runs `images` through every runtime, op by op; returns a `Comparison`.

    Args:
        flatbuffer: the .tflite bytes.
        images: (N, H, W, C) uint8 or float in [0, 1]; quantized to the model's input.
        threshold: largest acceptable difference in quantized steps.
        runtimes: a subset of RUNTIMES.
        local: also run every op alone on identical inputs (the 'own' columns).
    """
    runtimes = tuple(runtimes)
    probe, taps = probe_model(flatbuffer)
    batches = quantized_inputs(flatbuffer, images)
    probe_runners = {k: _Runner(k, probe) for k in runtimes}
    final_runners = {k: _Runner(k, flatbuffer) for k in runtimes}
    pairs = tuple(itertools.combinations(runtimes, 2))
    diffs = [{p: 0.0 for p in pairs} for _ in taps]
    local_diffs = [{p: 0.0 for p in pairs} if local else {} for _ in taps]
    meta = [None] * len(taps)
    agree = {p: 0 for p in pairs}
    out_diffs = {p: 0.0 for p in pairs}
    model_t = read_model(flatbuffer)
    graph_input = int(model_t.subgraphs[0].inputs[0])
    singles = {}
    if local:
        for op_index in sorted({t[0] for t in taps}):
            single, ins, outs = single_op_model(flatbuffer, op_index, model_t)
            singles[op_index] = ({k: _Runner(k, single) for k in runtimes}, ins, outs)
    tap_of = {(op_i, t): i for i, (op_i, _, t, _) in enumerate(taps)}
    feed = "litert_ref" if "litert_ref" in runtimes else runtimes[0]

    def update(store, i, values):
        for a, b in pairs:
            d = np.abs(values[a].astype(np.float64) - values[b].astype(np.float64))
            store[i][(a, b)] = max(store[i][(a, b)], float(d.max()) if d.size else 0.0)

    n = 0
    for x in batches:
        outs = {k: r.run(x) for k, r in probe_runners.items()}
        for i in range(len(taps)):
            meta[i] = (outs[runtimes[0]][i].dtype.name, tuple(outs[runtimes[0]][i].shape))
            update(diffs, i, {k: outs[k][i] for k in runtimes})
        if local:
            values = {graph_input: x}
            values.update({t: outs[feed][i] for i, (_, _, t, _) in enumerate(taps)})
            for op_index, (runners, ins, op_outs) in singles.items():
                feeds = [values[t] for t in ins]
                res = {k: r.run(feeds) for k, r in runners.items()}
                for j, t in enumerate(op_outs):
                    if (op_index, t) in tap_of:
                        update(local_diffs, tap_of[(op_index, t)], {k: res[k][j] for k in runtimes})
        finals = {k: r.run(x)[0] for k, r in final_runners.items()}
        for a, b in pairs:
            agree[(a, b)] += int(np.sum(np.argmax(finals[a], -1) == np.argmax(finals[b], -1)))
            d = np.abs(finals[a].astype(np.float64) - finals[b].astype(np.float64)).max()
            out_diffs[(a, b)] = max(out_diffs[(a, b)], float(d))
        n += len(x)
    rows = [OpRow(op_i, name, tname, *(meta[i] or ("?", ())), diffs[i], local_diffs[i])
            for i, (op_i, name, _, tname) in enumerate(taps)]
    return Comparison(rows, {p: agree[p] / max(n, 1) for p in pairs}, out_diffs, n,
                      float(threshold), pairs)


__all__ = ["PAIRS", "RUNTIMES", "Comparison", "OpRow", "compare", "op_names", "probe_model",
           "quiet_fds", "read_model", "write_model"]
