r"""Distillation / transfer ablation (paper 000): one teacher, one small student trained 4 ways.

    python -m train.kd_study --model_dir=runs/kd_study --preset=quick
    python -m train.kd_study --model_dir=runs/kd_study_full --preset=full
    python -m train.kd_study --model_dir=runs/kd_sweep --preset=quick \
        --batch_sizes=32,64,128 --lr_policies=fixed,one_cycle       # tables 5-14 style sweep

Methods (the same student architecture each time):
    baseline  student trained from scratch with the margin loss;
    tl        student initialised from the teacher (init_student_from_teacher: the teacher's
              most important channels / capsule types by L1 norm), then margin training;
    kd        student from scratch trained with alpha * T^2 * KL + beta * margin;
    kd_tl     both: initialised from the teacher, then distilled.
Per method (and per batch size / LR policy of the sweep): test accuracy, parameters, forward
FLOPs per image of the inference model (keras_caps.analysis.flops.total_flops(classifier)),
training time, inference latency (median ms of `predict_on_batch` of the float Keras
classifier on one --latency_batch batch, over --latency_repeats interleaved rounds after 3
warm-up rounds, all models timed side by side after training), and with --int8_tflite (the
default) each model's int8 TFLite accuracy, size and single-image LiteRT latency (1 thread),
final training loss (for kd / kd_tl the distillation total, not comparable with margin-only
rows), epochs. Writes <model_dir>/study.md and study.json; the teacher is in
<model_dir>/teacher/ (or --teacher), each student run in <model_dir>/<method>_b<B>_<policy>/,
and every run resumes.

The teacher is described by train_capsnet's model flags (--conv_filters, --primary_capsules,
--primary_dim, --class_dim, --decoder, ...) and trained --teacher_epochs; the student by
distill's --student_* flags and trained --epochs. Presets (explicit flags win):
    quick (2 CPU cores, ~10-15 min): Fashion-MNIST, 10,000 training / 5,000 test images;
           teacher conv 64, 8 primary types x 8D, 10 x 16D, no decoder, 2 epochs;
           student conv 16, 4 types x 8D, 10 x 8D, 3 epochs; batch 64, Adam 1e-3, T = 3.
    full:  all 60,000 / 10,000 images; Sabour teacher (conv 256, 32 x 8D, 10 x 16D, full
           decoder) 30 epochs; student conv 64, 8 x 8D, 10 x 16D, 30 epochs; batch 64.
"""

from keras_caps.runs.cli import kd_study

if __name__ == "__main__":
    kd_study()
