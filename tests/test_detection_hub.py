"""A detection entry's published weights through the hub: served under a published-style URL (SSZOO_MIRROR),
hash-checked against the name's sha256 prefix, cached, strictly loaded; a wrong hash is refused."""
from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

import sszoo
from hub_helpers import PUBLISHED_HOST, hub_env, register  # noqa: F401  (hub_env is a fixture)
from sszoo.detection import build_detector
from sszoo.hub import HashMismatchError
from sszoo.registry import WeightsInfo


def test_detector_weights_download_verify_cache(hub_env, monkeypatch, tmp_path) -> None:
    server, home = hub_env
    base = sszoo.get_entry("retinanet_r50_fpn_fp16_1x_coco")
    torch.manual_seed(0)
    ref = build_detector(base.arch)
    local = tmp_path / "retina.pth"
    torch.save({"state_dict": ref.state_dict(), "meta": {"mmdet_version": "2.3.0"}}, local)
    data = local.read_bytes()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    path = f"/mmdetection/v2.0/fp16/retinanet_r50_fpn_fp16_1x_coco/retinanet_r50_fpn_fp16_1x_coco_20200702-{prefix}.pth"
    server.add(path, data)
    good = dataclasses.replace(base, name="retinanet_hubtest", weights=WeightsInfo(url=PUBLISHED_HOST + path,
                                                                                   sha256_prefix=prefix, format="mmdet"))
    bad = dataclasses.replace(good, name="retinanet_hubtest_bad",
                              weights=dataclasses.replace(good.weights, sha256_prefix="00000000"))
    register(monkeypatch, good, bad)
    model = sszoo.create_model("retinanet_hubtest", pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))
    sszoo.create_model("retinanet_hubtest", pretrained=True)  # from the cache
    assert server.gets(path) == 1
    with pytest.raises(HashMismatchError):
        sszoo.create_model("retinanet_hubtest_bad", pretrained=True)
