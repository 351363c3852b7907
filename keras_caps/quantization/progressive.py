"""Progressive bit-width assignment (after Q-CapsNets and Raji et al. 2025, paper 004).

Three searches, each returning a `SearchResult` (a complete spec, its accuracy on the
evaluation split, its memory reduction, and the trace of every evaluated candidate). The
accuracy constraint is always `accuracy >= float_accuracy - tolerance` on the evaluation data
held by the `Evaluator` (tolerance as a fraction: 0.001 is 0.1 accuracy points).

A  `uniform_search`: one bit-width for all weights, activations and routing tensors, the
   smallest that meets the tolerance. Bisection over [min_bits, max_bits]; accuracy is
   assumed to grow with the bit-width (checked at max_bits, and the answer is an evaluated
   spec, so the result always meets the tolerance when `meets_tolerance` is True).
B  `layerwise_search`: activations and routing at A's bit-width; weights layer-wise with
   fewer bits in deeper layers, bits_l = max(min_bits, b0 - round(step * l)) for the l-th
   weight layer from the input, under a weight memory budget (float32 weight memory /
   `weight_reduction`). Candidates that fit the budget are evaluated from the most to the
   least memory; the first within tolerance wins.
C  `refinement_search`: from A's spec, each (layer, kind) with kind in weights / activations
   / routing is lowered separately, least sensitive first, to the fewest bits that keep the
   tolerance (bisection per entry, every other entry fixed). Sensitivity is the relative
   quantization error (MSE / mean square) of that tensor one bit below its current width,
   measured on the weights and on the calibration samples, no extra evaluations.

Paper 004 is available to us as its abstract only; these are our reading of "progressive
bit-width assignment" and are documented as such in the README.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from keras_caps.quantization.memory import memory_summary, reduction_factors
from keras_caps.quantization.pot import MAX_BITS, MIN_BITS, check_bit_range, check_bits, quantize
from keras_caps.quantization.simulate import (
    WeightQuantizer,
    accuracy,
    complete_spec,
    quantized_model,
)
from keras_caps.quantization.spec import (
    inference_model,
    strip_exponents,
    uniform_spec,
    with_bits,
)

APPROACHES = ("A", "B", "C")
KINDS = ("weight", "activation", "routing")


@dataclasses.dataclass
class SearchResult:
    """The outcome of a search: a complete spec, its measured accuracy and memory reduction.

    Attributes:
        approach: str, "A", "B" or "C".
        spec: dict, the complete spec found (all exponents written; save it with
            `spec.save_spec`).
        accuracy: float, its accuracy on the `Evaluator`'s evaluation split.
        float_accuracy: float, the float model's accuracy on that split.
        tolerance: float, the accuracy tolerance searched under (a fraction).
        meets_tolerance: bool, `accuracy >= float_accuracy - tolerance`.
        evaluations: int, the quantized evaluations this search ran.
        seconds: float, its wall time.
        reductions: dict, `memory.reduction_factors` of the spec.
        trace: list of dicts, one per evaluated candidate.

    Example:

    ```python
    from keras_caps.quantization.progressive import SearchResult

    result = SearchResult(
        approach="A", spec={"layers": {}}, accuracy=0.91, float_accuracy=0.92,
        tolerance=0.01, meets_tolerance=True, evaluations=4, seconds=12.0,
        reductions={"weights": 5.3}, trace=[{"bits": 6, "accuracy": 0.91}])
    assert set(result.summary()) == {
        "approach", "accuracy", "float_accuracy", "tolerance", "meets_tolerance",
        "evaluations", "seconds", "reductions"}
    ```
    """

    approach: str
    spec: dict
    accuracy: float
    float_accuracy: float
    tolerance: float
    meets_tolerance: bool
    evaluations: int
    seconds: float
    reductions: dict
    trace: list

    def summary(self):
        """A JSON-able dict of the result without the spec and the trace."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("spec", "trace")}


