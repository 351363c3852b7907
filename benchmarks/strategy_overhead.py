r"""Training throughput under the default strategy vs. OneDeviceStrategy, side by side.

    python -m benchmarks.strategy_overhead --size=M --images=6400 --repeats=3

Builds `mcu_capsnet(--size)` twice, once in the default strategy and once under
`tf.distribute.OneDeviceStrategy` on the first device, compiles both with the margin loss, and
trains each one epoch of --images random uint8 images through the library's tf.data pipeline
(`keras_caps.data.make_dataset`, 2-px shifts, batch 64), alternating the two --repeats times
after a warm-up epoch each, so that load on the machine hits both alike. Prints images/s per
repeat and the median ratio. This is why `train_capsnet --distribution_strategy=one_device` (the
default) uses the default strategy.
"""

from __future__ import annotations

import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("size", "M", "mcu_capsnet size.")
    flags.DEFINE_integer("images", 6400, "Images per timed epoch.")
    flags.DEFINE_integer("repeats", 3, "Timed epochs per arm.")


def main(_):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_caps import data as data_lib
    from keras_caps.models import mcu_capsnet
    from keras_caps.training.loop import compile_capsnet, model_io

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (FLAGS.images, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, FLAGS.images)
    device = tf.config.list_logical_devices()[0].name
    arms = {"default strategy": tf.distribute.get_strategy(),
            f"OneDeviceStrategy({device})": tf.distribute.OneDeviceStrategy(device)}
    models = {}
    for name, strategy in arms.items():
        with strategy.scope():
            models[name] = compile_capsnet(mcu_capsnet(FLAGS.size), keras.optimizers.Adam(1e-3))

    def epoch(name, seed):
        model = models[name]
        ds = data_lib.make_dataset(x, y, batch_size=64, shuffle=True, augment_shift=2,
                                   seed=seed, num_classes=10).map(model_io(model))
        start = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0)
        return FLAGS.images / (time.perf_counter() - start)

    for name in models:
        epoch(name, 0)  # warm-up: tracing
    rates = {name: [] for name in models}
    for r in range(FLAGS.repeats):
        for name in models:
            rates[name].append(epoch(name, r + 1))
    for name, values in rates.items():
        print(f"{name}: " + ", ".join(f"{v:.0f}" for v in values) + " images/s")
    default, one_device = (statistics.median(v) for v in rates.values())
    print(f"mcu_capsnet({FLAGS.size!r}): default / OneDeviceStrategy = {default / one_device:.2f}x")


if __name__ == "__main__":
    define_flags()
    app.run(main)
