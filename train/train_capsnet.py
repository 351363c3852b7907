r"""Trains a CapsNet (Sabour), deep CapsNet (paper 003) or microcontroller CapsNet.

Example (quick, 2 CPU cores):
    python -m train.train_capsnet --dataset=fashion_mnist --model_dir=runs/small \
        --conv_filters=64 --primary_capsules=8 --epochs=3 --train_examples=10000
    python -m train.train_capsnet --model_dir=runs/mcu_s --preset=cpu_mcu
    python -m train.train_capsnet --model_dir=runs/mine --preset=cpu_mcu \
        --dataset=folder:my_images --image_size=32 --grayscale --stream   # larger than memory

The default recipe (chosen by `benchmarks/recipe_ablation.py`, BENCHMARKS.md "Training
recipe"): Adam with a cosine LR from --learning_rate to --lr_min and the data-dependent
capsule-length init of a fresh model (--init_length=0.5; 0 turns it off); random shifts
(--augment_shift) stay off by default: they cost accuracy at 4 and at 15 epochs. The recipe
before 2026-12-03 is `--lr_policy=fixed --lr_min=1e-4 --augment_shift=0
--init_length=0`.

Presets (--preset; explicit flags win):
    quick:    the S microcontroller CapsNet, 3 epochs on 20,000 images (minutes on 2 cores).
    cpu_mcu:  the S microcontroller CapsNet to convergence, 30 epochs on all images with 2-px
              shifts (the shipped reference model, `keras_caps.models.pretrained`).
    cpu:      the M microcontroller CapsNet (a teacher), 32 epochs on all images.
    full:     Sabour's CapsNet with the full decoder, 30 epochs (paper scale, for a GPU).

Outputs under --model_dir: checkpoints/ (an interrupted run resumes from its last epoch),
logs/ (TensorBoard), history.csv, metrics.json, best.keras and model.keras.
`--flagfile=FILE` reads flags from a file. --stream reads a folder:PATH dataset from disk
batch by batch (the same order, shifts and model as in memory; benchmarks/streaming.py).
"""

from keras_caps.runs.cli import train_capsnet

if __name__ == "__main__":
    train_capsnet()
