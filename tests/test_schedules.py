"""Learning-rate schedules, batch-size policies and plot helpers (keras_caps.schedules / .plots)."""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_caps import plots
from keras_caps import schedules as S

LR_MIN, LR_MAX = 1e-4, 1e-3


def lr(schedule, step):
    return float(schedule(step))


def approx(x, rel=1e-5):
    return pytest.approx(x, rel=rel, abs=1e-12)


def all_schedules():
    """One instance of every schedule class (PiecewiseCycles nesting two others)."""
    return {
        "fixed": S.FixedLR(1e-3),
        "step": S.StepDecay(1e-3, 0.5, 10),
        "exponential": S.ExponentialDecay(1e-3, 0.9, 10, staircase=True),
        "polynomial": S.PolynomialDecay(1e-3, 1e-5, 50, power=2.0),
        "one_cycle": S.OneCycle(LR_MIN, LR_MAX, 100),
        "warm_restarts": S.WarmRestarts(LR_MIN, LR_MAX, 10, cycle_mult=1.5),
        "cosine": S.CosineAnnealing(LR_MIN, LR_MAX, 60),
        "triangular": S.Triangular(LR_MIN, LR_MAX, 5, mode="triangular2"),
        "piecewise": S.PiecewiseCycles(
            [30], [S.WarmRestarts(LR_MIN, LR_MAX, 30), S.CosineAnnealing(0.0, LR_MAX, 40)]
        ),
    }


STEPS = np.arange(0, 130)


# --------------------------------------------------------------------------- values


def test_fixed_step_exponential_polynomial_values():
    assert lr(S.FixedLR(0.01), 0) == approx(0.01)
    assert lr(S.FixedLR(0.01), 12345) == approx(0.01)

    sd = S.StepDecay(0.1, 0.5, 10)
    assert [lr(sd, s) for s in (0, 9, 10, 19, 20, 35)] == approx(
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125]
    )

    ed = S.ExponentialDecay()  # paper: 0.001 * 0.96 ** (step / 2000)
    assert lr(ed, 0) == approx(1e-3)
    assert lr(ed, 1000) == approx(1e-3 * 0.96**0.5)
    assert lr(ed, 6000) == approx(1e-3 * 0.96**3)
    stair = S.ExponentialDecay(1e-3, 0.96, 2000, staircase=True)
    assert lr(stair, 1999) == approx(1e-3)
    assert lr(stair, 2000) == approx(1e-3 * 0.96)
    assert lr(stair, 3999) == approx(1e-3 * 0.96)
    assert lr(stair, 4000) == approx(1e-3 * 0.96**2)

    pd = S.PolynomialDecay(1e-2, 1e-4, 100, power=2.0)
    assert lr(pd, 0) == approx(1e-2)
    assert lr(pd, 50) == approx((1e-2 - 1e-4) * 0.25 + 1e-4)
    assert lr(pd, 100) == approx(1e-4)
    assert lr(pd, 500) == approx(1e-4)


def _former_exponential(initial_lr, decay_rate, decay_steps, staircase, step):
    """The ExponentialDecay / StepDecay maths as keras_caps wrote it before using Keras's class."""
    p = keras.ops.maximum(keras.ops.cast(step, "float32"), 0.0) / decay_steps
    if staircase:
        p = keras.ops.floor(p)
    return initial_lr * keras.ops.power(decay_rate, p)


@pytest.mark.parametrize("build, initial_lr, rate, steps, staircase", [
    (S.ExponentialDecay, 1e-3, 0.96, 2000, False), (S.ExponentialDecay, 1e-3, 0.96, 2000, True),
    (S.ExponentialDecay, 1e-3, 0.9, 10, True), (S.ExponentialDecay, 0.1, 0.5, 7, False),
    (S.ExponentialDecay, 3e-4, 0.99, 1, False), (S.StepDecay, 0.1, 0.5, 10, True),
    (S.StepDecay, 1e-2, 0.1, 3, True), (S.StepDecay, 1e-3, 0.9, 1, True)])
