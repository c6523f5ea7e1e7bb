"""Model cards: in sync with the registry, valid Hugging Face front matter, facts that match the entries."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil

import pytest
import yaml

from sszoo.registry import list_entries
from sszoo.registry.citations import CITATIONS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARDS = os.path.join(ROOT, "model_cards")


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_model_cards",
                                                  os.path.join(ROOT, "tools", "generate_model_cards.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():
    return _load_generator()


@pytest.fixture(scope="module")
def rendered(gen):
    return gen.render_all()


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n"), "a card starts with YAML front matter"
    end = text.index("\n---\n", 4)
    return yaml.safe_load(text[4:end])


def test_checked_in_cards_match_the_registry(gen, rendered):
    problems = gen.diff(rendered, CARDS)
    assert not problems, ("model_cards/ is out of date; run `python tools/generate_model_cards.py`:\n"
                          + "\n".join(problems[:20]))


def test_one_card_per_entry(rendered):
    entries = list_entries()
    assert len(entries) == 659  # 239 of FCN, PSPNet, DeepLabV3(+), 208 of zoo wave 2, 113 of wave 3, 99 of wave 4
    detection = {f"{e.name}.md" for e in list_entries(task="detection")} | {"DETECTION.md"}  # docs/detection.md
    assert set(rendered) == {f"{e.name}.md" for e in entries} | {"README.md"} | detection


def test_front_matter_is_a_model_index_with_the_reported_numbers(rendered):
    for e in list_entries():
        meta = _front_matter(rendered[f"{e.name}.md"])
        assert meta["license"] == "apache-2.0" and meta["library_name"] == "sszoo"
        assert meta["datasets"] == [e.dataset.key]
        (model,) = meta["model-index"]
        assert model["name"] == e.name
        (result,) = model["results"]
        assert result["task"]["type"] == "semantic-segmentation"
        assert result["dataset"]["type"] == e.dataset.key and result["dataset"]["name"] == e.dataset.title
        metrics = {m["name"]: m["value"] for m in result["metrics"]}
        assert all(m["type"] == "mIoU" and m["verified"] is False for m in result["metrics"])
        assert metrics["mIoU"] == e.reported.miou
        assert metrics.get("mIoU (ms+flip)") == e.reported.miou_msflip
        assert result["source"]["url"] == (e.source.config_url or {
            "mmsegmentation": "https://github.com/open-mmlab/mmsegmentation",
            "sssegmentation": "https://github.com/SegmentationBLWX/sssegmentation"}[e.source.framework])
        assert result["source"]["name"] == {"mmsegmentation": "MMSegmentation",
                                            "sssegmentation": "sssegmentation"}[e.source.framework]


def test_card_sections_carry_the_entry_facts(rendered):
    for e in list_entries():
        text = rendered[f"{e.name}.md"]
        for section in ("## Architecture", "## Training recipe", "## Test protocol", "## Weights",
                        "## Reported results", "## How to use", "## Citation", "## License"):
            assert section in text, (e.name, section)
        assert f"- URL: {e.weights.url}" in text
        assert ("Verified: yes" in text) == e.weights.verified
        if e.weights.verified:
            assert f"`{e.weights.sha256_prefix}`" in text
        assert f"sszoo.create_model(\"{e.name}\", pretrained=True)" in text
        assert f"python -m sszoo.eval --model {e.name}" in text
        assert f"python -m sszoo.predict images/ --model {e.name}" in text
        assert f"License: {e.weights.license}" in text
        if e.reported.fps is not None:
            assert f"| {e.reported.fps:g} | {e.reported.hardware} |" in text


def test_citations_include_mixed_precision_for_fp16_entries(rendered):
    fp16 = [e for e in list_entries() if e.recipe.precision == "fp16"]
    assert len(fp16) >= 4  # the 4 legacy fp16 checkpoints of seed 001, at least
    micikevicius = CITATIONS["micikevicius2017mixed"]
    for e in list_entries():
        text = rendered[f"{e.name}.md"]
        assert (micikevicius in text) == (e in fp16), e.name
        method_key = {"fcn": "long2015fully", "fcn_d6": "long2015fully", "pspnet": "zhao2017pyramid",
                      "deeplabv3": "chen2017rethinking", "deeplabv3plus": "deeplabv3plus2018",
                      "nonlocal": "wang2018non", "dnl": "yin2020disentangled", "gcnet": "cao2019gcnet",
                      "emanet": "li2019expectation", "ccnet": "huang2019ccnet", "danet": "fu2019dual",
                      "ann": "zhu2019asymmetric", "isanet": "huang2019interlaced", "encnet": "zhang2018context",
                      "apcnet": "he2019adaptive", "dmnet": "he2019dynamic", "psanet": "zhao2018psanet",
                      "upernet": "xiao2018unified", "fpn": "kirillov2019panoptic", "pointrend": "kirillov2020pointrend",
                      "fastfcn": "wu2019fastfcn", "resnest": "zhang2020resnest",
                      "ddrnet": "pan2022deep", "pidnet": "xu2022pidnet",
                      "bisenetv1": "yu2018bisenet", "bisenetv2": "yu2021bisenet",
                      "stdc": "fan2021rethinking", "icnet": "zhao2018icnet", "fastscnn": "poudel2019fast",
                      "cgnet": "wu2020cgnet", "erfnet": "romera2017erfnet",
                      "mobilenet_v2": "sandler2018mobilenetv2", "mobilenet_v3": "howard2019searching",
                      "hrnet": "wang2020deep", "ocrnet": "yuan2020object",
                      "segformer": "xie2021segformer", "swin": "liu2021swin", "twins": "chu2021twins",
                      "convnext": "liu2022convnet", "poolformer": "yu2022metaformer", "segnext": "guo2022segnext",
                      "vit": "dosovitskiy2020image", "setr": "zheng2021rethinking", "segmenter": "strudel2021segmenter",
                      "dpt": "ranftl2021vision", "beit": "bao2021beit", "mae": "he2022masked", "knet": "zhang2021knet",
                      "maskformer": "cheng2021per", "mask2former": "cheng2022masked", "san": "xu2023side",
                      }[e.method]
        assert CITATIONS[method_key] in text
        if e.method in ("resnest", "mobilenet_v2"):  # and the head's paper: resnest_s101_d8_{fcn,pspnet,...}
            head = e.name.split("_")[3]
            assert CITATIONS[{"fcn": "long2015fully", "pspnet": "zhao2017pyramid", "deeplabv3": "chen2017rethinking",
                              "deeplabv3plus": "deeplabv3plus2018"}[head]] in text
        if e.method in ("swin", "convnext", "vit", "beit", "mae") or e.arch.decode_heads[0].kind == "uper":  # UPerNet heads
            assert CITATIONS["xiao2018unified"] in text, e.name


def test_parameter_counts_equal_mmsegmentation_counts(gen):
    # zoo.json keeps the parameter count MMSegmentation 1.2.2 reported for each of its configs
    with open(os.path.join(ROOT, "sszoo", "registry", "zoo.json")) as f:
        reference = {e["name"]: e.get("n_params") for e in json.load(f)["entries"]}
    counts = gen._params(list_entries())
    checked = 0
    for name, n in reference.items():
        if n is not None:
            assert counts[name][0] == n, name
            checked += 1
    assert checked >= 179


def test_index_groups_every_entry_by_dataset(rendered):
    index = rendered["README.md"]
    entries = list_entries()
    for e in entries:
        assert f"[{e.name}]({e.name}.md)" in index
    sections = index.split("\n## ")[1:]
    titles = [s.split("\n", 1)[0] for s in sections]
    assert sorted(titles) == sorted({e.dataset.title for e in entries})
    for s in sections:
        title = s.split("\n", 1)[0]
        rows = [line for line in s.splitlines() if line.startswith("| [")]
        assert len(rows) == sum(e.dataset.title == title for e in entries), title


def test_check_mode_reports_edited_missing_and_stale_cards(gen, rendered, tmp_path, capsys):
    folder = tmp_path / "cards"
    shutil.copytree(CARDS, folder)
    edited = folder / "pspnet_r18_d8_cityscapes.512x1024_80k.md"
    edited.write_text(edited.read_text().replace("mIoU", "mIoU!", 1))
    (folder / "fcn_r50_d8_cityscapes.512x1024_40k.md").unlink()
    (folder / "not_an_entry.md").write_text("hand-written\n")
    assert gen.main(["--check", "--out", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "out of date: pspnet_r18_d8_cityscapes.512x1024_80k.md" in out
    assert "missing: fcn_r50_d8_cityscapes.512x1024_40k.md" in out
    assert "stale (no registry entry): not_an_entry.md" in out
    gen.write(rendered, str(folder))  # regeneration repairs all three
    assert gen.diff(rendered, str(folder)) == []
