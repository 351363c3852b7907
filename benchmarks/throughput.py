r"""Training and inference throughput of CapsNets, and the class-capsule layer's routing.

    python -m benchmarks.throughput --preset=quick --out=benchmarks/results/throughput.json

Everything is measured side by side in one process (the machines here are shared and noisy):
repetitions are interleaved (A, B, C, A, B, C, ...) and medians reported, so a speed claim is a
ratio of numbers taken under the same load. Three sections:

1. models: training and inference images/s of the Sabour CapsNet (capsnet(decoder="full"),
   MarginLoss on "lengths" + ReconstructionLoss on "reconstruction", inputs {"image", "label"})
   and a small student, on synthetic 28 x 28 x 1 batches. Training is `model.train_on_batch`
   and inference `classifier(model).predict_on_batch` on tensors already in memory: no tf.data,
   so the input pipeline is excluded. Warm-up steps (tracing, first allocations) are not timed.
   Keras' default `jit_compile="auto"` is off on a machine without a GPU; `--model_jit=both`
   also times the models compiled with XLA (slow here: XLA's CPU convolution gradients).
2. matmul: this machine's dense float32 GEMM rate, tf.matmul 2048 x 2048 under tf.function,
   measured in the same rounds; each model's achieved training GFLOP/s is reported as a
   fraction of it. Training FLOPs are 3 x the analytical forward FLOPs of `forward_flops`.
3. layer: one training step of the Sabour class-capsule layer (batch 64, 1152 capsules of 8D ->
   10 capsules of 16D, 3 routing iterations; forward + gradients w.r.t. the kernel and the
   inputs of loss = sum(v^2)) in these formulations:
     ours            keras_caps DenseCapsule as it is, called with training=True as fit() does
                     (capsule_ops.dense_routing); tf.function, and tf.function with
                     jit_compile=True; the faster is "ours".
     votes form      keras_caps predict_votes + dynamic_routing: the (B, J, N, Dout) votes form
                     DenseCapsule trained with before, and still its inference/export form.
     tile + map_fn   the classic older Keras CapsNet: inputs tiled J times, votes by
                     tf.map_fn(K.batch_dot(x, W, [2, 3])) per sample, matmul routing.
     einsum (XLA)    plain einsums compiled with XLA: u_hat = einsum('bni,njio->bnjo'),
                     b = 0, softmax over J, s = einsum('bnj,bnjo->bjo'), b += u_hat . v.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_caps.capsule_ops import dynamic_routing, predict_votes  # noqa: E402
from keras_caps.io_utils import markdown_table, write_json  # noqa: E402
from keras_caps.layers import Decoder, DenseCapsule, PrimaryCapsule  # noqa: E402
from keras_caps.losses import MarginLoss, ReconstructionLoss  # noqa: E402
from keras_caps.models import capsnet, classifier  # noqa: E402

PRESETS = {
    # rounds: timed repetitions of each measurement (interleaved); warmup: untimed first calls
    "quick": dict(model_rounds=6, model_warmup=2, layer_reps=15, layer_warmup=2),
    "full": dict(model_rounds=15, model_warmup=3, layer_reps=41, layer_warmup=3),
}

MODELS = {
    "Sabour CapsNet": dict(decoder="full"),
    "student": dict(conv_filters=64, primary_capsules=8, primary_dim=8, class_dim=16,
                    decoder="reduced"),
}

#: the Sabour class-capsule layer: B, N, Din, J, Dout, routing iterations
LAYER = dict(batch=64, inputs=1152, input_dim=8, capsules=10, capsule_dim=16, routings=3)


# ----------------------------------------------------------------------------- FLOPs
def forward_flops(model, training=True):
    """Analytical forward FLOPs per image (multiply-add = 2) of a keras_caps capsnet.

    conv: 2 H W k k Cin Cout; class capsules: votes 2 N J Din Dout, routing 2 N J Dout per
    iteration for the weighted sum and again for each of the r - 1 agreements; dense: 2 in out
    (the decoder only when `training`). Elementwise ops (squash, softmax, ReLU) are left out.
    This counts the votes form of routing (the algorithm's FLOPs); DenseCapsule's dense_routing
    executes more multiply-adds to move less memory.
    """
    total = 0
    for layer in model.layers:
        conv = layer.conv if isinstance(layer, PrimaryCapsule) else layer
        if isinstance(conv, keras.layers.Conv2D):
            kh, kw = conv.kernel_size
            _, h, w, cout = conv.compute_output_shape(layer.input.shape)
            total += 2 * h * w * kh * kw * int(layer.input.shape[-1]) * cout
        elif isinstance(layer, DenseCapsule):
            n, j, din, dout = layer.num_inputs, layer.num_capsules, layer.input_dim, \
                layer.capsule_dim
            r = layer.routings
            total += 2 * n * j * din * dout + (2 * r - 1) * 2 * n * j * dout
        elif isinstance(layer, Decoder) and training:
            width = int(layer.input.shape[-1])
            for dense in layer.hidden + [layer.pixels]:
                total += 2 * width * dense.units
                width = dense.units
    return total


# ----------------------------------------------------------------------------- timing
def _sync(result):
    """Blocks until `result` (a tensor or a structure of them) is computed."""
    first = tf.nest.flatten(result)[0]
    return np.asarray(first).ravel()[:1]


def interleaved(fns, reps, warmup):
    """Calls every fn `warmup` times, then `reps` rounds of (fn_1, fn_2, ...); seconds per call.

    Returns {name: np.array of the timed seconds}.
    """
    for fn in fns.values():
        for _ in range(warmup):
            _sync(fn())
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            _sync(fn())
            times[name].append(time.perf_counter() - start)
    return {name: np.asarray(t) for name, t in times.items()}


def matmul_fn(size=2048):
    a = tf.random.normal((size, size), seed=1)
    b = tf.random.normal((size, size), seed=2)
    mm = tf.function(lambda a, b: tf.matmul(a, b))
    return (lambda: mm(a, b)), 2.0 * size**3


# ----------------------------------------------------------------------------- models
def _model_fns(name, kwargs, batch, jit, rng):
    keras.utils.set_random_seed(0)
    model = capsnet(**kwargs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"lengths": MarginLoss(), "reconstruction": ReconstructionLoss()},
        jit_compile=jit,
    )
    clf = classifier(model)
    clf.compile(jit_compile=jit)
    images = tf.constant(rng.rand(batch, 28, 28, 1).astype("float32"))
    labels = tf.constant(np.eye(10, dtype="float32")[rng.randint(0, 10, batch)])
    x, y = {"image": images, "label": labels}, {"lengths": labels, "reconstruction": images}
    return (
        lambda: model.train_on_batch(x, y),
        lambda: clf.predict_on_batch(images),
        {"model": name, "jit_compile": bool(jit), "params": int(model.count_params()),
         "train_flops_per_image": 3 * forward_flops(model, training=True),
         "inference_flops_per_image": forward_flops(clf, training=False)},
    )


def measure_models(preset, batch, jits):
    rng = np.random.RandomState(0)
    fns, infos = {}, {}
    for jit in jits:
        for name, kwargs in MODELS.items():
            key = f"{name}{' (XLA)' if jit else ''}"
            train, infer, info = _model_fns(name, kwargs, batch, jit, rng)
            fns[key + "/train"], fns[key + "/infer"], infos[key] = train, infer, info
    mm, mm_flops = matmul_fn()
    fns["matmul"] = mm
    times = interleaved(fns, preset["model_rounds"], preset["model_warmup"])
    matmul_gflops = mm_flops / np.median(times["matmul"]) / 1e9
    rows = []
    for key, info in infos.items():
        train_s = float(np.median(times[key + "/train"]))
        infer_s = float(np.median(times[key + "/infer"]))
        achieved = info["train_flops_per_image"] * batch / train_s / 1e9
        rows.append(dict(info, variant=key, batch=batch, train_step_s=train_s,
                         train_images_per_s=batch / train_s, infer_batch_s=infer_s,
                         infer_images_per_s=batch / infer_s, train_gflops_per_s=achieved,
                         fraction_of_matmul=achieved / matmul_gflops))
    matmul = {"size": 2048, "gflops_per_s": matmul_gflops,
              "seconds_median": float(np.median(times["matmul"]))}
    return rows, matmul


# ----------------------------------------------------------------------------- layer
def _squash(s, axis=-1):
    sq = tf.reduce_sum(s * s, axis, keepdims=True)
    return s * sq / (1.0 + sq) / tf.sqrt(sq + 1e-7)


def tile_map_fn_routing(x, w_classic, routings):
    """The classic older Keras CapsNet class-capsule layer in plain TF.

    x: (B, N, Din); w_classic: (J, N, Dout, Din), the layout of those implementations.
    Votes: inputs expanded and tiled J times, then per sample (tf.map_fn)
    K.batch_dot(x, W, [2, 3]) (Keras 2 lowers it to a matmul with W adjoint); routing with
    b = 0, c = softmax over J, s = c @ u_hat, b += u_hat . v on stopped votes.
    """
    j = w_classic.shape[0]
    tiled = tf.tile(tf.expand_dims(x, 1), [1, j, 1, 1])  # (B, J, N, Din)
    u_hat = tf.map_fn(  # per sample: (J, N, 1, Din) @ (J, N, Din, Dout) -> (J, N, Dout)
        lambda t: tf.squeeze(tf.matmul(t[:, :, None, :], w_classic, transpose_b=True), 2),
        elems=tiled)
    stopped = tf.stop_gradient(u_hat)
    b = tf.zeros_like(u_hat[..., 0])  # (B, J, N)
    for r in range(routings):
        c = tf.nn.softmax(b, axis=1)
        votes = u_hat if r == routings - 1 else stopped
        v = _squash(tf.squeeze(tf.matmul(c[:, :, None, :], votes), 2))  # (B, J, Dout)
        if r < routings - 1:
            b += tf.squeeze(tf.matmul(stopped, v[..., None]), -1)
    return v


def einsum_routing(x, w, routings):
    """Plain einsum routing (compile with XLA). x: (B, N, Din); w: (N, J, Din, Dout)."""
    u_hat = tf.einsum("bni,njio->bnjo", x, w)
    stopped = tf.stop_gradient(u_hat)
    b = tf.zeros_like(u_hat[..., 0])  # (B, N, J)
    for r in range(routings):
        c = tf.nn.softmax(b, axis=2)
        v = _squash(tf.einsum("bnj,bnjo->bjo", c, u_hat if r == routings - 1 else stopped))
        if r < routings - 1:
            b += tf.einsum("bnjo,bjo->bnj", stopped, v)
    return v


def _train_step(forward, kernel, jit):
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            v = forward(x)
            loss = tf.reduce_sum(v * v)
        grad_kernel, grad_x = tape.gradient(loss, [kernel, x])
        return v, grad_kernel, grad_x

    return tf.function(step, jit_compile=jit)


def measure_layer(preset, batch=None):
    cfg = dict(LAYER, batch=batch or LAYER["batch"])
    b, n, din, j, dout, r = (cfg[k] for k in
                             ("batch", "inputs", "input_dim", "capsules", "capsule_dim",
                              "routings"))
    rng = np.random.RandomState(0)
    x = tf.constant((rng.randn(b, n, din) * 0.3).astype("float32"))
    w0 = (rng.randn(n, j, din, dout) * 0.05).astype("float32")
    layer = DenseCapsule(j, dout, routings=r)
    layer.build((None, n, din))
    layer.kernel.assign(w0)
    w = tf.Variable(w0)
    w_classic = tf.Variable(np.transpose(w0, (1, 0, 3, 2)))  # (J, N, Dout, Din)
    def ours(u):
        return layer(u, training=True)  # the layer's training form, as fit() calls it

    steps = {
        "ours (tf.function)": _train_step(ours, layer.kernel, False),
        "ours (jit_compile)": _train_step(ours, layer.kernel, True),
        "votes form (tf.function)": _train_step(
            lambda u: dynamic_routing(predict_votes(u, w), r), w, False),
        "tile + map_fn": _train_step(lambda u: tile_map_fn_routing(u, w_classic, r),
                                     w_classic, False),
        "einsum (XLA)": _train_step(lambda u: einsum_routing(u, w, r), w, True),
    }
    # every formulation computes the same function: compare outputs and input gradients
    ref = [t.numpy() for t in steps["einsum (XLA)"](x)]
    max_err = {}
    for name, step in steps.items():
        out = [t.numpy() for t in step(x)]
        max_err[name] = max(float(np.abs(o - e).max() / (np.abs(e).max() + 1e-12))
                            for o, e in ((out[0], ref[0]), (out[2], ref[2])))
    times = interleaved({k: (lambda s=s: s(x)) for k, s in steps.items()},
                        preset["layer_reps"], preset["layer_warmup"])
    med = {k: float(np.median(t)) for k, t in times.items()}
    ours_key = min(("ours (tf.function)", "ours (jit_compile)"), key=med.get)
    rows = [{"formulation": k, "median_ms": 1e3 * med[k], "min_ms": 1e3 * float(times[k].min()),
             "ours_speedup": med[k] / med[ours_key], "max_rel_err": max_err[k]} for k in steps]
    summary = {
        "ours": ours_key,
        "speedup_vs_tile_map_fn": med["tile + map_fn"] / med[ours_key],
        "speedup_vs_einsum_xla": med["einsum (XLA)"] / med[ours_key],
        "speedup_vs_votes_form": med["votes form (tf.function)"] / med[ours_key],
        "targets": {"vs_tile_map_fn": 5.0, "vs_einsum_xla": 1.5},
        "config": cfg,
    }
    return rows, summary


# ----------------------------------------------------------------------------- report
def machine():
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                      if line.startswith("Model name")), platform.processor())
    except OSError:
        model = platform.processor()
    return {"cpu": model, "cores": os.cpu_count(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "python": platform.python_version(),
            "load_average": list(os.getloadavg())}


def report(results):
    m = results["machine"]
    lines = [f"throughput ({results['preset']}), {results['date']}, {m['cpu']}, {m['cores']} "
             f"cores, TF {m['tensorflow']}, Keras {m['keras']}, load average at start "
             f"{m['load_average'][0]:.2f}, at end {results['load_average_end'][0]:.2f}", ""]
    if "models" in results:
        lines += [
            f"Models, batch {results['batch']}, synthetic 28x28x1, train_on_batch / "
            "predict_on_batch of the classifier head on in-memory tensors (no input pipeline; "
            "DenseCapsule's training form in training, its votes form in inference); medians of "
            f"{results['rounds']['models']} interleaved rounds. float32 matmul 2048^3: "
            f"{results['matmul']['gflops_per_s']:.1f} GFLOP/s.", "",
            markdown_table(results["models"], [
                ("variant", "model", "s"), ("params", "params", ",d"),
                ("train_images_per_s", "train img/s", ".1f"),
                ("infer_images_per_s", "inference img/s", ".1f"),
                ("train_flops_per_image", "train FLOPs/img", ".3g"),
                ("train_gflops_per_s", "train GFLOP/s", ".1f"),
                ("fraction_of_matmul", "of matmul", ".1%")]), ""]
    if "layer" in results:
        s = results["layer_summary"]
        lines += [
            f"Class-capsule layer training step (B={s['config']['batch']}, 1152x8D -> 10x16D, "
            "3 routings, grads "
            f"w.r.t. kernel and inputs), medians of {results['rounds']['layer']} interleaved "
            f"repetitions; ours = {s['ours']}.", "",
            markdown_table(results["layer"], [
                ("formulation", "formulation", "s"), ("median_ms", "median ms", ".1f"),
                ("min_ms", "min ms", ".1f"), ("ours_speedup", "time / ours", ".2f"),
                ("max_rel_err", "max rel. err", ".1e")]), "",
            f"ours vs tile + map_fn: {s['speedup_vs_tile_map_fn']:.2f}x (target 5x); "
            f"vs einsum (XLA): {s['speedup_vs_einsum_xla']:.2f}x (target 1.5x); "
            f"vs votes form: {s['speedup_vs_votes_form']:.2f}x."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    parser.add_argument("--sections", default="models,layer",
                        help="comma-separated subset of: models, layer")
    parser.add_argument("--batch_size", type=int, default=64, help="model section batch")
    parser.add_argument("--layer_batch", type=int, default=LAYER["batch"],
                        help="layer section batch")
    parser.add_argument("--model_jit", choices=("off", "on", "both"), default="off",
                        help="XLA (jit_compile=True) for the model section; on this CPU XLA "
                             "trains the Sabour CapsNet ~14x slower (30 s a step)")
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")  # one tf.function per formulation: no retracing notes
    preset = PRESETS[args.preset]
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"models", "layer"}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from models, layer")
    jits = {"off": [False], "on": [True], "both": [False, True]}[args.model_jit]

    results = {"preset": args.preset, "batch": args.batch_size, "machine": machine(),
               "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "rounds": {"models": preset["model_rounds"], "layer": preset["layer_reps"]},
               "input_pipeline": "excluded (train_on_batch / predict_on_batch on tensors)"}
    start = time.perf_counter()
    if "layer" in sections:
        results["layer"], results["layer_summary"] = measure_layer(preset, args.layer_batch)
    if "models" in sections:
        results["models"], results["matmul"] = measure_models(preset, args.batch_size, jits)
    results["wall_s"] = time.perf_counter() - start
    results["load_average_end"] = list(os.getloadavg())
    print(report(results))
    write_json(args.out, results)
    print(f"\nwrote {args.out} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
