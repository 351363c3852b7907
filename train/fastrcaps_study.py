r"""FasTrCaps study: the same CapsNet trained under each LR / batch-size policy.

    python -m train.fastrcaps_study --model_dir=runs/fastrcaps --preset=quick
    python -m train.fastrcaps_study --model_dir=runs/fastrcaps_full --preset=full --dataset=mnist

Per policy: max test accuracy, the epoch reaching it, epochs and wall time to reach the
fixed-LR baseline's max accuracy, parameters. Writes <model_dir>/study.md, study.json,
accuracy.png, lr.png, batch.png; each policy's run is in <model_dir>/<policy>/ and resumes.

Presets (paper 002, Sec. III-IV: Adam, lr 1e-3 fixed baseline; exponential 0.96 / 2,000 steps;
one-cycle 1e-4 -> 1e-3 annealed to 1e-5; warm restarts 1e-4..1e-3 with 1-epoch cycles;
AdaBatch / WarmAdaBatch batch 1 for 3 epochs then 16; baseline batch 16; 30 epochs):
    full:  Sabour CapsNet with the full decoder, the paper's settings, all 60k/10k examples.
    quick: for 2 CPU cores: a small CapsNet (conv 32, 8 x 8D primary, 10 x 16D, no decoder),
           10,000 training / 5,000 test examples, 5 epochs, batch sizes scaled x8
           (16 -> 128, 1 -> 8), warm-up 1 epoch (10% of the run, as 3 of 30 in the paper),
           exponential decay steps scaled so the decay per epoch matches the paper's.
Explicit flags override the preset.
"""

from keras_caps.runs.cli import fastrcaps_study

if __name__ == "__main__":
    fastrcaps_study()
