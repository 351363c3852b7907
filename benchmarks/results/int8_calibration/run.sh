#!/bin/sh
# int8 export of the cpu pipeline's S student with 500 / 2000 / 8000 calibration images; all 10,000 test images
cd /work/main
export TF_CPP_MIN_LOG_LEVEL=2
m=/work/runs/pipeline_cpu/student/best.keras
for n in 500 2000 8000; do
  .venv/bin/python -m tflite.export --model=$m --mode=int8 --num_calibration=$n --out=/work/runs/calib/s_$n.tflite > /work/runs/calib/export_$n.log 2>&1
  .venv/bin/python -m tflite.evaluate --tflite=/work/runs/calib/s_$n.tflite --dataset=fashion_mnist --latency_repeats=5 > /work/runs/calib/eval_$n.log 2>&1
done
echo done
