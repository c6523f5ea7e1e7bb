"""ImageNet backbones through the hub: torchvision and MMCV V1c layouts become sszoo ResNet weights."""
import hashlib
import os

import pytest
import torch

from hub_helpers import hub_env  # noqa: F401
from sszoo.hub import CheckpointError, load_backbone_weights
from sszoo.hub import sources
from sszoo.models import ResNet


def serve(server, monkeypatch, spec, host, name_stem, obj, tmp_path):
    path = tmp_path / "bb.pth"
    torch.save(obj, path)
    data = path.read_bytes()
    url_path = f"/models/{name_stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    server.add(url_path, data)
    monkeypatch.setitem(sources.BACKBONES, spec, host + url_path)
    return url_path


def test_torchvision_resnet18_matches_torchvision_features(hub_env, monkeypatch, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    server, home = hub_env
    torch.manual_seed(0)
    tv = torchvision.models.resnet18().eval()
    for m in tv.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    url_path = serve(server, monkeypatch, "torchvision://resnet18", "https://download.pytorch.org",
                     "resnet18", tv.state_dict(), tmp_path)
    sd = load_backbone_weights("torchvision://resnet18", progress=False)
    assert not any(k.startswith("fc.") for k in sd)
    net = ResNet(18, deep_stem=False, strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1)).eval()
    net.load_state_dict(sd, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))
        assert torch.allclose(net(x)[3], ref, atol=1e-5)
    load_backbone_weights("torchvision://resnet18", progress=False)  # cached: no second request
    assert server.gets(url_path) == 1
    key = sources.backbone_key(sources.BACKBONES["torchvision://resnet18"])
    assert key.startswith("backbone--resnet18-") and (home / "weights" / key / "model.safetensors").is_file()


def test_openmmlab_v1c_layout(hub_env, monkeypatch, tmp_path):
    server, home = hub_env
    torch.manual_seed(1)
    own = ResNet(18, deep_stem=True).state_dict()
    published = {"state_dict": {**own, "fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)},
                 "meta": {"epoch": 100}}
    serve(server, monkeypatch, "open-mmlab://resnet18_v1c", "https://download.openmmlab.com",
          "pretrain/third_party/resnet18_v1c", published, tmp_path)
    sd = load_backbone_weights("open-mmlab://resnet18_v1c", progress=False)
    assert set(sd) == set(own) and all(torch.equal(sd[k], own[k]) for k in own)


def test_wrong_backbone_file_is_rejected(hub_env, monkeypatch, tmp_path):
    server, home = hub_env
    broken = ResNet(18, deep_stem=True).state_dict()
    del broken["layer2.0.conv1.weight"]
    serve(server, monkeypatch, "open-mmlab://resnet18_v1c", "https://download.openmmlab.com", "r18", broken, tmp_path)
    with pytest.raises(CheckpointError, match="layer2.0.conv1.weight"):
        load_backbone_weights("open-mmlab://resnet18_v1c", progress=False)
    assert not (home / "weights").exists() or os.listdir(home / "weights") == []
    assert os.listdir(home / "downloads") == []  # the refused file is not kept


def test_unknown_backbone_spec():
    with pytest.raises(KeyError, match="open-mmlab://resnet50_v1c"):
        load_backbone_weights("open-mmlab://resnet77_v1c")


def test_published_backbone_urls_carry_hashes():
    for spec, url in sources.BACKBONES.items():
        assert sources.sha256_prefix_from_name(url), spec