class Evaluator:
    """The accuracy of quantized variants of one float model on one evaluation split.

    Calling it with a spec completes the spec's exponents (from the calibration), builds the
    simulated quantized model and measures its accuracy; results are memoized per spec. The
    float accuracy is measured once, at construction.

    Args:
        model: the float keras_caps model.
        calibration: a `simulate.Calibration` of `model` (on training batches).
        images: array (N, H, W, C), the evaluation images (held out from calibration).
        labels: (N,) integer or (N, J) one-hot labels of `images`.
        batch_size: int, the inference batch size. Defaults to 256.
        progress: optional callable(str), told about every evaluation.
    Attributes:
        float_accuracy: float, the float model's accuracy on the split.
        evaluations: int, the quantized evaluations run so far.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet
    from keras_caps.quantization import Calibration, uniform_spec
    from keras_caps.quantization.progressive import Evaluator
    from keras_caps.quantization.simulate import predict_classes

    model = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                    decoder=None)
    rng = np.random.default_rng(0)
    calibration = Calibration(model, rng.uniform(0, 1, (16, 12, 12, 1)).astype("float32"))
    images = rng.uniform(0, 1, (32, 12, 12, 1)).astype("float32")
    labels = predict_classes(model, images)  # the float model's own answers: accuracy 1.0
    evaluate = Evaluator(model, calibration, images, labels, progress=print)
    assert evaluate.float_accuracy == 1.0
    accuracy = evaluate(uniform_spec(model, 8, clipping="maxabs"), "uniform 8 bits")
    assert 0.0 <= accuracy <= 1.0 and evaluate.evaluations == 1
    ```
    """

    def __init__(self, model, calibration, images, labels, batch_size=256, progress=None):
        self.model = model
        self.calibration = calibration
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.weights = WeightQuantizer(model)
        self.progress = progress
        self.evaluations = 0
        self.float_accuracy = accuracy(inference_model(model), images, labels, batch_size)
        self._memo = {}

    def complete(self, spec):
        """`spec` with every missing exponent calibrated (see `simulate.complete_spec`).

        Args:
            spec: a spec dict for `model`.
        Returns:
            The completed spec (a new dict).
        """
        return complete_spec(self.model, spec, self.calibration, self.weights)

    def __call__(self, spec, label=""):
        """The accuracy of `spec` (exponents calibrated where missing); memoized.

        Args:
            spec: a spec dict for `model`.
            label: str, how `progress` names this evaluation. Defaults to "".
        Returns:
            float, the top-1 accuracy of the quantized model on the evaluation split.
        """
        spec = self.complete(spec)
        key = repr(sorted((n, sorted(e.items())) for n, e in spec["layers"].items()))
        if key not in self._memo:
            qm = quantized_model(self.model, spec, weights=self.weights)
            self._memo[key] = accuracy(qm, self.images, self.labels, self.batch_size)
            self.evaluations += 1
            if self.progress:
                self.progress(f"  eval {self.evaluations:3d} {label}: {self._memo[key]:.4f}")
        return self._memo[key]

    def ok(self, acc, tolerance):
        """Whether accuracy `acc` is within `tolerance` of the float accuracy.

        Args:
            acc: float, an accuracy on the evaluation split.
            tolerance: float, the allowed drop (a fraction: 0.001 is 0.1 points).
        Returns:
            bool, `acc >= float_accuracy - tolerance`.
        """
        return acc >= self.float_accuracy - tolerance - 1e-12


def _result(approach, ev, spec, acc, tolerance, start, evals0, trace):
    spec = ev.complete(spec)
    return SearchResult(
        approach=approach, spec=spec, accuracy=acc, float_accuracy=ev.float_accuracy,
        tolerance=tolerance, meets_tolerance=ev.ok(acc, tolerance),
        evaluations=ev.evaluations - evals0, seconds=time.perf_counter() - start,
        reductions=reduction_factors(ev.model, spec),
        trace=trace,
    )


