#!/bin/sh
# Choosing T / alpha for the converged S student on a validation split (the last 10,000
# training images held out), never on the test split. Three arms, 30 epochs each, one after
# the other (about an hour on 2 CPU cores). Run from the repository root:
#     sh benchmarks/results/kd_validation/run.sh
# Caveat: the shipped M teacher was trained on all 60,000 training images, the held-out ones
# included, so the kd arms may profit from a teacher that has seen the validation images.
set -e
out=benchmarks/results/kd_validation
teacher=keras_caps/pretrained_models/fashion_mnist_mcu_m.keras
py=".venv/bin/python -m benchmarks.kd_convergence --validation_examples=10000 --epochs=30"
$py --arms=scratch --out=$out/scratch
$py --arms=kd --teacher=$teacher --temperature=3 --alpha=0.1 --out=$out/t3_a0.1
$py --arms=kd --teacher=$teacher --temperature=1 --alpha=1 --out=$out/t1_a1