def test_keras_backed_schedules_equal_the_former_implementation(build, initial_lr, rate, steps,
                                                                staircase):
    """ExponentialDecay and StepDecay are Keras's ExponentialDecay: the same float32 values at
    every step as the implementation they replaced (steps below 0 still count as 0)."""
    if build is S.StepDecay:
        sched = S.StepDecay(initial_lr, rate, steps)
    else:
        sched = S.ExponentialDecay(initial_lr, rate, steps, staircase=staircase)
    assert isinstance(sched, keras.optimizers.schedules.ExponentialDecay)
    all_steps = np.arange(-5, 20001)
    np.testing.assert_array_equal(
        np.asarray(sched(all_steps)),
        np.asarray(_former_exponential(initial_lr, rate, steps, staircase, all_steps)))
    assert float(sched(12345)) == float(_former_exponential(initial_lr, rate, steps, staircase,
                                                            12345))

def test_one_cycle_phase_boundaries():
    oc = S.OneCycle(LR_MIN, LR_MAX, total_steps=1000)  # 45% = 450, 90% = 900
    assert oc.final_lr == approx(1e-5)  # paper: annealed to 1e-5 = lr_min / 10
    assert lr(oc, 0) == approx(LR_MIN)
    assert lr(oc, 225) == approx((LR_MIN + LR_MAX) / 2)
    assert lr(oc, 450) == approx(LR_MAX)
    assert lr(oc, 675) == approx((LR_MIN + LR_MAX) / 2)
    assert lr(oc, 900) == approx(LR_MIN)
    # eq. 1, phase 3: lr_min - 9 lr_min / TS * (ts - 0.9 TS)
    assert lr(oc, 950) == approx(LR_MIN - 9 * LR_MIN / 1000 * 50)
    assert lr(oc, 1000) == approx(1e-5)
    assert lr(oc, 5000) == approx(1e-5)  # constant past the end
    values = np.asarray(oc(np.arange(1001)))
    assert np.all(np.diff(values[:451]) > 0)
    assert np.all(np.diff(values[450:]) < 0)

    custom = S.OneCycle(1e-3, 1e-2, 200, up_fraction=0.25, down_fraction=0.5, final_lr=0.0)
    assert lr(custom, 50) == approx(1e-2)
    assert lr(custom, 150) == approx(1e-3)
    assert lr(custom, 175) == approx(5e-4)
    assert lr(custom, 300) == 0.0


def _sgdr_reference(step, t0, mult):
    """Step-by-step SGDR (the paper's Alg. 2 loop, restarting at T_curr == T_i)."""
    t_cur, t_i = float(step), float(t0)
    while t_cur >= t_i:
        t_cur -= t_i
        t_i *= mult
    return LR_MIN + 0.5 * (LR_MAX - LR_MIN) * (1 + math.cos(math.pi * t_cur / t_i))


