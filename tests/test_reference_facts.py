"""tools/reference/mmseg_checkpoints.csv and mmseg_configs.json (made by tools/extract_mmseg_facts.py) against
each other, against mmseg_all_methods.md and against the hand-collected mmseg_zoo.csv. No oracle, no network."""
import collections
import csv
import json
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(__file__))
REF = os.path.join(ROOT, "tools", "reference")

with open(os.path.join(REF, "mmseg_checkpoints.csv")) as f:
    ROWS = list(csv.DictReader(f))
with open(os.path.join(REF, "mmseg_configs.json")) as f:
    CONFIGS = json.load(f)["configs"]
with open(os.path.join(REF, "mmseg_zoo.csv")) as f:
    ZOO = list(csv.DictReader(f))

# URL corrections of mmseg_zoo.csv listed in tools/reference/README.md ("Known upstream errors"): the extraction
# applies the same two (PSPNet R-101-D8 769x769 80k host typo, PSPNet R-50-D8 rsb stale folder), so the URLs
# agree; a prefix listed here would be compared with mmseg_zoo.csv's checkpoint_url_alt instead.
ZOO_URL_EXCEPTIONS = set()

# mmseg_zoo.csv points these two R-101-D8 Pascal Context checkpoints at the R-50-D8 configs (the 1.x metafile's
# error, not caught by hand); the extraction picks the R-101-D8 configs by the checkpoint name.
ZOO_CONFIG_CORRECTED = {"d3c8a29e", "145d3ee8"}

SKIPPED_METHODS = {"vpd"}  # not built (needs `ldm`), see README


def with_weights_counts():
    counts = {}
    with open(os.path.join(REF, "mmseg_all_methods.md")) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 3 and re.fullmatch(r"\d+", cells[2] or ""):
                counts[cells[0]] = int(cells[2])
    return counts


def test_every_config_is_described():
    for r in ROWS:
        assert r["config"] in CONFIGS, r["config"]
        c = CONFIGS[r["config"]]
        assert c["config"] == r["config"]
        assert not c.get("error"), (r["config"], c.get("error"))
        if r["method"] in SKIPPED_METHODS:
            assert c.get("build_skipped")
        else:
            assert not c.get("build_error"), (r["config"], c.get("build_error"))
            assert c["n_keys"] > 0 and c["n_params"] > 0
            assert re.fullmatch(r"[0-9a-f]{40}", c["keys_digest"])
    assert set(CONFIGS) == {r["config"] for r in ROWS}


def test_urls_and_hash_prefixes():
    for r in ROWS:
        m = re.search(r"-([0-9a-f]{8})\.pth$", r["checkpoint_url"])
        assert m, r["checkpoint_url"]
        assert r["ckpt_sha256_prefix"] == m.group(1)
        assert r["checkpoint_url"].startswith("https://download.openmmlab.com/"), r["checkpoint_url"]


def test_no_duplicates():
    pairs = collections.Counter((r["config"], r["checkpoint_url"]) for r in ROWS)
    assert [p for p, n in pairs.items() if n > 1] == []
    urls = collections.Counter(r["checkpoint_url"] for r in ROWS)
    assert [u for u, n in urls.items() if n > 1] == []


def test_counts_per_method():
    expected = with_weights_counts()
    got = collections.Counter(r["method"] for r in ROWS)
    assert sum(expected.values()) == 626
    assert dict(got) == expected


def test_config_matches_checkpoint_name():
    # the crop and schedule of the chosen config are those the checkpoint file name states
    for r in ROWS:
        stem = r["checkpoint_url"].rsplit("/", 1)[1]
        m = re.search(r"_(\d+)k_", stem + "_") or re.search(r"-(\d+)k_", stem)
        if m and r["schedule"]:
            assert int(r["schedule"]) == int(m.group(1)) * 1000, (r["config"], stem)


def test_crop_and_schedule_present():
    for r in ROWS:
        h, w = map(int, re.fullmatch(r"(\d+)x(\d+)", r["crop"]).groups())
        assert h >= 64 and w >= 64, r["crop"]
        assert int(r["schedule"]) >= 1000, r["config"]


def test_datasets_are_known():
    names = {r["dataset"] for r in ROWS}
    assert not any(n.startswith("#") for n in names)
    assert "Cityscapes" in names and "ADE20K" in names


@pytest.mark.parametrize("zoo", ZOO, ids=lambda r: r["ckpt_sha256_prefix"])
def test_hand_collected_rows_are_among_the_new(zoo):
    by_prefix = {r["ckpt_sha256_prefix"]: r for r in ROWS}
    r = by_prefix.get(zoo["ckpt_sha256_prefix"])
    assert r is not None, zoo["checkpoint_url"]
    if zoo["ckpt_sha256_prefix"] in ZOO_URL_EXCEPTIONS:
        assert zoo["checkpoint_url_alt"] == r["checkpoint_url"]
    else:
        assert r["checkpoint_url"] == zoo["checkpoint_url"]
    assert float(r["miou"]) == float(zoo["miou"])
    assert r["config"] == zoo["config"] or zoo["ckpt_sha256_prefix"] in ZOO_CONFIG_CORRECTED, (r["config"], zoo["config"])
    assert int(r["schedule"]) == int(zoo["schedule"])
    assert r["crop"] == zoo["crop"]
    if zoo["miou_msflip"] not in ("", "-"):
        assert float(r["miou_msflip"]) == float(zoo["miou_msflip"])
