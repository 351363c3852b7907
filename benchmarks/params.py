r"""Parameter and FLOP counts of CapsNet variants (weight sharing, reduced decoder, students).

    python -m benchmarks.params [--out=benchmarks/results/params.json]

Counts are exact (no training, no timing): forward FLOPs per image from
keras_caps.analysis.flops (multiply-add = 2 FLOPs, routing included).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_caps.analysis.flops import total_flops  # noqa: E402
from keras_caps.io_utils import markdown_table, write_json  # noqa: E402
from keras_caps.models import capsnet, classifier, deep_capsnet, has_decoder  # noqa: E402

VARIANTS = {
    "Sabour CapsNet, full decoder": dict(),
    "+ weight sharing (FasTrCaps Alg. 4)": dict(weight_sharing=True),
    "+ reduced decoder (16 inputs)": dict(decoder="reduced"),
    "+ weight sharing + reduced decoder": dict(weight_sharing=True, decoder="reduced"),
    "Sabour CapsNet, no decoder": dict(decoder=None),
    "demo student (conv 64, 8 x 8D primary), reduced decoder": dict(
        conv_filters=64, primary_capsules=8, decoder="reduced"),
}


def measure():
    rows = []
    for name, kwargs in VARIANTS.items():
        model = capsnet(**kwargs)
        decoder = model.get_layer("decoder").count_params() if has_decoder(model) else 0
        rows.append({"model": name, "params": model.count_params(), "decoder_params": decoder,
                     "inference_flops": total_flops(classifier(model))})
    deep = deep_capsnet(20, 8, 6, input_shape=(28, 28, 1))
    rows.append({"model": "deep_capsnet C=20 D=8 I=6 (28x28)", "params": deep.count_params(),
                 "decoder_params": 0, "inference_flops": total_flops(deep)})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results/params.json")
    args = parser.parse_args()
    rows = measure()
    print(markdown_table(rows, [("model", "model", "s"), ("params", "parameters", ",d"),
                                ("decoder_params", "decoder", ",d"),
                                ("inference_flops", "inference FLOPs / image", ",d")]))
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