def _bisect(lo, hi, passes):
    """Smallest b in [lo, hi] with passes(b), assuming passes(hi) and monotonicity."""
    while lo < hi:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def uniform_search(ev, tolerance, max_bits=MAX_BITS, min_bits=MIN_BITS, **spec_options):
    """Approach A: the smallest uniform bit-width within `tolerance` (see the module docstring).

    Args:
        ev: an `Evaluator`.
        tolerance: float, the accuracy tolerance (a fraction: 0.001 is 0.1 points).
        max_bits: int, the most bits tried (checked first). Defaults to 16.
        min_bits: int, the fewest. Defaults to 2.
        **spec_options: options of `spec.uniform_spec` (`clipping`, `rounding`,
            `weight_granularity`, ...).
    Returns:
        A `SearchResult`; when even `max_bits` misses the tolerance, its spec at `max_bits`
        with `meets_tolerance` False.
    Raises:
        keras_caps.errors.UserError: an invalid bit range.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet
    from keras_caps.quantization import Calibration
    from keras_caps.quantization.progressive import Evaluator, uniform_search
    from keras_caps.quantization.simulate import predict_classes

    # A small untrained CapsNet, labelled with its own float answers. (Untrained, its class
    # lengths are near ties that a few bits flip; with two classes its answers stay clear.)
    model = capsnet(input_shape=(12, 12, 1), num_classes=2, conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                    decoder=None)
    rng = np.random.default_rng(0)
    calibration = Calibration(model, rng.uniform(0, 1, (16, 12, 12, 1)).astype("float32"))
    images = rng.uniform(0, 1, (32, 12, 12, 1)).astype("float32")
    evaluate = Evaluator(model, calibration, images, predict_classes(model, images))

    result = uniform_search(evaluate, tolerance=0.1, max_bits=8, min_bits=4, clipping="maxabs")
    print(result.summary())
    assert result.meets_tolerance == (result.accuracy >= evaluate.float_accuracy - 0.1)
    bits = {e["activation_bits"] for e in result.spec["layers"].values()}
    assert len(bits) == 1 and 4 <= bits.pop() <= 8  # one bit-width for everything
    ```
    """
    min_bits, max_bits = check_bit_range(min_bits, max_bits)
    start, evals0, trace = time.perf_counter(), ev.evaluations, []

    def acc_at(bits):
        spec = uniform_spec(ev.model, bits, **spec_options)
        acc = ev(spec, f"A uniform {bits} bits")
        trace.append({"bits": bits, "accuracy": acc})
        return spec, acc

    spec, acc = acc_at(max_bits)
    if not ev.ok(acc, tolerance):
        return _result("A", ev, spec, acc, tolerance, start, evals0, trace)
    best = _bisect(min_bits, max_bits, lambda b: ev.ok(acc_at(b)[1], tolerance))
    spec, acc = acc_at(best)
    return _result("A", ev, spec, acc, tolerance, start, evals0, trace)


def _weight_layers(spec):
    return [n for n, e in spec["layers"].items() if e.get("weight_bits") is not None]


