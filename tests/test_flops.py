"""FLOP and parameter accounting against hand counts."""

import keras

from keras_caps.analysis import flops
from keras_caps.models import capsnet, deep_capsnet


def test_sabour_conv_and_votes_hand_counts():
    rows = {r["layer"]: r for r in flops.profile(capsnet(decoder=None))}
    # conv1: 20x20x256 outputs, 9x9x1 MACs each, plus bias
    assert rows["conv1"]["flops"] == 2 * 20 * 20 * 256 * 81 + 20 * 20 * 256
    assert rows["conv1"]["params"] == 20_992
    primary_conv = 2 * 6 * 6 * 256 * 81 * 256 + 6 * 6 * 256
    assert rows["primary_caps"]["flops"] == primary_conv + 1152 * (3 * 8 + 5)
    votes = 2 * 1152 * 10 * 8 * 16
    assert rows["class_caps"]["flops"] == votes + flops.routing_flops(1152, 10, 16, 3)
    assert rows["class_caps"]["params"] == 1_474_560
    assert sum(r["params"] for r in rows.values()) == 6_804_224


def test_routing_flops_grow_with_iterations():
    one = flops.routing_flops(100, 10, 16, 1)
    three = flops.routing_flops(100, 10, 16, 3)
    assert one == 100 * 10 * 16 + 10 * 16 + 10 * (3 * 16 + 5)
    # each extra iteration: softmax + weighted sum + squash + one agreement (+ b accumulation)
    per_iter = 4 * 1000 + 2 * 1000 * 16 + 10 * 53 + 2 * 1000 * 16
    assert three == one + 2 * per_iter + 1000


def test_conv_capsule_flops_scale_with_positions():
    a = deep_capsnet(4, 4, 1, input_shape=(28, 28, 1), backbone_filters=(8, 8, 8))
    rows = {r["layer"]: r for r in flops.profile(a)}
    n = 9 * 4
    per_position = 2 * n * 4 * 4 * 4 + flops.routing_flops(n, 4, 4, 3)
    assert rows["intermediate_caps_1"]["flops"] == 6 * 6 * per_position
    assert rows["bn1"]["flops"] == 2 * 28 * 28 * 8


def test_profile_covers_every_parameter_and_formats():
    model = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                    primary_dim=4, primary_kernel=3, class_dim=6, decoder="full")
    rows = flops.profile(model)
    assert sum(r["params"] for r in rows) == model.count_params()
    assert flops.total_flops(model) == sum(r["flops"] for r in rows) > 0
    table = flops.format_profile(rows)
    assert "| class_caps | DenseCapsule |" in table and table.splitlines()[-1].startswith("| total")
    assert isinstance(model, keras.Model)
