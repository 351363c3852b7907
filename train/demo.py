r"""`make demo`: trains a small CapsNet on real Fashion-MNIST with the quick preset.

    python -m train.demo [--model_dir=runs/demo] [--epochs=2] [--train_examples=60000]

Reads Fashion-MNIST from /usr/share/datasets/fashion-mnist (Debian: apt-get install
dataset-fashion-mnist), --data_dir, or TFDS. Prints the test accuracy and where the artifacts
are. A re-run resumes (or, when finished, just reports) the run in --model_dir.
"""

from __future__ import annotations

from absl import flags

from train import train_capsnet

#: The quick preset: a small CapsNet (conv 64, 8 primary types x 8D, 10 x 16D class capsules,
#: reduced decoder) that trains in a few minutes on 2 CPU cores.
QUICK_PRESET = dict(
    dataset="fashion_mnist",
    model="capsnet",
    conv_filters=64,
    primary_capsules=8,
    primary_dim=8,
    class_dim=16,
    decoder="reduced",
    batch_size=64,
    learning_rate=1e-3,
    epochs=2,
    augment_shift=0,
)


def main(argv):
    del argv
    fl = flags.FLAGS
    for name, value in QUICK_PRESET.items():
        if not fl[name].present:
            setattr(fl, name, value)
    if not fl.model_dir:
        fl.model_dir = "runs/demo"
    metrics = train_capsnet.run(fl)
    minutes = metrics["train_time_s"] / 60
    print()
    print("keras-caps demo: small CapsNet on Fashion-MNIST")
    print(f"  parameters     {metrics['params']:,}")
    print(f"  epochs         {metrics['epochs']} ({minutes:.1f} min of training)")
    print(f"  test accuracy  {metrics['test_accuracy']:.4f} (10,000 test images)")
    print(f"  artifacts      {fl.model_dir}/ (model.keras, best.keras, history.csv, "
          "metrics.json, logs/, checkpoints/)")


if __name__ == "__main__":
    from keras_caps.cli import run_main

    train_capsnet.define_flags()
    run_main(main)
