r"""Channel pruning of a (deep) CapsNet, the flow of paper 003 (Sec. 3.4-3.5).

    1. base:    train the base model with the margin loss (or --base_model=PATH)
    2. ccm:     retrain it with margin - alpha * sum_l CCM_l (backbone ReLU maps + PrimaryCaps)
    3. scores:  CHIP channel-independence scores of every backbone / PrimaryCaps channel
    4. prune:   drop the lowest-CI channels at --pruning_ratio (counts rounded up to a multiple
                of D, PrimaryCaps by whole capsule types), rebuild the smaller model with a
                fresh ClassCaps (or --class_caps=transfer)
    5. retrain: the pruned model with the margin loss; best.keras keeps the best epoch
    6. report:  params, FLOPs and accuracy before and after (metrics.json, report.md)

Examples:
    python -m train.prune --model_dir=runs/prune --preset=quick
    python -m train.prune --model_dir=runs/prune_full --preset=full --pruning_ratio=0.25
    python -m train.prune --model_dir=runs/p2 --preset=quick --base_model=runs/prune/base/best.keras

Presets (explicit flags win):
    quick: for 2 CPU cores: Fashion-MNIST 5,000 train / 1,000 test, deep_capsnet C=8, D=4,
           backbone (16, 32, 32), class_dim 8, no decoder, 2 base + 1 CCM + 2 retraining epochs.
    full:  the paper's CIFAR-10 set-up: CapsNet[C=20, D=8] on all 50k/10k images, backbone
           (64, 128, 128), class_dim 16, 30 + 10 + 30 epochs, CI over every training batch.
Accuracy is on the test split (as in the paper, which keeps the best test epoch). Each stage
lives in its own folder (base/, ccm/, pruned/) and resumes; scores.json caches the CI scores.
"""

from keras_caps.runs.cli import prune

if __name__ == "__main__":
    prune()
