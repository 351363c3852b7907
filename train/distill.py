r"""Distils a trained CapsNet teacher into a small CapsNet student (paper 000, Sec. 3.3-3.4).

Example (quick, 2 CPU cores; the teacher from train_capsnet):
    python -m train.distill --teacher=runs/small/model.keras --model_dir=runs/kd \
        --student_conv_filters=16 --student_primary_capsules=4 --student_primary_dim=8 \
        --student_class_dim=8 --temperature=3 --alpha=1 --beta=1 --transfer_init=true \
        --dataset=fashion_mnist --train_examples=10000 --epochs=3

Loss: alpha * T^2 * KL(p_t(T) || p_s(T)) + beta * margin (or cross-entropy), class scores
z = log(capsule length + eps) (see keras_caps.training.distillation). The student is a
`capsnet`; its kernel sizes and routing default to the teacher's so that --transfer_init can
copy the teacher's most important channels into it (keras_caps.training.transfer).

Dataset, optimisation and run flags are those of train_capsnet (--dataset, --data_dir,
--train_examples, --epochs, --batch_size, --optimizer, --learning_rate, --lr_policy, ...);
its model flags (--conv_filters, ...) are not used here.

Outputs under --model_dir: checkpoints/ (the whole distiller; an interrupted run resumes),
logs/ (TensorBoard), history.csv, best.keras (best student), model.keras (the student alone),
transfer_report.json (with --transfer_init) and metrics.json.
"""

from keras_caps.runs.cli import distill

if __name__ == "__main__":
    distill()
