"""Folder datasets streamed from disk (keras_caps.data_sources.StreamedSplit, --stream): the same
images, order and training as in memory; the bad inputs named as they stream."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from keras_caps import data_sources
from keras_caps.data.catalog import DataFormatError
from keras_caps.runs import (
    DistillConfig,
    FastrcapsStudyConfig,
    KdStudyConfig,
    PipelineConfig,
    PruneConfig,
    QuantizeConfig,
    TrainConfig,
    VanishingConfig,
)
from keras_caps.runs.config import ConfigError
from keras_caps.runs.distill import distill
from keras_caps.runs.fastrcaps_study import fastrcaps_study
from keras_caps.runs.kd_study import kd_study
from keras_caps.runs.pipeline import pipeline
from keras_caps.runs.prune import prune
from keras_caps.runs.quantize import quantize
from keras_caps.runs.train import train
from keras_caps.runs.vanishing_study import vanishing_study
from tests.data_fixtures import write_folder, write_npz

TINY = dict(conv_filters=8, conv_kernel=3, primary_capsules=4, primary_dim=4, primary_kernel=3,
            class_dim=6, decoder="none", epochs=2, batch_size=8, verbose=0, augment_shift=2)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """3 classes x 12 grayscale 16x16 PNGs (no test/ folder: 20 % held out per class)."""
    return write_folder(tmp_path_factory.mktemp("stream") / "shapes", per_class=12, size=16)


def test_a_streamed_split_has_the_images_order_and_labels_of_the_in_memory_one(shapes):
    for split in ("train", "test", "train[:10]"):
        images, labels, names = data_sources.load_folder(shapes, split)
        streamed = data_sources.folder_split(shapes, split)
        assert len(streamed) == len(labels) and streamed.class_names == names
        assert streamed.image_shape == (16, 16, 1) and not streamed.resize
        np.testing.assert_array_equal(streamed.labels, labels)
        x, y = streamed.arrays()
        np.testing.assert_array_equal(x, images)
        np.testing.assert_array_equal(y, labels)
    small, _, _ = data_sources.load_folder(shapes, "train", image_size=10, channels=3)
    resized = data_sources.folder_split(shapes, "train", image_size=10, channels=3)
    assert resized.image_shape == (10, 10, 3) and resized.resize
    diff = np.abs(resized.arrays(8)[0].astype(int) - small[:8].astype(int))
    assert diff.max() <= 1  # the same bilinear antialiased resize, rounded


def test_streamed_batches_are_scaled_one_hot_and_shifted_like_array_batches(shapes):
    from keras_caps import data

    split = data_sources.folder_split(shapes, "train")
    images, labels = split.arrays()
    for kwargs in (dict(shuffle=False), dict(shuffle=True, augment_shift=2, seed=3)):
        streamed = list(split.dataset(batch_size=5, **kwargs))
        in_memory = list(data.make_dataset(images, labels, batch_size=5, num_classes=3, **kwargs))
        assert len(streamed) == len(in_memory) == int(np.ceil(len(split) / 5))
        for (xs, ys), (xm, ym) in zip(streamed, in_memory):
            assert xs.shape[1:] == (16, 16, 1) and ys.shape[1:] == (3,)
            np.testing.assert_allclose(xs.numpy(), xm.numpy(), atol=1e-6)
            np.testing.assert_array_equal(ys.numpy(), ym.numpy())
    held_out = split.take(slice(-4, None))
    assert len(held_out) == 4 and held_out.paths == split.paths[-4:]


@pytest.mark.slow
def test_train_capsnet_stream_trains_as_the_in_memory_run(shapes, tmp_path):
    """--stream: the same shuffles, shifts and scaling as the arrays, so the same model."""
    common = dict(TINY, dataset=f"folder:{shapes}", init_length=0.5)
    in_memory = train(TrainConfig(model_dir=str(tmp_path / "memory"), **common))
    streamed = train(TrainConfig(model_dir=str(tmp_path / "stream"), stream=True, **common))
    assert streamed["epochs"] == 2 and streamed["params"] == in_memory["params"]
    for a, b in zip(streamed["history"], in_memory["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert streamed["test_accuracy"] == pytest.approx(in_memory["test_accuracy"])
    assert (tmp_path / "stream" / "best.keras").exists()
    # the held-out tail of the training files, as --validation_examples does with arrays
    held = train(TrainConfig(model_dir=str(tmp_path / "held"), stream=True,
                             validation_examples=6, **dict(common, epochs=1)))
    assert held["epochs"] == 1
    with pytest.raises(ValueError, match=r"--validation_examples=999 must lie in \(0, "):
        train(TrainConfig(model_dir=str(tmp_path / "bad"), stream=True, validation_examples=999,
                          **common))


def _teacher(tmp_path):
    from keras_caps.io_utils import save_model
    from keras_caps.models import capsnet

    path = str(tmp_path / "teacher.keras")
    save_model(capsnet(input_shape=(16, 16, 1), conv_filters=8, conv_kernel=3, num_classes=3,
                       primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                       decoder=None), path)
    return path


@pytest.mark.slow
def test_distill_stream_distils_as_the_in_memory_run(shapes, tmp_path):
    teacher = _teacher(tmp_path)
    common = dict(dataset=f"folder:{shapes}", teacher=teacher, epochs=2, batch_size=8,
                  augment_shift=2, verbose=0, student_conv_filters=8, student_conv_kernel=3,
                  student_primary_capsules=2, student_primary_dim=4, student_primary_kernel=3,
                  student_class_dim=4, student_decoder="none", student_init_length=0.5)
    in_memory = distill(DistillConfig(model_dir=str(tmp_path / "memory"), **common))
    streamed = distill(DistillConfig(model_dir=str(tmp_path / "stream"), stream=True, **common))
    for a, b in zip(streamed["history"], in_memory["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert streamed["test_accuracy"] == pytest.approx(in_memory["test_accuracy"])


def test_stream_refuses_what_it_cannot_do(shapes, tmp_path):
    npz = write_npz(tmp_path / "d.npz")
    with pytest.raises(ConfigError, match=r"--stream reads folder:PATH.*npz:.*drop --stream"):
        TrainConfig(model_dir=str(tmp_path / "r"), dataset=f"npz:{npz}", stream=True)
    with pytest.raises(ConfigError, match=r"--balance, --remove_constant_features need the whole "
                                          r"training split in memory"):
        TrainConfig(model_dir=str(tmp_path / "r"), dataset=f"folder:{shapes}", stream=True,
                    balance="oversample", remove_constant_features=True)
    # a library caller that needs arrays (stream_ok not given) is told what to do
    from keras_caps.runs.datasets import load_datasets

    with pytest.raises(ConfigError, match=r"--stream .* was given to a run that needs the images "
                                          r"in memory.*stream_ok=True"):
        load_datasets(TrainConfig(model_dir=str(tmp_path / "r"), dataset=f"folder:{shapes}",
                                  stream=True))
    # the pipeline with pruning now streams too: no refusal
    PipelineConfig.from_preset("quick", model_dir=str(tmp_path / "p"),
                               dataset=f"folder:{shapes}", stream=True)


PRUNE_TINY = dict(model="deep_capsnet", num_capsules=4, capsule_dim=2, backbone_filters=["4", "8", "8"],
                  class_dim=4, decoder="none", epochs=1,
                  ccm_epochs=1, retrain_epochs=1, batch_size=8, ci_batches=2, ci_batch_size=8,
                  pruning_ratio=0.25, init_length=0.5, augment_shift=1, verbose=0,
                  run_eagerly=True)


@pytest.mark.slow
def test_prune_stream_prunes_as_the_in_memory_run(shapes, tmp_path):
    """prune --stream: base training, CCM, the CI scores over the first batches and the
    retraining read the folder from disk and give the in-memory run's channels and model."""
    runs = [prune(PruneConfig(model_dir=str(tmp_path / name), dataset=f"folder:{shapes}",
                              stream=stream, **PRUNE_TINY), echo=False)
            for name, stream in (("memory", False), ("stream", True))]
    in_memory, streamed = runs
    for layer, scores in in_memory["scores"].items():
        np.testing.assert_allclose(streamed["scores"][layer], scores, rtol=1e-4, atol=1e-6)
    assert streamed["pruned"]["kept"] == in_memory["pruned"]["kept"]
    assert streamed["pruned"]["params"] == in_memory["pruned"]["params"] < \
        in_memory["base"]["params"]
    for key in ("accuracy_before_retraining", "best_accuracy", "final_accuracy"):
        assert streamed["pruned"][key] == pytest.approx(in_memory["pruned"][key]), key
    for stage in ("base", "ccm"):
        assert streamed[stage]["accuracy"] == pytest.approx(in_memory[stage]["accuracy"]), stage
    history = [json.loads((tmp_path / n / "pruned" / "metrics.json").read_text())["history"]
               for n in ("memory", "stream")]
    for a, b in zip(*history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_quantize_stream_reads_only_its_slices(shapes, tmp_path):
    """quantize --stream: the binary decodes only its calibration, search and test slices, so
    it is the in-memory run."""
    teacher = _teacher(tmp_path)
    common = dict(dataset=f"folder:{shapes}", model_path=teacher, preset="none", verbose=0,
                  approach="A", calibration_batches=1, calibration_batch_size=8,
                  search_split="test[:3]", test_split="test[3:]", qat_epochs=0, max_bits=8)
    results = [quantize(QuantizeConfig(output_dir=str(tmp_path / name), stream=stream,
                                       **common), echo=False)
               for name, stream in (("memory", False), ("stream", True))]
    assert results[1]["results"]["A"]["test_accuracy"] == results[0]["results"]["A"][
        "test_accuracy"]
    assert results[1]["calibration_images"] == results[0]["calibration_images"] == 8


@pytest.mark.slow
def test_pipeline_stream_trains_from_disk_as_the_in_memory_run(shapes, tmp_path):
    """The pipeline with --stream: teacher, student and pruned student trained from the
    folder on disk reach what the in-memory run reaches, and the export, evaluation and report
    read the in-memory sample and test split (class names from the folder)."""
    from tests.test_pipeline import _config

    def run(name, **kw):
        config = _config(tmp_path, model_dir=str(tmp_path / name), dataset=f"folder:{shapes}",
                         pruning_ratio=0.25, stages=["teacher", "student", "prune", "export",
                                                      "evaluate", "report"], **kw)
        return pipeline(config)

    in_memory, streamed = run("memory"), run("stream", stream=True)
    for stage in ("teacher", "student", "prune"):
        assert streamed[stage]["accuracy"] == pytest.approx(in_memory[stage]["accuracy"])
        assert streamed[stage]["params"] == in_memory[stage]["params"]
    assert not streamed["prune"].get("skipped")
    assert streamed["prune"]["params"] < streamed["student"]["params"]
    assert streamed["teacher"]["train_examples"] == in_memory["teacher"]["train_examples"] > 20
    history = [json.loads((tmp_path / n / "student" / "metrics.json").read_text())["history"]
               for n in ("memory", "stream")]
    for a, b in zip(*history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert streamed["evaluate"]["examples"] == in_memory["evaluate"]["examples"]
    assert streamed["export"]["class_names"] == ["circle", "square", "triangle"]
    assert (tmp_path / "stream" / "export" / "labels.txt").read_text().split() == [
        "circle", "square", "triangle"]
    assert (tmp_path / "stream" / "report" / "report.md").exists()


def _copy_folder(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return str(dst)


def test_a_bad_file_met_while_streaming_is_named(shapes, tmp_path):
    """A corrupt file or (without --image_size) an odd-sized one fails the streamed run with
    the file's path and what to do, not a TensorFlow traceback."""
    corrupt = _copy_folder(shapes, tmp_path / "corrupt")
    bad = os.path.join(corrupt, "square", "005.png")
    with open(bad, "wb") as f:
        f.write(b"not a png")
    config = dict(TINY, epochs=1)
    with pytest.raises(DataFormatError, match=r"cannot read image .*square/005\.png.*replace or "
                                              "delete it"):
        train(TrainConfig(model_dir=str(tmp_path / "r1"), dataset=f"folder:{corrupt}",
                          stream=True, **config))
    odd = _copy_folder(shapes, tmp_path / "odd")
    Image.fromarray(np.zeros((20, 16), np.uint8)).save(os.path.join(odd, "circle", "003.png"))
    with pytest.raises(DataFormatError, match=r"circle/003\.png is 20x16 but the other images .* "
                                              r"are 16x16; pass --image_size"):
        train(TrainConfig(model_dir=str(tmp_path / "r2"), dataset=f"folder:{odd}", stream=True,
                          **config))
    # with --image_size every file is resized: the odd one trains
    metrics = train(TrainConfig(model_dir=str(tmp_path / "r3"), dataset=f"folder:{odd}",
                                stream=True, image_size="16", **config))
    assert metrics["epochs"] == 1


@pytest.mark.slow
def test_finetune_stream_fine_tunes_as_the_in_memory_run(shapes, tmp_path):
    """finetune --stream: a pretrained CapsNet gets a new 3-class head and is fine-tuned from
    the folder on disk, as from the arrays."""
    from keras_caps.io_utils import save_model
    from keras_caps.models import capsnet
    from keras_caps.runs import FinetuneConfig
    from keras_caps.runs.finetune import finetune

    pretrained = str(tmp_path / "pretrained.keras")
    save_model(capsnet(input_shape=(16, 16, 1), conv_filters=8, conv_kernel=3, num_classes=5,
                       primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                       decoder=None), pretrained)
    common = dict(dataset=f"folder:{shapes}", pretrained=pretrained, epochs=2, batch_size=8,
                  verbose=0, unfreeze_schedule="auto", augment_shift=1)
    runs = [finetune(FinetuneConfig(model_dir=str(tmp_path / name), stream=stream, **common))
            for name, stream in (("memory", False), ("stream", True))]
    assert runs[1]["head_replaced"] and runs[1]["num_classes"] == 3
    for a, b in zip(runs[1]["history"], runs[0]["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert runs[1]["test_accuracy"] == pytest.approx(runs[0]["test_accuracy"])


STUDY_MODEL = dict(conv_filters=8, conv_kernel=3, primary_capsules=4, primary_dim=4,
                   primary_kernel=3, class_dim=6, decoder="none", batch_size=8, verbose=0,
                   augment_shift=1, train_examples=None, test_examples=None)


def _both(tmp_path, make, run):
    """run(make(model_dir, stream)) in memory and streamed from the folder."""
    return [run(make(str(tmp_path / name), stream))
            for name, stream in (("memory", False), ("stream", True))]


@pytest.mark.slow
def test_kd_study_stream_trains_every_arm_from_disk_as_in_memory(shapes, tmp_path):
    """kd_study --stream: the teacher, the baseline (with the distilled arms' capsule-length
    init) and the KD arm train from disk; the latency and int8 rows read the decoded test
    split; every row matches the in-memory study."""
    def make(model_dir, stream):
        values = dict(KdStudyConfig.PRESETS["quick"])
        values.update(STUDY_MODEL, model_dir=model_dir, dataset=f"folder:{shapes}",
                      stream=stream, teacher_epochs=1, epochs=1, kd_methods=["baseline", "kd"],
                      student_conv_filters=4, student_primary_capsules=2,
                      student_primary_dim=4, student_class_dim=4, student_init_length=0.5,
                      latency_batch=4, latency_repeats=1)
        return KdStudyConfig(**values)

    in_memory, streamed = _both(tmp_path, make, kd_study)
    assert [r["method"] for r in streamed["rows"]] == ["teacher", "baseline", "kd"]
    assert streamed["train_examples"] == in_memory["train_examples"] == 30
    assert streamed["test_examples"] == in_memory["test_examples"] == 6
    for a, b in zip(streamed["rows"], in_memory["rows"]):
        for key in ("test_accuracy", "final_loss", "int8_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), (a["method"], key)
        assert a["params"] == b["params"] and a["int8_bytes"] > 0
    # the baseline starts from the same calibrated student as the distilled arm
    for run in ("memory", "stream"):
        for arm in ("baseline", "kd"):
            lengths = json.loads((tmp_path / run / f"{arm}_b8_fixed" /
                                  "init_lengths.json").read_text())
            assert lengths["class_caps"]["length_after"] == pytest.approx(0.5, abs=0.02)


@pytest.mark.slow
def test_fastrcaps_study_stream_trains_every_policy_from_disk_as_in_memory(shapes, tmp_path):
    def make(model_dir, stream):
        values = dict(FastrcapsStudyConfig.PRESETS["quick"])
        values.update(STUDY_MODEL, model_dir=model_dir, dataset=f"folder:{shapes}",
                      stream=stream, epochs=2, batch_warmup_size=4, batch_warmup_epochs=1,
                      batch_exponent=3, policies=["fixed", "warmadabatch"])
        return FastrcapsStudyConfig(**values)

    in_memory, streamed = _both(tmp_path, make, fastrcaps_study)
    assert streamed["train_examples"] == in_memory["train_examples"] == 30
    for policy, curve in in_memory["curves"].items():
        assert streamed["curves"][policy] == pytest.approx(curve), policy
    assert "30 training / 6 test" in (tmp_path / "stream" / "study.md").read_text()


@pytest.mark.slow
def test_vanishing_study_stream_trains_prunes_and_grafts_from_disk_as_in_memory(shapes,
                                                                                 tmp_path):
    """vanishing_study --stream: (a) base, CCM, CI scores and the pruned retraining, (b) the
    deep model and the calibrated graft read the folder from disk; the dead-capsule counts
    read the first test batches; the tables match the in-memory study."""
    def make(model_dir, stream):
        return VanishingConfig(
            model_dir=model_dir, dataset=f"folder:{shapes}", stream=stream, preset="none",
            model="deep_capsnet", num_capsules=4, capsule_dim=2,
            backbone_filters=["4", "8", "8"], class_dim=4, decoder="none", epochs=1,
            ccm_epochs=1, retrain_epochs=1, batch_size=8, ci_batches=1, ci_batch_size=4,
            dead_batches=1, pruning_ratios=["0", "0.25"], recovery_ratios=["0.25"],
            max_intermediate=1, collapse_accuracy=1.0, init_std=0.5, verbose=0,
            run_eagerly=True)

    in_memory, streamed = _both(tmp_path, make, vanishing_study)
    for a, b in zip(streamed["ratios"], in_memory["ratios"]):
        assert a["accuracy"] == pytest.approx(b["accuracy"]) and a["params"] == b["params"]
    assert [(r["num_intermediate"], r["pr"]) for r in streamed["depth"]] == [(1, 0.0), (1, 0.25)]
    for a, b in zip(streamed["depth"], in_memory["depth"]):
        assert a["best_accuracy"] == pytest.approx(b["best_accuracy"])
        assert a["dead"] == pytest.approx(b["dead"])
    graft = streamed["depth"][1]["graft_lengths"]
    assert graft["class_caps"]["length_after"] == pytest.approx(
        in_memory["depth"][1]["graft_lengths"]["class_caps"]["length_after"])
