r"""Fine-tunes a trained CapsNet layer by layer, optionally on a new task (paper 000, 3.5.1).

Example (a distilled student, fine-tuned on MNIST with a fresh 10-class head, last layers
first, then earlier layers one stage per epoch with the LR halved per stage):
    python -m train.finetune --pretrained=runs/kd/model.keras --dataset=mnist \
        --model_dir=runs/ft --num_classes=10 --unfreeze_schedule=auto --epochs=3 \
        --learning_rate=5e-4 --l2=1e-4

--pretrained names the model file (train_capsnet already owns --model, the architecture
choice, and binaries share one flag namespace). --num_classes different from the model's
replaces its class-capsule head (keras_caps.training.transfer.replace_head; every other
weight is kept). --unfreeze_schedule: "auto" (class capsules + decoder, then each earlier
layer, --unfreeze_epochs_per_stage epochs per stage), "none" (train everything), or explicit
"EPOCH:LAYER,LAYER;EPOCH:LAYER..." such as "0:class_caps;2:primary_caps;4:conv1" (0-based
epochs; layers listed nowhere stay frozen). The learning rate is multiplied by
--unfreeze_lr_factor at each stage (a fixed LR: with the default --lr_policy=cosine the
staged fixed LR is used instead, and other policies need --unfreeze_lr_factor=1). --l2 adds lambda * sum(w^2)
over the kernels (eq. 16).

Dataset, optimisation and run flags are train_capsnet's. Outputs under --model_dir as for
train_capsnet: checkpoints/ (resumable), logs/, history.csv, best.keras, model.keras,
metrics.json.
"""

from keras_caps.runs.cli import finetune

if __name__ == "__main__":
    finetune()
