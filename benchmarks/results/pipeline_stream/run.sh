#!/bin/sh
# The quick pipeline (make demo's preset; pruning off unless PRUNING_RATIO is set) on a folder
# of PNG files, with the images in memory and with --stream (teacher, student and, with
# pruning, the prune stage trained from disk). The folder: the first 20,000 training and 2,000
# test Fashion-MNIST images (benchmarks.streaming's writer).
#   sh benchmarks/results/pipeline_stream/run.sh                       # session 7
#   PRUNING_RATIO=0.25 OUT=runs/pipeline_stream_prune sh benchmarks/results/pipeline_stream/run.sh
set -e
mkdir -p runs
DATA=${DATA:-/tmp/fmnist_png}
OUT=${OUT:-runs/pipeline_stream}
PRUNING_RATIO=${PRUNING_RATIO:-0}
export TF_CPP_MIN_LOG_LEVEL=2
[ -d "$DATA/train" ] || .venv/bin/python -c "
from keras_caps import data
from benchmarks.streaming import write_png_folder
names = data.info('fashion_mnist').class_names
for split, n in (('train', 20000), ('test', 2000)):
    x, y = data.load_arrays('fashion_mnist', split, max_examples=n)
    write_png_folder('$DATA', x, y, names, split)
"
for mode in memory stream; do
  flag=""; [ $mode = stream ] && flag="--stream"
  start=$(date +%s)
  .venv/bin/python -m train.pipeline --preset=quick --dataset=folder:$DATA --pruning_ratio=$PRUNING_RATIO \
      --model_dir=$OUT/$mode $flag > $OUT.$mode.log 2>&1
  echo "$mode: $(( $(date +%s) - start )) s"
done
