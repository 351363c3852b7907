"""Model cards of user-trained models (keras_caps.runs.model_card) and train's card."""

import json

import pytest

from keras_caps.runs.model_card import card_markdown, model_card, write_model_card


def _card(**overrides):
    values = dict(model="mcu_capsnet_S", dataset="folder:parts", class_names=["ok", "bent"],
                  input_shape=(24, 24, 1), training_data="800 training images",
                  evaluation="test split, 200 images", recipe="15 epochs",
                  accuracy={"float": 0.93, "int8_tflm": 0.92}, params=65792, int8_bytes=90000,
                  arena_bytes=49664, float_ops_in_int8=0, files={"int8 model": "m.tflite"},
                  command="python -m train.pipeline --model_dir=runs/parts")
    values.update(overrides)
    return model_card("parts", **values)


def test_card_has_the_shipped_cards_keys_and_round_trips(tmp_path):
    from keras_caps.models import pretrained_card

    card = _card()
    shipped = pretrained_card("fashion_mnist_mcu_s")
    shared = {"name", "model", "dataset", "input_shape", "training_data", "evaluation",
              "recipe", "accuracy", "params", "command", "date", "int8_bytes", "arena_bytes",
              "float_ops_in_int8"}
    assert shared <= set(card) and shared - {"name"} <= set(shipped) | {"name"}
    paths = write_model_card(str(tmp_path), card)
    assert json.loads(open(paths["json"]).read()) == card
    md = open(paths["md"]).read()
    assert "| int8, TFLite Micro (the microcontroller) | 0.9200 |" in md
    assert "ok, bent" in md and "90,000 bytes" in md and "`m.tflite`" in md
    assert card_markdown(card) == md


def test_card_rejects_unknown_accuracy_keys():
    with pytest.raises(ValueError, match="unknown accuracy keys \\['top5'\\]"):
        _card(accuracy={"float": 0.9, "top5": 0.99})


def test_train_writes_a_model_card(tmp_path):
    from keras_caps.runs import TrainConfig
    from keras_caps.runs.train import train
    from tests.synthetic import striped_images

    config = TrainConfig(model_dir=str(tmp_path / "run"), model="capsnet", conv_filters=8,
                         conv_kernel=3, primary_capsules=4, primary_dim=4, primary_kernel=3,
                         class_dim=6, decoder="none", epochs=1, batch_size=16, verbose=0)
    metrics = train(config, datasets_override=(striped_images(48), striped_images(16, 1)))
    card = json.loads((tmp_path / "run" / "model_card.json").read_text())
    assert card["accuracy"] == {"float": metrics["test_accuracy"]}
    assert card["params"] == metrics["params"] and card["input_shape"] == [12, 12, 1]
    assert card["class_names"][0] == "T-shirt/top" and len(card["class_names"]) == 10
    assert "1 epochs, batch 16" in card["recipe"] and card["model"] == "capsnet"
    assert (tmp_path / "run" / "model_card.md").exists()
