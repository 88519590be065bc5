"""Pretrained weights on offline compute nodes (issue 27 item 7).

This machine cannot reach the Hugging Face hub (``HF_HUB_OFFLINE=1``): the error
path is tested for real, and the cache is filled with a locally made weights file in
the layout ``huggingface_hub`` resolves (``models--<org>--<repo>/snapshots/<rev>/``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from element_pose import sample
from element_pose.engines import deeplabcut as engine

pytest.importorskip("deeplabcut")
pytestmark = pytest.mark.slow

REVISION = "0123456789abcdef0123456789abcdef01234567"


def test_cache_folder_comes_from_the_argument_the_environment_or_the_settings_file(
        tmp_path, monkeypatch):
    import json

    from element_pose.engines.deeplabcut import weights

    settings_file = tmp_path / "config.json"
    settings_file.write_text(json.dumps({"weights_cache": str(tmp_path / "from_file")}))
    monkeypatch.setenv("ELEMENT_POSE_CONFIG", str(settings_file))
    monkeypatch.delenv(weights.WEIGHTS_CACHE_ENV, raising=False)
    assert weights.weights_cache() == tmp_path / "from_file"
    assert weights.hub_cache() == tmp_path / "from_file" / "hub"
    monkeypatch.setenv(weights.WEIGHTS_CACHE_ENV, str(tmp_path / "from_env"))
    assert weights.weights_cache() == tmp_path / "from_env"
    assert weights.weights_cache(tmp_path / "given") == tmp_path / "given"


def fill_cache(home: Path, net: str = "cspnext_s") -> dict:
    """Put a random ``<net>.pt`` backbone state dict into an HF-layout cache."""
    import torch
    from deeplabcut.pose_estimation_pytorch.models.backbones import BACKBONES

    from element_pose.engines.deeplabcut import weights

    (source,) = weights.pretrained_sources(net)
    repo = home / "hub" / f"models--{source.repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    (repo / "snapshots" / REVISION).mkdir(parents=True)
    state = BACKBONES.build({**weights.backbone_config(net), "pretrained": False}).state_dict()
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"state_dict": state}, repo / "snapshots" / REVISION / source.filename)
    return state


def test_sources_name_deeplabcut_and_timm_repositories():
    from element_pose.engines.deeplabcut import weights

    (cspnext,) = weights.pretrained_sources("cspnext_s")
    assert (cspnext.repo_id, cspnext.filename) == ("DeepLabCut/DeepLabCut-Backbones",
                                                   "cspnext_s.pt")
    (resnet,) = weights.pretrained_sources("resnet_50")
    assert resnet.repo_id.startswith("timm/resnet50") and resnet.loader == "timm"
    assert weights.pretrained_sources("top_down_cspnext_s") == [cspnext]
    with pytest.raises(engine.EngineError, match="no backbone configuration"):
        weights.pretrained_sources("no_such_net")


def test_fetch_offline_names_what_it_would_download(tmp_path):
    from element_pose.engines.deeplabcut import weights

    with pytest.raises(engine.EngineError) as info:
        weights.fetch_weights("cspnext_s", tmp_path / "cache")
    message = str(info.value)
    assert "DeepLabCut/DeepLabCut-Backbones/cspnext_s.pt" in message
    assert str(tmp_path / "cache" / "hub") in message


def test_cli_fetch_dry_run_and_offline_failure(tmp_path, capsys, monkeypatch):
    from element_pose.cli import main

    monkeypatch.setenv("ELEMENT_POSE_CONFIG", str(tmp_path / "none.json"))
    assert main(["weights", "fetch", "--net", "cspnext_s", "--dry-run",
                 "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "DeepLabCut/DeepLabCut-Backbones/cspnext_s.pt" in out and str(tmp_path / "c") in out
    assert not (tmp_path / "c").exists()
    assert main(["weights", "fetch", "--net", "cspnext_s", "--cache", str(tmp_path / "c")]) == 1


def test_cached_weights_load_offline(tmp_path, monkeypatch):
    import torch
    from deeplabcut.pose_estimation_pytorch.models.backbones import BACKBONES

    from element_pose.engines.deeplabcut import weights

    state = fill_cache(tmp_path / "cache")
    monkeypatch.setenv(weights.WEIGHTS_CACHE_ENV, str(tmp_path / "cache"))
    with weights.use_weights_cache() as hub:
        assert hub == tmp_path / "cache" / "hub"
        backbone = BACKBONES.build({**weights.backbone_config("cspnext_s"), "pretrained": True})
    loaded = backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    # DeepLabCut's own download would have moved the file out of the cache: it is still there
    assert list((tmp_path / "cache" / "hub").rglob("cspnext_s.pt"))
    # fetching again offline finds it in the cache
    assert weights.fetch_weights("cspnext_s", tmp_path / "cache")


def test_offline_training_names_the_fetch_command_then_trains_from_the_cache(
        tmp_path, monkeypatch):
    from element_pose.engines.deeplabcut import weights

    cache = tmp_path / "cache"
    monkeypatch.setenv(weights.WEIGHTS_CACHE_ENV, str(cache))
    project = sample.make_dlc_project(tmp_path / "project", n_frames=12, n_labeled=8,
                                      width=64, height=48)
    params = {"net_type": "cspnext_s", "weight_init": "pretrained", "epochs": 1,
              "batch_size": 4, "save_epochs": 1, "device": "cpu", "train_fraction": 0.75}
    config = engine.prepare_training_project(project, tmp_path / "work", params)
    t0 = time.perf_counter()
    with pytest.raises(engine.EngineError) as info:
        engine.train(config, params, device="cpu")
    took = time.perf_counter() - t0
    message = str(info.value)
    assert "`element-pose weights fetch --net cspnext_s`" in message
    assert f"not in the cache {cache / 'hub'}" in message and "offline" in message
    assert "weight_init: random" in message
    assert took < 120, took  # no retries against an unreachable hub

    fill_cache(cache)
    trained = engine.train(config, params, device="cpu")
    assert trained.last_snapshot.epoch == 1