def test_warm_restarts_restart_points_and_cycle_mult():
    wr = S.WarmRestarts(LR_MIN, LR_MAX, first_cycle_steps=10)
    assert lr(wr, 0) == approx(LR_MAX)
    assert lr(wr, 5) == approx((LR_MIN + LR_MAX) / 2)
    assert lr(wr, 9) < LR_MIN * 1.3
    for restart in (10, 20, 1000):
        assert lr(wr, restart) == approx(LR_MAX)
        assert lr(wr, restart - 1) == approx(lr(wr, 9))

    doubling = S.WarmRestarts(LR_MIN, LR_MAX, 10, cycle_mult=2.0)  # restarts at 10, 30, 70, 150
    for restart, length in ((10, 20), (30, 40), (70, 80), (150, 160)):
        assert lr(doubling, restart) == approx(LR_MAX)
        assert lr(doubling, restart - 1) < min(lr(doubling, restart - 2), LR_MIN * 1.25)
        assert lr(doubling, restart + length // 2) == approx((LR_MIN + LR_MAX) / 2)
    for mult in (1.0, 1.5, 2.0, 3.0):
        sched = S.WarmRestarts(LR_MIN, LR_MAX, 7, cycle_mult=mult)
        got = np.asarray(sched(np.arange(400)))
        want = [_sgdr_reference(s, 7, mult) for s in range(400)]
        np.testing.assert_allclose(got, want, rtol=1e-4)


def test_warm_restarts_from_epochs():
    wr = S.WarmRestarts.from_epochs(LR_MIN, LR_MAX, first_cycle_epochs=1, steps_per_epoch=469)
    assert wr.first_cycle_steps == 469
    assert lr(wr, 469) == approx(LR_MAX)
    assert S.WarmRestarts.from_epochs(0.0, 1.0, 2.5, 10, cycle_mult=2).get_config() == {
        "lr_min": 0.0, "lr_max": 1.0, "first_cycle_steps": 25, "cycle_mult": 2.0}
    with pytest.raises(ValueError, match="steps_per_epoch"):
        S.WarmRestarts.from_epochs(LR_MIN, LR_MAX, 1, steps_per_epoch=0)


def test_cosine_and_triangular():
    ca = S.CosineAnnealing(LR_MIN, LR_MAX, 100)
    assert [lr(ca, s) for s in (0, 50, 100, 400)] == approx(
        [LR_MAX, (LR_MAX + LR_MIN) / 2, LR_MIN, LR_MIN]
    )

    tri = S.Triangular(LR_MIN, LR_MAX, step_size=5)
    values = np.asarray(tri(np.arange(41)))
    peaks = [s for s in range(1, 40) if values[s] > values[s - 1] and values[s] > values[s + 1]]
    assert peaks == [5, 15, 25, 35]
    assert values[[5, 15, 25]] == approx([LR_MAX] * 3)
    assert values[[0, 10, 20, 30]] == approx([LR_MIN] * 4)
    assert lr(tri, 2) == approx(LR_MIN + 0.4 * (LR_MAX - LR_MIN))

    tri2 = S.Triangular(LR_MIN, LR_MAX, 5, mode="triangular2")
    amp = LR_MAX - LR_MIN
    assert [lr(tri2, s) for s in (5, 15, 25)] == approx(
        [LR_MAX, LR_MIN + amp / 2, LR_MIN + amp / 4]
    )
    tri3 = S.Triangular(LR_MIN, LR_MAX, 5, mode="exp_range", gamma=0.99)
    assert lr(tri3, 15) == approx(LR_MIN + amp * 0.99**15)


def test_piecewise_cycles_segments_use_local_step():
    pc = S.PiecewiseCycles(
        [20, 50], [S.FixedLR(0.1), S.StepDecay(1.0, 0.5, 10), S.CosineAnnealing(0.0, 1.0, 10)]
    )
    assert pc.segment_starts == [0, 20, 50]
    assert [lr(pc, s) for s in (0, 19, 20, 29, 30, 49, 50, 55, 60, 99)] == approx(
        [0.1, 0.1, 1.0, 1.0, 0.5, 0.25, 1.0, 0.5, 0.0, 0.0], rel=1e-5
    )
    assert lr(S.PiecewiseCycles([5], [0.1, 0.2]), 5) == approx(0.2)  # numbers mean FixedLR


# --------------------------------------------------------------------------- tensors, tf.function


def test_schedules_accept_tensor_steps_arrays_and_tf_function():
    scheds = all_schedules()
    want = {name: np.array([lr(s, int(t)) for t in STEPS]) for name, s in scheds.items()}

    @tf.function(input_signature=[tf.TensorSpec([], tf.int64)])
    def graph_fn(step):
        return {name: s(step) for name, s in scheds.items()}

    @tf.function(jit_compile=True)
    def xla_fn(steps):
        return {name: s(steps) for name, s in scheds.items()}

    graph_values = graph_fn(tf.constant(37, tf.int64))
    xla_values = xla_fn(tf.constant(STEPS, tf.int64))
    for name, sched in scheds.items():
        np.testing.assert_allclose(np.asarray(sched(STEPS)), want[name], rtol=1e-5, err_msg=name)
        for dtype in ("int64", "int32", "float32"):
            got = sched(keras.ops.convert_to_tensor(37, dtype=dtype))
            assert float(got) == approx(want[name][37]), (name, dtype)
        assert float(graph_values[name]) == approx(want[name][37]), name
        np.testing.assert_allclose(xla_values[name].numpy(), want[name], rtol=1e-5, err_msg=name)


def test_schedule_drives_optimizer_in_compiled_fit():
    sched = S.WarmAdaBatch(exponent=1).lr_schedule(num_examples=4, epochs=4)  # 3 x 4, 1 x 2 steps
    assert sched.boundaries == [12]
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=S.make_optimizer("sgd", sched), loss="mse", jit_compile=True)
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 1), "float32")
    model.fit(x, y, batch_size=1, epochs=3, verbose=0)
    assert int(model.optimizer.iterations) == 12
    assert float(model.optimizer.learning_rate) == approx(LR_MAX)  # restart with the new batch


# --------------------------------------------------------------------------- serialization