def layerwise_search(ev, tolerance, weight_reduction=7.02, base=None, min_bits=MIN_BITS,
                     steps=(0.0, 0.5, 1.0, 1.5, 2.0, 3.0), max_evaluations=16):
    """Approach B: deeper layers take fewer weight bits, under a weight memory budget.

    Activations and routing keep `base`'s bits; the weights of the l-th weight layer from
    the input get max(min_bits, b0 - round(step * l)) bits, for every start b0 and every
    `step`. Candidates within the budget are evaluated from the most to the least memory;
    the first within tolerance wins (else the most accurate one evaluated).

    Args:
        ev: an `Evaluator`.
        tolerance: float, the accuracy tolerance (a fraction).
        weight_reduction: float, the budget: float32 weight memory / this factor. Defaults
            to 7.02.
        base: optional approach-A `SearchResult` (searched here when None); it gives the
            activation / routing bits and the largest weight bits b0.
        min_bits: int, the fewest bits of a layer. Defaults to 2.
        steps: tuple of float, the bits dropped per layer of depth. Defaults to
            (0.0, 0.5, 1.0, 1.5, 2.0, 3.0).
        max_evaluations: int, the candidates evaluated at most. Defaults to 16.
    Returns:
        A `SearchResult` with approach "B".
    Raises:
        ValueError: no candidate fits the budget.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet
    from keras_caps.quantization import Calibration
    from keras_caps.quantization.progressive import Evaluator, layerwise_search, uniform_search
    from keras_caps.quantization.simulate import predict_classes

    # A small untrained CapsNet, labelled with its own float answers. (Untrained, its class
    # lengths are near ties that a few bits flip; with two classes its answers stay clear.)
    model = capsnet(input_shape=(12, 12, 1), num_classes=2, conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                    decoder=None)
    rng = np.random.default_rng(0)
    calibration = Calibration(model, rng.uniform(0, 1, (16, 12, 12, 1)).astype("float32"))
    images = rng.uniform(0, 1, (32, 12, 12, 1)).astype("float32")
    evaluate = Evaluator(model, calibration, images, predict_classes(model, images))

    base = uniform_search(evaluate, 0.1, max_bits=8, min_bits=8, clipping="maxabs")  # 8 bits
    result = layerwise_search(evaluate, 0.1, weight_reduction=5.0, base=base,
                              max_evaluations=2)
    assert result.reductions["weights"] >= 5.0  # within the budget
    names = [n for n, e in result.spec["layers"].items() if e.get("weight_bits")]
    bits = [result.spec["layers"][n]["weight_bits"] for n in names]
    assert bits == sorted(bits, reverse=True)  # deeper layers: fewer (or equal) bits
    ```
    """
    min_bits = check_bits(min_bits, "min_bits")
    start, evals0, trace = time.perf_counter(), ev.evaluations, []
    base = base or uniform_search(ev, tolerance)
    spec0 = strip_exponents(base.spec)
    names = _weight_layers(spec0)
    budget = memory_summary(ev.model)["weights"] / float(weight_reduction)
    top = max(e["weight_bits"] for e in spec0["layers"].values() if e.get("weight_bits"))
    candidates = {}
    for b0 in range(top, min_bits - 1, -1):
        for step in steps:
            bits = tuple(max(min_bits, b0 - int(round(step * i))) for i in range(len(names)))
            if bits in candidates:
                continue
            spec = spec0
            for name, b in zip(names, bits):
                spec = with_bits(spec, name, "weight", b)
            mem = memory_summary(ev.model, spec)["weights"]
            if mem <= budget:
                candidates[bits] = (mem, spec)
    best = None
    for bits, (mem, spec) in sorted(candidates.items(), key=lambda kv: -kv[1][0]):
        if ev.evaluations - evals0 >= max_evaluations:
            break
        acc = ev(spec, f"B weights {dict(zip(names, bits))}")
        trace.append({"weight_bits": dict(zip(names, bits)), "weight_memory": mem,
                      "accuracy": acc})
        if best is None or acc > best[1]:
            best = (spec, acc)
        if ev.ok(acc, tolerance):
            best = (spec, acc)
            break
    if best is None:
        raise ValueError(
            f"no layer-wise weight bit-widths >= {min_bits} fit a {weight_reduction}x weight "
            "memory budget; lower --weight_reduction or --min_bits."
        )
    return _result("B", ev, best[0], best[1], tolerance, start, evals0, trace)


def _relative_error(values, bits, frac):
    v = np.asarray(values, np.float32).reshape(-1)
    if v.size == 0:
        return 0.0
    q = np.asarray(quantize(v, bits, frac))
    return float(np.mean((q - v) ** 2) / (np.mean(v**2) + 1e-30))


