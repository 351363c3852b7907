"""A/B of the int8 export form of the votes: export the shipped S model (or --model) with the
code of the checkout this runs in; write the flatbuffer to argv[1]."""
import sys

from keras_caps import data
from keras_caps.lite.audit import audit
from keras_caps.lite.export import convert
from keras_caps.models import pretrained

name = sys.argv[2] if len(sys.argv) > 2 else "fashion_mnist_mcu_s"
model = pretrained(name)
train_images, _ = data.load_arrays("fashion_mnist", "train", max_examples=2000)
fb = convert(model, "int8", train_images)
rep = audit(fb, int8=True)
print("audit ok", rep.ok, rep.problems)
open(sys.argv[1], "wb").write(fb)
