r"""Vanishing activations in deep CapsNets and channel pruning (paper 003, Sec. 4).

    python -m train.vanishing_study --model_dir=runs/vanishing --preset=quick
    python -m train.vanishing_study --model_dir=runs/vanishing_full --preset=full

(a) Pruning ratios: the base CapsNet[C, D] (no IntermediateCaps) is trained, retrained with
    CCM, scored with CHIP, and pruned + retrained at each --pruning_ratios value (Table 1).
(b) Depth: IntermediateCaps are added one at a time (I = 1 .. --max_intermediate), each model
    trained from scratch for --deep_epochs, until the best test accuracy falls to
    --collapse_accuracy or below (Table 2). At the collapse depth (or the deepest one tried
    when nothing collapsed) the study then takes the backbone + PrimaryCaps of the pruned base
    models of (a) at each --recovery_ratios value, puts I fresh IntermediateCaps (with the
    pruned C) and a fresh ClassCaps on them and trains again (Table 3, Sec. 3.5). A 0 in
    --recovery_ratios grafts the unpruned base the same way (the control for grafting).
Dead capsules (activation |mean output| <= 0.01) are logged per layer and epoch on
--dead_batches test batches; heatmaps of the last epoch are written per run (figures 2/4/6).

Initialisation of the IntermediateCaps: the library's "capsule" initializer (gain 3, std
3 J / sqrt(N D)) is self-normalising, so deep stacks do not vanish at initialisation and the
collapse may need many layers. --init_gain=g uses the same form with gain g (activations
vanish with depth for g < 2, independent of C); --init_std=s uses a fixed std independent of C
and D, like framework defaults: then a wider layer (larger C, uniform first coupling 1/C) has
smaller activations, which is the mechanism behind the paper's observation that pruning C
lets the network go deeper. What the quick runs showed (Fashion-MNIST subset, 2 epochs):
from scratch with init_std 0.5, I = 5 is on the edge (one random draw collapsed to chance,
another trained to 0.62), while a trained backbone has much shorter primary capsules (mean
length ~0.2 against ~0.5 at initialisation), so fresh IntermediateCaps grafted on it start
two-thirds dead and stay dead. --graft_length (default 0.5) therefore scales the grafted fresh
capsule layers to that mean capsule length on training images first
(keras_caps.training.length_init, LSUV-style); --graft_length=0 reproduces the dead graft.
Compare the grafted PR 0 control with the pruned grafts.

Presets (explicit flags win):
    quick: Fashion-MNIST 5,000 / 1,000, C=8, D=4, backbone (16, 32, 32), class_dim 8,
           init_std 0.5 (at initialisation C=8 is dead from ~4-5 layers, C=6 from ~6-7),
           2 epochs per training stage (1 for CCM), I up to 6, ratios 0 .. 0.75.
    full:  CIFAR-10 as in the paper: CapsNet[C=20, D=8], backbone (64, 128, 128),
           class_dim 16, 30 epochs per stage, I up to 10, the library initializer.
Outputs in --model_dir: study.md, study.json, dead_capsules.png, heatmaps/<run>/*.png, and
one resumable folder per training run.
"""

from keras_caps.runs.cli import vanishing_study

if __name__ == "__main__":
    vanishing_study()
