"""Images/s of candidate big teachers against M, side by side in one process (session 14)."""
import time, numpy as np, keras
from keras_caps.models import mcu_capsnet, deep_capsnet
from keras_caps.models.compiling import compile_capsnet

def big(c, d, bb, cls=16, ws=False):
    return deep_capsnet(c, d, 0, input_shape=(28, 28, 1), num_classes=10, backbone_filters=bb,
                        backbone_strides=(1, 2, 1, 2), primary_kernel=3, primary_strides=2,
                        class_dim=cls, weight_sharing=ws, name=f"big_{c}x{d}")
cands = {"M": lambda: mcu_capsnet("M"),
         "A48x16": lambda: big(48, 16, (32, 64, 128, 128)),
         "B32x16_256": lambda: big(32, 16, (32, 64, 128, 256)),
         "C64x16": lambda: big(64, 16, (32, 64, 96, 128)),}
x = np.random.rand(1280, 28, 28, 1).astype("float32"); y = keras.utils.to_categorical(np.random.randint(0, 10, 1280), 10)
models = {}
for k, f in cands.items():
    m = f(); compile_capsnet(m); m.fit(x[:128], y[:128], batch_size=64, verbose=0); models[k] = m
    print(k, f"{m.count_params():,}", flush=True)
for r in range(2):
    for k, m in models.items():
        t = time.perf_counter(); m.fit(x, y, batch_size=64, verbose=0); dt = time.perf_counter() - t
        print(r, k, f"{len(x)/dt:.0f} img/s", flush=True)
