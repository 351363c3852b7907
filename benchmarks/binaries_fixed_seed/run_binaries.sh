#!/usr/bin/env bash
# Tiny fixed-seed runs of every binary (issue 16 before/after check).
# usage: run_binaries.sh OUT_ROOT   (run from the repository root; Fashion-MNIST from
#        /usr/share/datasets/fashion-mnist). Each command's stdout/stderr go to OUT_ROOT/logs/.
set -u
OUT=${1:?OUT_ROOT}
PY=${PY:-.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=3 CUDA_VISIBLE_DEVICES=""
mkdir -p "$OUT/logs"
D="$OUT/runs"
SMALL="--train_examples=256 --test_examples=128 --verbose=0"
TINY_CAPS="--model=capsnet --conv_filters=8 --primary_capsules=4 --primary_dim=4 --class_dim=6 --decoder=none"
run() {  # name, module, args...
  local name=$1; shift
  local t0=$(date +%s.%N)
  "$PY" -m "$@" >"$OUT/logs/$name.out" 2>"$OUT/logs/$name.err"
  local rc=$?
  printf '%-22s rc=%s %6.1fs\n' "$name" "$rc" "$(echo "$(date +%s.%N) - $t0" | bc)" | tee -a "$OUT/logs/summary.txt"
}
rm -f "$OUT/logs/summary.txt"
run train       train.train_capsnet --model_dir=$D/train $TINY_CAPS $SMALL --epochs=1 --batch_size=32
run train_quick train.train_capsnet --model_dir=$D/train_quick --preset=quick $SMALL --epochs=1
run demo        train.demo --model_dir=$D/demo $SMALL --epochs=1 --conv_filters=8 --primary_capsules=4 --decoder=none
run distill     train.distill --model_dir=$D/distill --teacher=$D/train/model.keras $SMALL --epochs=1 --batch_size=32 \
                 --student_conv_filters=4 --student_primary_capsules=2 --student_primary_dim=4 --student_class_dim=4 --transfer_init
run finetune    train.finetune --model_dir=$D/finetune --pretrained=$D/train/model.keras $SMALL --epochs=2 --batch_size=32 \
                 --unfreeze_schedule=auto --l2=1e-4
run prune       train.prune --model_dir=$D/prune --preset=quick $SMALL --epochs=1 --ccm_epochs=1 --retrain_epochs=1 --ci_batches=1 \
                 --run_eagerly=false
run quantize    train.quantize --model_path=$D/train/model.keras --output_dir=$D/quantize --approach=all --calibration_batches=1 \
                 --search_split='test[:128]' --test_split='test[128:256]' --max_bits=8 --tolerance=1 --verbose=0
run pipeline    train.pipeline --model_dir=$D/pipeline --preset=quick $SMALL --epochs=1 --student_epochs=1 --ccm_epochs=1 \
                 --retrain_epochs=1 --ci_batches=1 --conv_filters=16 --primary_capsules=4 --search_examples=64 --tflite_examples=32 \
                 --latency_repeats=2 --calibration_batches=1 --batch_warmup_epochs=0 --max_bits=8
run kd_study    train.kd_study --model_dir=$D/kd_study --preset=quick $SMALL --teacher_epochs=1 --epochs=1 \
                 --conv_filters=16 --primary_capsules=4 --kd_methods=baseline,tl,kd,kd_tl --latency_repeats=2 --latency_batch=8
run fastrcaps   train.fastrcaps_study --model_dir=$D/fastrcaps --preset=quick $SMALL --epochs=1 --policies=fixed,one_cycle,warmadabatch \
                 --batch_size=32 --batch_warmup_size=16 --batch_exponent=5
run vanishing   train.vanishing_study --model_dir=$D/vanishing --preset=quick $SMALL --epochs=1 --ccm_epochs=1 --retrain_epochs=1 \
                 --deep_epochs=1 --max_intermediate=1 --pruning_ratios=0,0.25 --recovery_ratios=0.25 --ci_batches=1 --dead_batches=1
# tflite tools on the trained tiny model
run export_int8     tflite.export --model=$D/train/model.keras --out=$D/tflite/model_int8.tflite --mode=int8 --num_calibration=32 --c_source=$D/tflite/micro
run export_pot      tflite.export --model=$D/train/model.keras --out=$D/tflite/model_int8_pot.tflite --mode=int8_pot --num_calibration=32
run export_float    tflite.export --model=$D/train/model.keras --out=$D/tflite/model_float32.tflite --mode=float32
run evaluate_tflite tflite.evaluate --tflite=$D/tflite/model_int8.tflite --max_examples=64 --latency_repeats=2
run evaluate_model  tflite.evaluate --model=$D/train/model.keras --modes=float32,int8,int8_pot --max_examples=64 \
                     --calibration_examples=64 --latency_repeats=2 --report=$D/tflite_report/report.md
run compare         tflite.compare $D/tflite/model_int8.tflite --images=4
run audit           tflite.audit $D/tflite/model_int8_pot.tflite --int8 --pot
run c_source        tflite.c_source $D/tflite/model_int8.tflite --out=$D/tflite/c_source --dataset=fashion_mnist