def sensitivity(ev, spec):
    """How much each quantized entry of `spec` suffers one bit lower, least sensitive first.

    The relative quantization error (MSE / mean square) of the entry's tensor one bit below
    its current width: of the weights for "weight" (the worst of the layer's weights), of the
    calibration samples for "activation" and "routing" (the worst output / routing tensor).
    No evaluations are run.

    Args:
        ev: an `Evaluator` (its calibration and weight cache are used).
        spec: a spec dict (completed here).
    Returns:
        Sorted list of (relative error, layer name, kind) for every entry above MIN_BITS,
        kind in "weight", "activation", "routing".

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet
    from keras_caps.quantization import Calibration, uniform_spec
    from keras_caps.quantization.progressive import Evaluator, sensitivity
    from keras_caps.quantization.simulate import predict_classes

    # A small untrained CapsNet, labelled with its own float answers. (Untrained, its class
    # lengths are near ties that a few bits flip; with two classes its answers stay clear.)
    model = capsnet(input_shape=(12, 12, 1), num_classes=2, conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                    decoder=None)
    rng = np.random.default_rng(0)
    calibration = Calibration(model, rng.uniform(0, 1, (16, 12, 12, 1)).astype("float32"))
    images = rng.uniform(0, 1, (32, 12, 12, 1)).astype("float32")
    evaluate = Evaluator(model, calibration, images, predict_classes(model, images))

    rows = sensitivity(evaluate, uniform_spec(model, 8, clipping="maxabs"))
    assert ("class_caps", "routing") in {(name, kind) for _, name, kind in rows}
    errors = [err for err, _, _ in rows]
    assert errors == sorted(errors) and evaluate.evaluations == 0
    ```
    """
    spec = ev.complete(spec)
    cal, rows = ev.calibration, []
    for name, entry in spec["layers"].items():
        for kind in KINDS:
            bits = entry.get(f"{kind}_bits")
            if bits is None or bits <= MIN_BITS:
                continue
            lower = bits - 1
            if kind == "weight":
                layer = inference_model(ev.model).get_layer(name)
                quant = ev.weights.values(name, lower, spec)
                errs = [float(np.mean((q - w) ** 2) / (np.mean(w**2) + 1e-30))
                        for q, w in zip(quant, (np.asarray(x) for x in layer.get_weights()))]
                err = max(errs)
            elif kind == "activation":
                err = max(
                    _relative_error(vals, lower, cal.frac_bits(
                        name, lower, spec["clipping"], spec["percentile"], index=i))
                    for i, vals in enumerate(cal.activations[name]))
            else:
                err = max(
                    _relative_error(vals, lower, cal.frac_bits(
                        name, lower, spec["clipping"], spec["percentile"], kind=k))
                    for k, vals in cal.routing[name].items())
            rows.append((err, name, kind))
    return sorted(rows)


