"""The pruning flow (train/prune.py) and the vanishing study (train/vanishing_study.py) end to
end on tiny synthetic data."""

import json

import pytest

from keras_caps.runs import PruneConfig, VanishingConfig
from keras_caps.runs.models import load_capsnet
from keras_caps.runs.prune import prune
from keras_caps.runs.vanishing_study import vanishing_study
from tests.synthetic import striped_images


def _data(n=32, seed=0):
    return striped_images(n, seed)


TINY = dict(
    model="deep_capsnet", num_capsules=4, capsule_dim=2, backbone_filters=["4", "8", "8"],
    class_dim=4, decoder="none", epochs=1, ccm_epochs=1, retrain_epochs=1, batch_size=16,
    ci_batches=1, ci_batch_size=8, pruning_ratio=0.25, verbose=0,
    run_eagerly=True,  # tiny models: faster than tracing
)


def _prune_config(tmp_path, **overrides):
    return PruneConfig(**{**TINY, "model_dir": str(tmp_path / "run"), **overrides})


def _study_config(tmp_path, **overrides):
    return VanishingConfig(**{**TINY, "model_dir": str(tmp_path / "run"), "dead_batches": 1,
                              **overrides})


def test_prune_run_writes_report_and_shrinks_the_model(tmp_path):
    from keras_caps.models import deep_capsnet

    base = deep_capsnet(4, 2, 0, input_shape=(12, 12, 1), backbone_filters=(4, 8, 8),
                        class_dim=4)
    base.save(str(tmp_path / "base.keras"))  # (the base training stage runs in the study test)
    fv = _prune_config(tmp_path, base_model=str(tmp_path / "base.keras"))
    metrics = prune(fv, datasets_override=(_data(), _data(16, 1)))
    run = tmp_path / "run"
    for name in ("ccm/capsnet.keras", "ccm/history.csv", "scores.json",
                 "pruned/best.keras", "pruned/kept.json", "metrics.json", "report.md"):
        assert (run / name).exists(), name
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["pruned"]["params"] < saved["base"]["params"]
    assert saved["pruned"]["flops"] < saved["base"]["flops"]
    assert 0 < metrics["params_reduction"] < 1
    kept = json.loads((run / "pruned" / "kept.json").read_text())["kept"]
    assert len(kept["relu1"]) == 2 and len(kept["primary_caps"]) == 6  # 4 - 2; 8 - 2 (1 type)
    assert "ccm" in (run / "ccm" / "history.csv").read_text().splitlines()[0]
    report = (run / "report.md").read_text()
    assert "PR=0.25" in report and "best test acc" in report
    # the equal-training control: the unpruned parent retrained the same way, and the target
    control = load_capsnet(str(run / "control" / "best.keras"))
    assert control.get_layer("primary_caps").num_capsules == 4
    assert saved["control"]["params"] == saved["base"]["params"]
    target = saved["target"]
    assert target["size_met"] == (target["params_reduction"] >= 0.25)
    assert target["vs_control_met"] == (saved["pruned"]["best_accuracy"]
                                        >= saved["control"]["best_accuracy"])
    assert target["met"] == (target["size_met"] and target["vs_parent_met"]
                             and target["vs_control_met"])
    assert "control (PR=0)" in report and "Overall: **" in report
    # the pruned best model is a plain capsnet with the kept widths
    pruned = load_capsnet(str(run / "pruned" / "best.keras"))
    assert pruned.get_layer("primary_caps").num_capsules == 3


def test_prune_rejects_bad_ratio(tmp_path):
    with pytest.raises(ValueError, match="pruning_ratio"):
        prune(_prune_config(tmp_path, pruning_ratio=1.0),
              datasets_override=(_data(), _data(8, 1)))


def test_vanishing_study_runs_end_to_end(tmp_path):
    fv = _study_config(tmp_path, ccm_epochs=0, pruning_ratios=["0", "0.25"],
                       recovery_ratios=["0.25"], max_intermediate=2, collapse_accuracy=1.0,
                       init_std=0.5, preset="none", collapse_seeds=2)
    summary = vanishing_study(fv, datasets_override=(_data(), _data(16, 1)))
    run = tmp_path / "run"
    assert (run / "study.md").exists() and (run / "study.json").exists()
    assert summary["collapse_depth"] == 1  # every accuracy is <= 1.0
    assert [r["pr"] for r in summary["ratios"]] == [0.0, 0.25]
    depth = summary["depth"]
    assert [(r["num_intermediate"], r["pr"]) for r in depth] == [(1, 0.0), (1, 0.25)]
    assert set(depth[0]["dead"]) == {"primary_caps", "intermediate_caps_1", "all"}
    for name in ("I1/intermediate_caps_1.png", "I1_pr_0.25/all_layers.png"):
        assert (run / "heatmaps" / name).read_bytes()[:4] == b"\x89PNG", name
    assert (run / "dead_capsules.png").exists()
    assert "(b) IntermediateCaps and pruning" in (run / "study.md").read_text()
    # the graft's fresh capsule layers were scaled to the target length before training
    graft = depth[1]
    assert depth[0]["graft_lengths"] is None and depth[0]["dead_at_init"] is None
    assert set(graft["graft_lengths"]) == {"intermediate_caps_1", "class_caps"}
    for report in graft["graft_lengths"].values():
        assert abs(report["length_after"] - 0.5) <= 0.011
    assert 0.0 <= graft["dead_at_init"] <= 100.0
    assert "mean capsule length 0.5" in (run / "study.md").read_text()
    # (c) collapse rate: the unpruned C = 4 and the C left after PR 0.25, two seeds each; every
    # run counts as collapsed at the threshold 1.0
    rates = summary["collapse_rate"]
    assert [r["num_capsules"] for r in rates] == sorted(
        {4, summary["ratios"][1]["capsules"]}, reverse=True)
    for r in rates:
        assert r["seeds"] == 2 and r["collapsed"] == 2 and len(r["accuracies"].split(", ")) == 2
    seed_runs = sorted(p.name for p in run.glob("collapse_I1_C4_s*"))
    assert seed_runs == ["collapse_I1_C4_s0", "collapse_I1_C4_s1"]
    assert "## (c) collapse rate at I = 1" in (run / "study.md").read_text()
    with pytest.raises(ValueError, match="collapse_seeds must be >= 0"):
        vanishing_study(_study_config(tmp_path, collapse_seeds=-1, init_std=0.5, preset="none"),
                        datasets_override=(_data(), _data(16, 1)))
    with pytest.raises(ValueError, match="collapse_widths must all be >= 1"):  # before training
        vanishing_study(_study_config(tmp_path / "bad", collapse_seeds=1, collapse_widths=["0"],
                                      init_std=0.5, preset="none"),
                        datasets_override=(_data(), _data(16, 1)))
    assert not (tmp_path / "bad" / "run").exists()