def test_config_round_trips_give_identical_values():
    for name, sched in all_schedules().items():
        want = np.asarray(sched(STEPS))
        clone = type(sched).from_config(sched.get_config())
        np.testing.assert_array_equal(np.asarray(clone(STEPS)), want, err_msg=name)
        blob = keras.saving.serialize_keras_object(sched)
        assert blob["registered_name"] == f"keras_caps>{type(sched).__name__}"
        revived = keras.saving.deserialize_keras_object(blob)
        assert type(revived) is type(sched)
        assert revived.get_config() == sched.get_config()
        np.testing.assert_array_equal(np.asarray(revived(STEPS)), want, err_msg=name)


def test_piecewise_config_nests_serialized_schedules_and_survives_optimizer_config():
    sched = S.WarmAdaBatch().lr_schedule(num_examples=100, epochs=6)
    config = sched.get_config()
    assert config["boundaries"] == [300]
    assert [c["class_name"] for c in config["schedules"]] == ["WarmRestarts", "WarmRestarts"]
    opt = keras.optimizers.Adam.from_config(keras.optimizers.Adam(sched).get_config())
    revived = opt._learning_rate
    assert isinstance(revived, S.PiecewiseCycles)
    np.testing.assert_array_equal(np.asarray(revived(np.arange(330))),
                                  np.asarray(sched(np.arange(330))))


# --------------------------------------------------------------------------- batch policies


def test_adabatch_batch_sizes_steps_and_boundaries():
    ab = S.AdaBatch()  # paper: P = 4
    sizes = [ab.batch_size(e) for e in range(20)]
    assert sizes == [1] * 3 + [16] * 5 + [32] * 5 + [64] * 7
    assert ab.steps_per_epoch(0, 100) == 100
    assert ab.steps_per_epoch(3, 100) == 7  # ceil(100 / 16)
    assert ab.steps_per_epoch(10, 64) == 2
    assert S.steps_for_epochs(ab, 100, 15) == [100] * 3 + [7] * 5 + [4] * 5 + [2] * 2
    assert ab.phase_boundaries(100, 20) == [300, 335, 355]
    assert ab.phase_boundaries(100, 3) == []
    assert ab.total_steps(100, 20) == 355 + 7 * 2

    custom = S.AdaBatch(exponent=2, warmup_epochs=1, epochs_per_step=2, growth_steps=2,
                        warmup_batch_size=2)
    assert [custom.batch_size(e) for e in range(7)] == [2, 4, 4, 8, 8, 8, 8]
    assert S.FixedBatch(32).phase_boundaries(1000, 10) == []
    assert S.steps_for_epochs(S.FixedBatch(32), 1000, 3) == [32, 32, 32]
    assert S.AdaBatch.from_config(custom.get_config()).get_config() == custom.get_config()