def refinement_search(ev, tolerance, base=None, min_bits=MIN_BITS):
    """Approach C: per-layer, per-kind lowering from A's spec, least sensitive first.

    Every (layer, kind) entry, in `sensitivity` order, is lowered on its own to the fewest
    bits that keep the tolerance (bisection between `min_bits` and its current bits, every
    other entry fixed). When `base` misses the tolerance, it is returned unchanged.

    Args:
        ev: an `Evaluator`.
        tolerance: float, the accuracy tolerance (a fraction).
        base: optional approach-A `SearchResult` to start from (searched here when None).
        min_bits: int, the fewest bits of an entry. Defaults to 2.
    Returns:
        A `SearchResult` with approach "C"; its trace has one row per entry.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet
    from keras_caps.quantization import Calibration
    from keras_caps.quantization.progressive import Evaluator, refinement_search, uniform_search
    from keras_caps.quantization.simulate import predict_classes

    # A small untrained CapsNet, labelled with its own float answers. (Untrained, its class
    # lengths are near ties that a few bits flip; with two classes its answers stay clear.)
    model = capsnet(input_shape=(12, 12, 1), num_classes=2, conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                    decoder=None)
    rng = np.random.default_rng(0)
    calibration = Calibration(model, rng.uniform(0, 1, (16, 12, 12, 1)).astype("float32"))
    images = rng.uniform(0, 1, (32, 12, 12, 1)).astype("float32")
    evaluate = Evaluator(model, calibration, images, predict_classes(model, images))

    base = uniform_search(evaluate, 0.1, max_bits=8, min_bits=8, clipping="maxabs")  # 8 bits
    result = refinement_search(evaluate, 0.1, base=base, min_bits=7)
    assert result.meets_tolerance == base.meets_tolerance
    if base.meets_tolerance:  # each entry kept 8 bits or went down to 7
        assert {row["bits"] for row in result.trace} <= {7, 8}
        assert result.reductions["weights"] >= base.reductions["weights"]
    ```
    """
    min_bits = check_bits(min_bits, "min_bits")
    start, evals0, trace = time.perf_counter(), ev.evaluations, []
    base = base or uniform_search(ev, tolerance)
    spec = strip_exponents(base.spec)
    acc = base.accuracy
    if not base.meets_tolerance:
        return _result("C", ev, spec, acc, tolerance, start, evals0, trace)
    for err, name, kind in sensitivity(ev, spec):
        current = spec["layers"][name][f"{kind}_bits"]

        def passes(bits, name=name, kind=kind, current=current, spec=spec):
            if bits == current:
                return True
            return ev.ok(ev(with_bits(spec, name, kind, bits), f"C {name}.{kind}={bits}"),
                         tolerance)

        bits = _bisect(min_bits, current, passes)
        if bits != current:
            spec = with_bits(spec, name, kind, bits)
            acc = ev(spec)
        trace.append({"layer": name, "kind": kind, "sensitivity": err, "from_bits": current,
                      "bits": bits, "accuracy": acc})
    return _result("C", ev, spec, acc, tolerance, start, evals0, trace)


def search(approach, ev, tolerance, base=None, **kwargs):
    """Runs approach "A", "B" or "C" (see the module docstring).

    Args:
        approach: "A" (`uniform_search`), "B" (`layerwise_search`) or "C"
            (`refinement_search`).
        ev: an `Evaluator`.
        tolerance: float, the accuracy tolerance (a fraction).
        base: optional approach-A `SearchResult` that B and C start from (ignored by A).
        **kwargs: the other arguments of the approach's function.
    Returns:
        A `SearchResult`.
    Raises:
        ValueError: an unknown approach.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet
    from keras_caps.quantization import Calibration
    from keras_caps.quantization.progressive import Evaluator, search
    from keras_caps.quantization.simulate import predict_classes

    # A small untrained CapsNet, labelled with its own float answers. (Untrained, its class
    # lengths are near ties that a few bits flip; with two classes its answers stay clear.)
    model = capsnet(input_shape=(12, 12, 1), num_classes=2, conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                    decoder=None)
    rng = np.random.default_rng(0)
    calibration = Calibration(model, rng.uniform(0, 1, (16, 12, 12, 1)).astype("float32"))
    images = rng.uniform(0, 1, (32, 12, 12, 1)).astype("float32")
    evaluate = Evaluator(model, calibration, images, predict_classes(model, images))

    a = search("A", evaluate, 0.1, max_bits=8, min_bits=7, clipping="maxabs")
    c = search("C", evaluate, 0.1, base=a, min_bits=7)
    assert (a.approach, c.approach) == ("A", "C")
    ```
    """
    if approach == "A":
        return uniform_search(ev, tolerance, **kwargs)
    if approach == "B":
        return layerwise_search(ev, tolerance, base=base, **kwargs)
    if approach == "C":
        return refinement_search(ev, tolerance, base=base, **kwargs)
    raise ValueError(f"unknown approach {approach!r}; choose one of {list(APPROACHES)}.")


__all__ = [
    "APPROACHES",
    "Evaluator",
    "SearchResult",
    "layerwise_search",
    "refinement_search",
    "search",
    "sensitivity",
    "uniform_search",
]
