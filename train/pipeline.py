r"""One command from a dataset to a microcontroller model.

    python -m train.pipeline --model_dir=runs/pipeline --preset=quick
    python -m train.pipeline --model_dir=runs/pipeline_cpu --preset=cpu     # 2 CPU cores, ~1 h
    python -m train.pipeline --model_dir=runs/pipeline_cpu --preset=cpu \
        --teacher=pretrained:fashion_mnist_mcu_m         # take the shipped teacher: ~20 min
    python -m train.pipeline --model_dir=runs/pipeline_full --preset=full   # a GPU
    python -m train.pipeline --model_dir=runs/pipeline --stages=quantize,export,evaluate

Stages (each writes its artifacts under --model_dir/<stage>/ and a done.json when finished):

    teacher   train_capsnet (quick / full: the FasTrCaps WarmAdaBatch policy, small-batch
              warm-up then a large batch with a cosine LR; cpu: mcu_capsnet M, 32 epochs)
              -> teacher/best.keras; with --teacher=MODEL.keras or pretrained:NAME the given
              model is copied there and scored instead of training one
    student   quick: distillation into the S microcontroller CapsNet; cpu: the S CapsNet
              initialised from the teacher's conv1-3 (transfer, +0.5 points) and trained on
              the labels alone (alpha 0: KD cost it 1 point at convergence); full:
              transfer (the teacher's most important channels) + distillation into the small
              weight-shared student -> student/best.keras
    prune     CCM retraining, CHIP scores, pruning at --pruning_ratio, retraining
              -> prune/pruned/best.keras; --pruning_ratio=0 (the cpu preset's default:
              pruning cost the converged S student 2.4 points) passes the student on unpruned
    quantize  power-of-two progressive bit-width search (approach --approach) on the pruned
              (or unpruned) student -> quantize/spec_<A|B|C>.json, report.md
    export    fully integer int8 TFLite of that student, and the same with every scale
              a power of two (tflite.pot), each with its op audit
              -> export/model_int8.tflite, model_int8_pot.tflite, audit_*.json, labels.txt
    evaluate  LiteRT and TFLite Micro accuracy, latency, TFLite Micro arena, TFLM-vs-LiteRT
              agreement, confusion matrices -> evaluate/evaluation.json
    report    report.md, summary.json and PNGs (accuracy vs size, the LR/batch schedule, the
              int8 models' confusion matrices with the class names, and dead-capsule heatmaps
              of the teacher when it is a deep_capsnet)

Data: --dataset takes every spelling of keras_caps.data_sources (a built-in name, any TFDS
image-classification dataset, folder:PATH, npz:PATH) with --image_size, --grayscale /
--channels and --test_fraction; the models take the data's image shape and class count, and
the int8 export calibrates on the same training images, e.g.
    python -m train.pipeline --model_dir=runs/mine --dataset=folder:my_images \
        --image_size=24 --grayscale
(the quick preset reads at most 20,000 training images and the whole test split). A folder larger than
memory: --stream trains the teacher, the student and the pruned student from disk, batch by
batch; the quantize, export and evaluate stages read the first 2,000 training images (more
when calibration or QAT needs them) and the test split into memory.

A stage is marked done (done.json) only when the stages it reads from are done and every
file it names in its result exists and is not empty; `report` is marked done only when every
other stage is (a partial report is written but redone later), and with no finished stage at
all it is an error. A re-run skips stages with a done.json and resumes an interrupted training stage from its
checkpoint. --stages runs a subset (their inputs must exist from an earlier run). Every flag
of train_capsnet / distill / prune / quantize is accepted; the preset sets the defaults below
and explicit flags win.

The quantize stage's mixed bit-width spec is a simulation (memory and accuracy of a
fixed-point implementation); the exported int8_pot model is 8-bit everywhere with the
converter's scales rounded up to powers of two.
"""

from keras_caps.runs.cli import pipeline

if __name__ == "__main__":
    pipeline()
