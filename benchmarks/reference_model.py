r"""Measures a trained model and writes it as a shipped reference model with its model card.

    python -m benchmarks.reference_model --model=runs/mcu_s/best.keras \
        --name=fashion_mnist_mcu_s --command="python -m train.train_capsnet ..."

Exports the int8 flatbuffer (calibrated on 200 training images, `keras_caps.lite.export`),
checks it with `keras_caps.lite.audit`, measures the TFLite Micro arena, and evaluates float
Keras, int8 LiteRT and int8 TFLite Micro accuracy on the whole test split (and on its first
1,000 images, which the tests check against). Writes keras_caps/pretrained_models/<name>.keras
(no optimizer state), <name>_int8.tflite and <name>.json (the card), loadable with
`keras_caps.models.pretrained`.
"""

from __future__ import annotations

import datetime
import json

from absl import app, flags

flags.DEFINE_string("model", None, "Trained .keras model.")
flags.DEFINE_string("name", None, "Reference name, e.g. fashion_mnist_mcu_s.")
flags.DEFINE_string("command", None, "The command that trained it (for the card).")
flags.DEFINE_string("recipe", "", "One line on the recipe (for the card).")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset (calibration and evaluation).")
flags.DEFINE_string("training_data", "all 60,000 training images", "What it was trained on.")
flags.DEFINE_string("folder", None, "Output folder (default: the package's pretrained_models/).")
flags.mark_flags_as_required(["model", "name", "command"])

FLAGS = flags.FLAGS


def main(_):
    import keras

    from benchmarks.int8_measure import int8_measurements, tflm_accuracy
    from keras_caps import data
    from keras_caps.analysis.flops import total_flops
    from keras_caps.lite.evaluate import accuracy as litert_accuracy
    from keras_caps.lite.evaluate import keras_accuracy
    from keras_caps.models.heads import classifier
    from keras_caps.models.reference import write_reference

    model = keras.saving.load_model(FLAGS.model, compile=False, safe_mode=True)
    train_images, _ = data.load_arrays(FLAGS.dataset, "train", max_examples=2000)
    test = data.load_arrays(FLAGS.dataset, "test")
    int8 = int8_measurements(model, train_images)
    if not int8["audit_ok"]:
        raise SystemExit(f"the int8 export of {FLAGS.model} fails the audit")
    flatbuffer = int8["flatbuffer"]

    def accuracies(images, labels):
        return {"float": keras_accuracy(model, images, labels),
                "int8_litert": litert_accuracy(flatbuffer, images, labels),
                "int8_tflm": tflm_accuracy(flatbuffer, images, labels, int8["arena_bytes"])}

    head = classifier(model)
    card = {
        "name": FLAGS.name, "model": model.name, "dataset": FLAGS.dataset,
        "training_data": FLAGS.training_data, "recipe": FLAGS.recipe,
        "command": FLAGS.command, "date": datetime.date.today().isoformat(),
        "params": int(model.count_params()), "flops": int(total_flops(head)),
        "input_shape": list(head.input.shape[1:]),
        "int8_bytes": int8["bytes"], "arena_bytes": int8["arena_bytes"],
        "float_ops_in_int8": int8["audit_problems"],
        "accuracy": accuracies(*test), "accuracy_first_1000": accuracies(
            test[0][:1000], test[1][:1000]),
        "evaluation": f"{FLAGS.dataset} test split, {len(test[0])} images; int8 input "
                      "quantized from image / 255",
    }
    write_reference(model, FLAGS.name, card, flatbuffer, FLAGS.folder)
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    app.run(main)
