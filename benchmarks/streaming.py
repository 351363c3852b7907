r"""What `train_capsnet --stream` costs: a folder dataset trained from disk vs. from memory.

    python -m benchmarks.streaming --train_examples=20000 --test_examples=2000 \
        --out=benchmarks/results/streaming

Writes the first --train_examples / --test_examples Fashion-MNIST images as PNG files into a
temporary folder:PATH (PATH/train/<class>/, PATH/test/<class>/), then trains the S
microcontroller CapsNet on it with the shipped model's recipe (`train_capsnet
--preset=cpu_mcu`: batch 64, cosine LR, shifts of 2 px, capsule-length init) for --epochs,
once with the images in memory and once streamed (`--stream`), --repeats times each,
interleaved (memory, stream, memory, stream, ...) so both see the same load. Reports the
median training seconds per epoch of each (Keras fit epochs, the input pipeline included),
their ratio, and whether both trained the same model (the same losses and test accuracy).
Writes <out>/streaming.json and <out>/streaming.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile


def write_png_folder(root, images, labels, class_names, split):
    """root/<split>/<class>/<i>.png for every image (uint8 (N, H, W[, 1]))."""
    from PIL import Image

    for name in class_names:
        os.makedirs(os.path.join(root, split, name.replace("/", "-")), exist_ok=True)
    for i, (x, y) in enumerate(zip(images, labels)):
        name = class_names[int(y)].replace("/", "-")
        Image.fromarray(x.reshape(x.shape[:2])).save(
            os.path.join(root, split, name, f"{i:06d}.png"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_examples", type=int, default=20000)
    parser.add_argument("--test_examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/streaming")
    args = parser.parse_args(argv)

    from keras_caps import data
    from keras_caps.data_sources import CLASS_NAMES
    from keras_caps.io_utils import markdown_table, write_json, write_text
    from keras_caps.runs import TrainConfig
    from keras_caps.runs.train import train

    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "fashion_png")
        for split, n in (("train", args.train_examples), ("test", args.test_examples)):
            x, y = data.load_arrays("fashion_mnist", split, max_examples=n)
            write_png_folder(root, x, y, CLASS_NAMES["fashion_mnist"], split)
        runs = {"memory": [], "stream": []}
        for r in range(args.repeats):
            for mode in runs:
                config = TrainConfig.from_preset(
                    "cpu_mcu", model_dir=os.path.join(tmp, f"{mode}_{r}"),
                    dataset=f"folder:{root}", epochs=args.epochs, stream=mode == "stream",
                    verbose=0)
                m = train(config)
                runs[mode].append(m)
                print(mode, r, [round(h["time_s"], 1) for h in m["history"]],
                      round(m["test_accuracy"], 4), flush=True)
    per_epoch = {mode: statistics.median(h["time_s"] for m in ms for h in m["history"])
                 for mode, ms in runs.items()}
    same = all(abs(a["loss"] - b["loss"]) <= 1e-4 * abs(b["loss"])
               for a, b in zip(runs["stream"][0]["history"], runs["memory"][0]["history"]))
    result = {
        "train_examples": args.train_examples, "test_examples": args.test_examples,
        "epochs": args.epochs, "repeats": args.repeats, "model": "mcu_capsnet S (cpu_mcu recipe)",
        "seconds_per_epoch": per_epoch,
        "images_per_s": {k: args.train_examples / v for k, v in per_epoch.items()},
        "stream_over_memory": per_epoch["stream"] / per_epoch["memory"],
        "test_accuracy": {k: [m["test_accuracy"] for m in ms] for k, ms in runs.items()},
        "same_losses": bool(same),
        "cpu_count": os.cpu_count(),
    }
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "streaming.json"), result)
    rows = [dict(mode=k, s=per_epoch[k], ips=result["images_per_s"][k],
                 acc=result["test_accuracy"][k][0]) for k in runs]
    table = markdown_table(rows, [("mode", "data", "s"), ("s", "s / epoch (median)", ".1f"),
                                  ("ips", "train images / s", ",.0f"),
                                  ("acc", "test accuracy", ".4f")])
    write_text(os.path.join(args.out, "streaming.md"),
               f"{table}\n\nstream / memory = {result['stream_over_memory']:.2f}; the same losses "
               f"epoch by epoch: {same}.\n")
    print(table)
    return result


if __name__ == "__main__":
    main()
