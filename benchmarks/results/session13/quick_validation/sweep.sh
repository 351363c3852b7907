#!/bin/bash
# quick-preset student settings chosen on a validation split: train on train[:20000] (as the
# preset), score on train[20000:30000] (1,000 for the PoT search, 9,000 for the int8 rows)
cd /work/main
export TF_CPP_MIN_LOG_LEVEL=2
R=/work/runs/val13
V="--preset=quick --train_examples=30000 --validation_examples=10000 --tflite_examples=9000"
[ -f $R/base/done_all ] || { /usr/bin/time -f "%e s" .venv/bin/python -m train.pipeline $V --model_dir=$R/base > $R/base.log 2>&1 && touch $R/base/done_all; }
T=$R/base/teacher/best.keras
run() { name=$1; shift; [ -f $R/$name/done_all ] || { /usr/bin/time -f "%e s" .venv/bin/python -m train.pipeline $V --teacher=$T --model_dir=$R/$name "$@" > $R/$name.log 2>&1 && touch $R/$name/done_all; }; }
run alpha0 --alpha=0
run ep12 --student_epochs=12
run alpha0_ep12 --alpha=0 --student_epochs=12
run t1 --temperature=1