def test_warmadabatch_paper_setting_and_restart_at_batch_change():
    wab = S.WarmAdaBatch()  # paper Section IV-E: 1 for 3 epochs, then 16
    assert [wab.batch_size(e) for e in range(30)] == [1] * 3 + [16] * 27
    sched = wab.lr_schedule(num_examples=60000, epochs=30, lr_min=LR_MIN, lr_max=LR_MAX)
    first, second = sched.schedules
    assert sched.boundaries == wab.phase_boundaries(60000, 30) == [3 * 60000]
    assert first.first_cycle_steps == 3 * 60000  # Alg. 5: T_i = 3 * 60,000
    assert second.first_cycle_steps == 27 * 3750  # Alg. 5: T_i = 27 * 3,750
    b = 180000
    assert lr(sched, 0) == approx(LR_MAX)
    assert lr(sched, b - 1) == approx(LR_MIN, rel=1e-4)
    assert lr(sched, b) == approx(LR_MAX)
    assert lr(sched, b + 27 * 3750 // 2) == approx((LR_MIN + LR_MAX) / 2, rel=1e-4)
    assert lr(sched, b + 27 * 3750 - 1) == approx(LR_MIN, rel=1e-4)


def test_warmadabatch_second_cycle_spans_all_growing_phases_continuously():
    wab = S.WarmAdaBatch(exponent=3, growth_steps=3)  # 1, 1, 1, 8 x5, 16 x5, 32 ...
    n, epochs = 50, 16
    per_epoch = S.steps_for_epochs(wab, n, epochs)
    assert per_epoch == [50] * 3 + [7] * 5 + [4] * 5 + [2] * 3
    total = sum(per_epoch)
    sched = wab.lr_schedule(n, epochs, LR_MIN, LR_MAX)
    assert sched.boundaries == [150]
    assert sched.schedules[1].first_cycle_steps == total - 150
    values = np.asarray(sched(np.arange(total)), dtype=np.float64)
    jumps = np.flatnonzero(np.diff(values) > 0) + 1
    assert jumps.tolist() == [150]  # the only restart is the batch-size change
    assert values[150] == approx(LR_MAX) and values[-1] < LR_MIN * 1.01
    for lo, hi in ((0, 150), (150, total)):
        max_step = np.max(np.abs(np.diff(values[lo:hi])))
        assert max_step <= 0.5 * (LR_MAX - LR_MIN) * math.pi / (hi - lo) * 1.01
    single = S.WarmAdaBatch().lr_schedule(n, 2, LR_MIN, LR_MAX)  # never leaves the warm-up
    assert single.boundaries == [] and single.schedules[0].first_cycle_steps == 100


# --------------------------------------------------------------------------- validation, factories


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: S.OneCycle(0.01, 0.001, 100), r"lr_min \(0\.01\) must be <= lr_max \(0\.001\)"),
        (lambda: S.WarmRestarts(0.01, 0.001, 10), r"lr_min \(0\.01\) must be <= lr_max"),
        (lambda: S.Triangular(0.01, 0.001, 10), r"lr_min \(0\.01\) must be <= lr_max"),
        (lambda: S.CosineAnnealing(0.01, 0.001, 10), r"lr_min \(0\.01\) must be <= lr_max"),
        (lambda: S.WarmRestarts(LR_MIN, LR_MAX, 0), r"first_cycle_steps \(cycle length\)"),
        (lambda: S.WarmRestarts(LR_MIN, LR_MAX, -5), r"must be an integer >= 1, got -5"),
        (lambda: S.WarmRestarts(LR_MIN, LR_MAX, 10, cycle_mult=0.5), r"cycle_mult must be >= 1"),
        (lambda: S.Triangular(LR_MIN, LR_MAX, 0), r"step_size .* >= 1"),
        (lambda: S.Triangular(LR_MIN, LR_MAX, 5, mode="saw"), r"mode must be one of"),
        (lambda: S.OneCycle(LR_MIN, LR_MAX), r"total_steps is required"),
        (lambda: S.OneCycle(LR_MIN, LR_MAX, 0), r"total_steps must be an integer >= 1"),
        (lambda: S.OneCycle(LR_MIN, LR_MAX, 10, 0.6, 0.6), r"up_fraction \+ down_fraction"),
        (lambda: S.OneCycle(LR_MIN, LR_MAX, 10, final_lr=1e-3), r"final_lr .* must be <= lr_min"),
        (lambda: S.ExponentialDecay(decay_rate=1.5), r"decay_rate must be in \(0, 1\]"),
        (lambda: S.ExponentialDecay(decay_rate=0.0), r"decay_rate must be in \(0, 1\]"),
        (lambda: S.ExponentialDecay(decay_steps=0), r"decay_steps must be an integer >= 1"),
        (lambda: S.StepDecay(0.1, 2.0, 10), r"drop must be in \(0, 1\]"),
        (lambda: S.PolynomialDecay(1e-3, 1e-2, 10), r"end_lr \(0\.01\) must be <= initial_lr"),
        (lambda: S.FixedLR(-1.0), r"lr must be > 0"),
        (lambda: S.FixedLR(float("nan")), r"lr must be finite"),
        (lambda: S.PiecewiseCycles([10, 5], [0.1, 0.2, 0.3]), r"strictly increasing"),
        (lambda: S.PiecewiseCycles([10], [0.1]), r"needs len\(boundaries\) \+ 1 = 2"),
        (lambda: S.FixedBatch(0), r"batch_size must be an integer >= 1, got 0"),
        (lambda: S.FixedBatch(2.5), r"batch_size must be an integer"),
        (lambda: S.AdaBatch(epochs_per_step=0), r"epochs_per_step must be an integer >= 1"),
        (lambda: S.AdaBatch(warmup_batch_size=0), r"warmup_batch_size must be an integer >= 1"),
        (lambda: S.AdaBatch().batch_size(-1), r"epoch \(0-based\) must be an integer >= 0"),
        (lambda: S.AdaBatch().steps_per_epoch(0, 0), r"num_examples must be an integer >= 1"),
    ],
)
def test_bad_parameters_are_rejected_with_clear_messages(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_factories():
    assert isinstance(S.make_schedule("one_cycle", total_steps=10), S.OneCycle)
    assert isinstance(S.make_schedule("Warm-Restarts", lr_min=0, lr_max=1, first_cycle_steps=3),
                      S.WarmRestarts)
    for name in ("fixed", "step", "exponential", "polynomial", "cosine", "triangular"):
        assert name in S._SCHEDULES
    with pytest.raises(ValueError, match="valid names: cosine, exponential, fixed"):
        S.make_schedule("linear")

    assert isinstance(S.make_optimizer(), keras.optimizers.Adam)
    opt = S.make_optimizer("adagrad", 0.01)
    assert isinstance(opt, keras.optimizers.Adagrad)
    assert float(opt.learning_rate) == approx(0.01)
    assert isinstance(S.make_optimizer("sgd", 0.1, momentum=0.9), keras.optimizers.SGD)
    assert isinstance(S.make_optimizer("rmsprop", S.FixedLR(1e-3)), keras.optimizers.RMSprop)
    with pytest.raises(ValueError, match="Unknown optimizer 'lamb'; valid names: adagrad, adam"):
        S.make_optimizer("lamb")

    assert isinstance(S.make_batch_policy("fixed", batch_size=8), S.FixedBatch)
    assert isinstance(S.make_batch_policy("adabatch", exponent=3), S.AdaBatch)
    assert isinstance(S.make_batch_policy("warmadabatch"), S.WarmAdaBatch)
    with pytest.raises(ValueError, match="valid names: adabatch, fixed, warmadabatch"):
        S.make_batch_policy("growing")


# --------------------------------------------------------------------------- plots


def _assert_png(path):
    assert os.path.getsize(path) > 1000
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    leftovers = [p for p in os.listdir(os.path.dirname(path)) if p.startswith(".tmp")]
    assert leftovers == []


def test_plots_write_png_files(tmp_path):
    scheds = all_schedules()
    scheds["keras_cosine"] = keras.optimizers.schedules.CosineDecay(1e-3, 100)
    path = plots.plot_lr_schedules(scheds, 200, str(tmp_path / "lr.png"))
    _assert_png(path)
    _assert_png(plots.plot_accuracy_curves(
        {"fixed": [0.9, 0.95, 0.97], "wab": [0.93, 0.96]}, str(tmp_path / "sub" / "acc.png")))
    _assert_png(plots.plot_batch_schedule(S.AdaBatch(), 20, str(tmp_path / "batch.png")))
    with pytest.raises(ValueError, match="schedules is empty"):
        plots.plot_lr_schedules({}, 10, str(tmp_path / "x.png"))


# --------------------------------------------------------------------------- schedule_for_run


def test_schedule_for_run_derives_steps_from_the_batch_policy():
    ada = S.AdaBatch(exponent=3, warmup_epochs=1, epochs_per_step=1, growth_steps=1,
                     warmup_batch_size=2)  # batch 2, then 8: 50 steps, then 13 per epoch
    assert S.steps_for_epochs(ada, 100, 3) == [50, 13, 13]
    wr = S.schedule_for_run("warm_restarts", 100, 3, ada, lr=1e-3, lr_min=1e-5, cycle_epochs=1.5)
    assert isinstance(wr, S.WarmRestarts) and wr.first_cycle_steps == 50 + 6
    one = S.schedule_for_run("one_cycle", 100, 3, ada, lr=1e-3, lr_min=1e-4)
    assert one.total_steps == 76 and lr(one, 0) == approx(1e-4)
    step = S.schedule_for_run("step", 100, 3, S.FixedBatch(10), drop=0.1, drop_epochs=2)
    assert lr(step, 19) == approx(1e-3) and lr(step, 20) == approx(1e-4)
    assert isinstance(S.schedule_for_run("fixed", 100, 3, ada), S.FixedLR)
    for name in ("exponential", "polynomial", "cosine", "triangular"):
        assert float(S.schedule_for_run(name, 100, 3, ada)(0)) > 0


def test_schedule_for_run_warmadabatch_and_errors():
    wab = S.WarmAdaBatch(exponent=3, warmup_batch_size=2)
    sched = S.schedule_for_run("warmadabatch", 100, 5, wab, lr=1e-3, lr_min=1e-4)
    assert sched.boundaries == wab.phase_boundaries(100, 5)
    with pytest.raises(ValueError, match="needs batch policy 'warmadabatch'"):
        S.schedule_for_run("warmadabatch", 100, 5, S.FixedBatch(8))
    with pytest.raises(ValueError, match="unknown lr policy 'linear'"):
        S.schedule_for_run("linear", 100, 5, S.FixedBatch(8))
