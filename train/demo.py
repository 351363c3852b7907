r"""`make demo`: trains a small CapsNet on real Fashion-MNIST with the quick preset.

    python -m train.demo [--model_dir=runs/demo] [--epochs=2] [--train_examples=60000]

Reads Fashion-MNIST from /usr/share/datasets/fashion-mnist (Debian: apt-get install
dataset-fashion-mnist), --data_dir, or TFDS. Prints the test accuracy and where the artifacts
are. A re-run resumes (or, when finished, just reports) the run in --model_dir.
"""

from keras_caps.runs.cli import demo

if __name__ == "__main__":
    demo()
