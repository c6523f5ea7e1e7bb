"""Extract the reference facts of every published MMSegmentation 1.2.2 checkpoint from the wheel itself.

Run with the oracle's python (../shared/tools/oracle-setup.sh builds it):

    /work/oracle/bin/python tools/extract_mmseg_facts.py [--legacy-metafiles DIR] [--cache FILE] [--only METHOD,...]

Reads every `mmseg/.mim/configs/<method>/metafile.yaml` and config of the installed mmsegmentation wheel and writes,
deterministically (sorted rows and keys, fixed formatting):

  tools/reference/mmseg_checkpoints.csv  one row per published checkpoint (all methods, all metafile entries)
  tools/reference/mmseg_configs.json     per referenced config: the resolved model, test settings, train recipe,
                                         and the built segmentor's state-dict key count, parameter count and digest

Upstream metafile errors (duplicate Names pointing at the wrong config, dead config links, comments in the
dataset field, config name vs checkpoint file name mismatches) are detected mechanically, fixed by the rule
"the checkpoint file name (URL) is the truth" and recorded in the `note` column; a summary is printed.

1.x metafiles carry no inference times; the `fps` column comes from the 0.x metafiles (mmsegmentation 0.30.0 wheel
from PyPI, `inference time (ms/im)`, matched by checkpoint URL): fps = round(1000 / ms, 2). Pass their folder with
--legacy-metafiles; without it the script runs `pip download mmsegmentation==0.30.0 --no-deps` into a temporary
folder, and leaves fps empty if that fails.

Models are built with mmseg.registry.MODELS.build after register_all_modules(), with every init_cfg and
pretrained removed (nothing downloads), under torch.device("meta") first and on CPU when that fails.
Per-config results are cached in --cache (default /tmp/mmseg_facts_cache.json) so a rerun resumes.
"""
import argparse, collections, copy, csv, glob, hashlib, inspect, io, json, os, re, subprocess, sys, tempfile
import time, warnings, zipfile

warnings.filterwarnings("ignore")
import logging

import torch
import yaml
import mmseg
from mmengine import Config
from mmengine.logging import MMLogger
from mmseg.registry import DATASETS, MODELS
from mmseg.utils import register_all_modules

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "reference")
ROOT = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs")
URL_HOST = "https://download.openmmlab.com/"
SKIP_BUILD = {"vpd": "VPD is out of scope: its model needs the `ldm` (stable-diffusion) package, not in the oracle"}

CSV_COLUMNS = ["method", "collection", "name", "config", "dataset", "crop", "schedule", "mem_gb", "fps",
               "hardware", "miou", "miou_msflip", "metrics", "checkpoint_url", "ckpt_sha256_prefix", "log_url",
               "architecture", "metafile_config", "note"]


# ----------------------------------------------------------------------------------------------- names

def ckpt_stem(url):
    """The model name in a checkpoint file name: `<name>_YYYYMMDD_HHMMSS-<8hex>.pth` -> `<name>`."""
    base = url.rstrip("/").split("/")[-1]
    base = re.sub(r"\.pth$", "", base)
    base = re.sub(r"-[0-9a-f]{8}$", "", base)
    base = re.sub(r"[_\-]\d{8}_\d{6}$", "", base)
    base = re.sub(r"[_\-]\d{8}$", "", base)
    return base


def tokens(name):
    """Name tokens shared by the 0.x and 1.x naming schemes (`4xb2` in 1.x is `4x2` in 0.x)."""
    n = name.lower()
    n = re.sub(r"(\d+)xb(\d+)", r"\1x\2", n)
    n = re.sub(r"([a-z])(\d{3,4}x\d{3,4})", r"\1_\2", n)  # `cityscapes512x1024` (a resnest file name)
    toks = (t for t in re.split(r"[_\-]", n) if t)
    return collections.Counter("amp" if t == "fp16" else t for t in toks)  # 0.x `fp16` = 1.x `amp`


def similarity(a, b):
    ta, tb = tokens(a), tokens(b)
    inter = sum((ta & tb).values())
    union = sum((ta | tb).values())
    return inter / union if union else 0.0


def config_rel(path):
    return "configs/" + os.path.relpath(path, ROOT).replace(os.sep, "/")


# ----------------------------------------------------------------------------------------------- metafiles

def load_rows():
    rows = []
    for mf in sorted(glob.glob(os.path.join(ROOT, "*", "metafile.yaml"))):
        method = os.path.basename(os.path.dirname(mf))
        data = yaml.safe_load(open(mf))
        collections_ = {c["Name"] for c in data.get("Collections") or []}
        for idx, m in enumerate(data.get("Models") or []):
            if not m.get("Weights"):
                continue
            res = m["Results"]
            res = res[0] if isinstance(res, list) else res
            md = m.get("Metadata") or {}
            rows.append(dict(method=method, collection=m.get("In Collection", ""), name=m["Name"],
                             metafile_config=m.get("Config", ""), dataset_raw=res.get("Dataset", ""),
                             metrics=res.get("Metrics") or {}, weights=m["Weights"],
                             log_url=m.get("Training log") or "", mem=md.get("Memory (GB)"),
                             hardware=md.get("Training Resources", ""), batch=md.get("Batch Size"),
                             architecture=list(md.get("Architecture") or []), index=idx,
                             known_collection=m.get("In Collection", "") in collections_))
    return rows


def legacy_metafiles(folder):
    """checkpoint file name -> (URL, inference time (ms/im) or None) from the 0.x metafiles (`*.yml`)."""
    out = {}
    if not folder:
        return out
    for f in sorted(glob.glob(os.path.join(folder, "**", "*.yml"), recursive=True)):
        data = yaml.safe_load(open(f)) or {}
        for m in data.get("Models") or []:
            if not m.get("Weights"):
                continue
            it = (m.get("Metadata") or {}).get("inference time (ms/im)")
            ms = float(it[0]["value"]) if it else None
            out[m["Weights"].rsplit("/", 1)[1]] = (m["Weights"], ms)
    return out


def fetch_legacy_metafiles():
    tmp = tempfile.mkdtemp(prefix="mmseg030_")
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "mmsegmentation==0.30.0",
                        "-d", tmp], check=True, capture_output=True, timeout=300)
        whl = glob.glob(os.path.join(tmp, "mmsegmentation-0.30.0-*.whl"))[0]
        with zipfile.ZipFile(whl) as z:
            for n in z.namelist():
                if n.startswith("mmseg/.mim/configs/") and n.endswith(".yml"):
                    z.extract(n, tmp)
        return os.path.join(tmp, "mmseg", ".mim", "configs")
    except Exception as e:  # noqa: BLE001 - fps stays empty
        print(f"warning: could not fetch the 0.x metafiles ({e}); fps left empty", file=sys.stderr)
        return None


def resolve(rows, legacy=None):
    """Pick, for every checkpoint, the config its file name names; return (rows, list of findings)."""
    configs = collections.defaultdict(list)
    for p in sorted(glob.glob(os.path.join(ROOT, "*", "*.py"))):
        configs[os.path.basename(os.path.dirname(p))].append(p)
    name_count = collections.Counter((r["name"]) for r in rows)
    known_ds = collections.Counter(r["dataset_raw"] for r in rows)
    findings = []
    for r in rows:
        notes = []
        stem = ckpt_stem(r["weights"])
        r["url"] = r["weights"]
        # checkpoint host misspelt
        m = re.match(r"https?://([^/]+)/mmsegmentation/", r["url"])
        if m and m.group(1) != "download.openmmlab.com":
            fixed = re.sub(r"https?://[^/]+/", URL_HOST, r["url"], count=1)
            notes.append(f"metafile URL host misspelt ({m.group(1)}); corrected to download.openmmlab.com")
            findings.append(("bad URL host", r["name"], m.group(1)))
            r["url"] = fixed
        if r["log_url"]:
            m = re.match(r"https?://([^/]+)/mmsegmentation/", r["log_url"])
            if m and m.group(1) != "download.openmmlab.com":
                r["log_url"] = re.sub(r"https?://[^/]+/", URL_HOST, r["log_url"], count=1)
        # the URL folder is the checkpoint's own name (0.x layout) or the method dir (1.x layout)
        parts = r["url"].split("/")
        if parts[-2] not in (stem, r["method"]):
            alt = (legacy or {}).get(parts[-1], (None,))[0]
            findings.append(("URL folder is not the checkpoint's", r["name"], parts[-2]))
            if alt and alt.split("/")[-2] == stem:
                notes.append(f"metafile URL folder {parts[-2]}/ is another checkpoint's; the 0.x metafile "
                             f"(0.30.0) has the file under {stem}/, used here (metafile URL: {r['url']})")
                if r["log_url"]:
                    r["log_url"] = r["log_url"].replace(f"/{parts[-2]}/", f"/{stem}/")
                r["url"] = alt
            else:
                notes.append(f"URL folder {parts[-2]}/ differs from the checkpoint name {stem}")
        # Training Resources must name a GPU; a bare number there is a README column shifted into it (MaskFormer)
        if re.fullmatch(r"\d+x [\d.]+ GPUS", r["hardware"] or ""):
            notes.append(f"metafile Training Resources holds a number ({r['hardware']!r}: a README column shifted "
                         f"into it, probably the inference fps); hardware left empty")
            findings.append(("hardware not a GPU name", r["name"], r["hardware"]))
            r["hardware"] = ""
        cands = configs[r["method"]]
        scored = sorted(((similarity(stem, os.path.basename(p)[:-3]), p) for p in cands), key=lambda t: (-t[0], t[1]))
        best = scored[0][0] if scored else 0.0
        tops = [p for s, p in scored if s == best]
        meta_path = os.path.join(ROOT, os.path.relpath(r["metafile_config"], "configs"))
        exists = os.path.isfile(meta_path)
        dup = name_count[r["name"]] > 1
        if dup:
            findings.append(("duplicate metafile Name", r["name"], stem))
        if not exists:
            findings.append(("config file missing", r["name"], r["metafile_config"]))
        # the metafile's config contradicts the checkpoint name when the name holds a token that the config lacks
        # and another config of the method has (r101 vs r50, 160k vs 80k, 4x4 vs 4x2, svt vs pcpvt, ...)
        contradicts = False
        if exists:
            own = tokens(os.path.basename(meta_path)[:-3])
            others = set()
            for p in cands:
                if p != meta_path:
                    others |= set(tokens(os.path.basename(p)[:-3]))
            contradicts = any(t not in own and t in others for t in tokens(stem))
        if exists and not contradicts:
            chosen = meta_path
        else:
            if len(tops) != 1:
                raise SystemExit(f"{r['name']}: cannot resolve the config of {r['url']}: {tops}")
            chosen = tops[0]
            why = []
            if dup:
                why.append(f"metafile Name {r['name']!r} is used by {name_count[r['name']]} entries")
            if not exists:
                why.append(f"metafile config {r['metafile_config']} does not exist in the wheel")
            else:
                why.append(f"metafile config {os.path.basename(meta_path)} does not match the checkpoint name {stem}")
                findings.append(("config vs checkpoint name mismatch", r["name"], stem))
            notes.append("; ".join(why) + f"; config chosen by the checkpoint file name: {config_rel(chosen)}")
        r["config"] = config_rel(chosen)
        r["_notes"] = notes
    # dataset field: must be a known dataset (one the configs' own names agree with)
    ds_by_token = collections.defaultdict(collections.Counter)
    for r in rows:
        if not r["dataset_raw"].startswith("#"):
            ds_by_token[dataset_token(r["config"])][r["dataset_raw"]] += 1
    for r in rows:
        ds = r["dataset_raw"]
        tok = dataset_token(r["config"])
        if ds.startswith("#") or not ds or ds not in ds_by_token[tok]:
            guess = ds_by_token[tok].most_common(1)
            if not guess:
                raise SystemExit(f"{r['name']}: dataset {ds!r} and no other row with dataset token {tok!r}")
            r["_notes"].append(f"metafile dataset field holds {ds!r}; dataset from the config name ({tok}): {guess[0][0]}")
            findings.append(("dataset not a known dataset", r["name"], ds))
            ds = guess[0][0]
        r["dataset"] = ds
    return rows, findings


def dataset_token(config):
    """The dataset part of a 1.x config name: `..._<dataset>-<crop>.py` (or the last `_` part)."""
    base = os.path.basename(config)[:-3]
    last = base.split("_")[-1]
    m = re.match(r"(.+?)-?\d+x\d+$", last)
    if m:
        return m.group(1)
    # 0.x-style names that survive in the wheel (poolformer s36): `..._<crop>_<iters>_<dataset>`
    return last


# ----------------------------------------------------------------------------------------------- configs

def plain(x):
    """Config values as plain JSON (tuples -> lists, ConfigDict -> dict, sorted keys later by json)."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if isinstance(x, type):
        return x.__module__ + "." + x.__name__
    return repr(x)


def strip_init(d, path, found):
    """Remove init_cfg / pretrained everywhere (in place); record their pretrained sources by path."""
    if isinstance(d, dict):
        for k in list(d.keys()):
            v = d[k]
            if k == "pretrained":
                if v:
                    found[f"{path}.pretrained"] = plain(v)
                del d[k]
            elif k == "init_cfg":
                for i, ic in enumerate(v if isinstance(v, (list, tuple)) else [v]):
                    if isinstance(ic, dict) and ic.get("type") == "Pretrained":
                        src = dict(checkpoint=plain(ic.get("checkpoint")))
                        if ic.get("prefix"):
                            src["prefix"] = ic["prefix"]
                        found[f"{path}.init_cfg" + (f"[{i}]" if isinstance(v, (list, tuple)) else "")] = src
                del d[k]
            else:
                strip_init(v, f"{path}.{k}", found)
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            strip_init(v, f"{path}[{i}]", found)


def find_losses(d, path, out):
    if isinstance(d, dict):
        for k, v in d.items():
            if k.startswith("loss") and isinstance(v, dict) and "type" in v:
                out[f"{path}.{k}"] = plain(v)
            elif k.startswith("loss") and isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) and "type" in x for x in v):
                out[f"{path}.{k}"] = plain(v)
            else:
                find_losses(v, f"{path}.{k}", out)
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            find_losses(v, f"{path}[{i}]", out)


def step(pipeline, *kinds):
    for s in pipeline or []:
        if s.get("type") in kinds:
            return s
    return None


def inner_dataset(d):
    while d is not None and "pipeline" not in d:  # RepeatDataset / ConcatDataset wrappers
        if "dataset" in d:
            d = d["dataset"]
        elif "datasets" in d:
            d = d["datasets"][0]
        else:
            return d
    return d


def recipe(cfg, config_path):
    """tools/oracle_dump_recipes.py's recipe() fields, robust to every method, plus optimizer/scheduler/loss details."""
    tds = inner_dataset(cfg.train_dataloader.dataset)
    tp = tds.get("pipeline") or []
    rr = step(tp, "RandomResize")
    rcr = step(tp, "RandomChoiceResize")
    rc = step(tp, "RandomCrop")
    opt = cfg.optim_wrapper
    o = opt.get("optimizer") or {}
    scheds = cfg.get("param_scheduler") or []
    scheds = scheds if isinstance(scheds, (list, tuple)) else [scheds]
    last = scheds[-1] if scheds else {}
    model = cfg.model
    dec = model.get("decode_head")
    aux = model.get("auxiliary_head")
    def loss_weight(h):
        if not isinstance(h, dict):
            h = h[-1] if isinstance(h, (list, tuple)) and h else None
        if not isinstance(h, dict) or "loss_decode" not in h:
            return None
        ld = h["loss_decode"]
        ld = ld if isinstance(ld, (list, tuple)) else [ld]
        return plain([x.get("loss_weight", 1.0) for x in ld]) if len(ld) > 1 else ld[0].get("loss_weight", 1.0)
    dp = model.get("data_preprocessor") or {}
    gpus = re.search(r"_(\d+)xb(\d+)[-_]", os.path.basename(config_path)) or re.search(r"_(\d+)x(\d+)_", os.path.basename(config_path))
    losses = {}
    find_losses(plain(model), "model", losses)
    crop = rc["crop_size"] if rc else dp.get("size")
    tcfg = cfg.get("train_cfg") or {}
    return dict(
        crop=plain(crop), cat_max_ratio=rc.get("cat_max_ratio", 1.0) if rc else None,
        train_scale=plain(rr["scale"]) if rr else (plain(rcr["scales"]) if rcr else None),
        ratio_range=plain(rr["ratio_range"]) if rr else None,
        train_resize=plain({k: v for k, v in (rr or rcr or {}).items()}) or None,
        images_per_gpu=cfg.train_dataloader.batch_size,
        gpus=int(gpus.group(1)) if gpus else None, gpus_batch_from_name=int(gpus.group(2)) if gpus else None,
        iters=tcfg.get("max_iters"), max_epochs=tcfg.get("max_epochs"), train_loop=tcfg.get("type"),
        val_interval=tcfg.get("val_interval"),
        optim_wrapper=opt.get("type", "OptimWrapper"), optimizer=o.get("type"), lr=o.get("lr"),
        momentum=o.get("momentum"), weight_decay=o.get("weight_decay"),
        betas=plain(o["betas"]) if "betas" in o else None, eps=o.get("eps"),
        optimizer_cfg=plain(o), paramwise_cfg=plain(opt.get("paramwise_cfg")),
        constructor=opt.get("constructor"), clip_grad=plain(opt.get("clip_grad")),
        accumulative_counts=opt.get("accumulative_counts"),
        amp=opt.get("type") == "AmpOptimWrapper", loss_scale=plain(opt.get("loss_scale")),
        poly_power=last.get("power"), min_lr=last.get("eta_min"), scheduler=last.get("type"),
        param_scheduler=plain(scheds),
        decode_loss_weight=loss_weight(dec), aux_loss_weight=loss_weight(aux) if aux else None,
        losses=losses,
        seg_pad_val=dp.get("seg_pad_val", 255), pad_val=dp.get("pad_val", 0),
        mean=plain(dp.get("mean")), std=plain(dp.get("std")), bgr_to_rgb=dp.get("bgr_to_rgb", False),
        train_pipeline=plain([s for s in tp if s.get("type") not in ("LoadImageFromFile", "PackSegInputs")]),
        data_root=tds.get("data_root"),
    )


def tta_info(cfg):
    tta = cfg.get("tta_pipeline")
    if not tta:
        return None
    aug = step(tta, "TestTimeAug")
    if not aug:
        return dict(pipeline=plain(tta))
    ratios, flip = [], []
    for group in aug["transforms"]:
        for t in group:
            if t.get("type") == "Resize" and "scale_factor" in t:
                ratios.append(t["scale_factor"])
            if t.get("type") == "RandomFlip":
                flip.append(t.get("prob"))
    return dict(ratios=plain(ratios), flip_probs=plain(flip), keep_ratio=all(
        t.get("keep_ratio", False) for g in aug["transforms"] for t in g if t.get("type") == "Resize"),
        pipeline=plain(tta))


def dataset_facts(cfg):
    d = inner_dataset(cfg.test_dataloader.dataset)
    dtype = d.get("type")
    rzl = d.get("reduce_zero_label")
    source = "config"
    if rzl is None:
        source = "unknown"
        cls = DATASETS.get(dtype)
        for klass in inspect.getmro(cls) if cls else ():  # the first __init__ naming it (others pass **kwargs on)
            if "__init__" in klass.__dict__:
                params = inspect.signature(klass.__init__).parameters
                if "reduce_zero_label" in params:
                    rzl = params["reduce_zero_label"].default
                    source = f"default of {klass.__name__}"
                    break
    return dict(dataset_type=dtype, reduce_zero_label=rzl, reduce_zero_label_source=source,
                data_prefix=plain(d.get("data_prefix")), ann_file=d.get("ann_file", ""))


def keep_dp(dp):
    keep = ("mean", "std", "bgr_to_rgb", "rgb_to_bgr", "pad_val", "seg_pad_val", "size", "size_divisor", "test_cfg")
    return {k: plain(dp[k]) for k in keep if k in dp}


def build_digest(model_cfg):
    """n_keys, n_params, keys_digest of the built segmentor's state_dict; meta device first, CPU fallback."""
    err = None
    for device in ("meta", "cpu"):
        try:
            torch.manual_seed(0)
            if device == "meta":
                with torch.device("meta"):
                    model = MODELS.build(copy.deepcopy(model_cfg))
            else:
                model = MODELS.build(copy.deepcopy(model_cfg))
            sd = model.state_dict()
            text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(sd.items()))
            n_params = sum(p.numel() for p in model.parameters())
            out = dict(n_keys=len(sd), n_params=int(n_params), keys_digest=hashlib.sha1(text.encode()).hexdigest(),
                       built_on=device, segmentor=type(model).__name__,
                       n_buffers=sum(1 for _ in model.buffers()))
            if device == "cpu" and err:
                out["meta_error"] = err
            del model, sd
            return out
        except Exception as e:  # noqa: BLE001
            err = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    raise RuntimeError(err)


BUILD_FIELDS = ("n_keys", "n_params", "keys_digest", "built_on", "segmentor", "n_buffers", "meta_error", "build_error",
                "build_skipped")
FACTS_VERSION = 2  # bump when the config facts change; cached build results (the slow part) are kept


def config_facts(config, prev=None):
    path = os.path.join(ROOT, os.path.relpath(config, "configs"))
    cfg = Config.fromfile(path)
    model = copy.deepcopy(cfg.model)
    pre = {}
    strip_init(model, "model", pre)
    out = dict(config=config, method=config.split("/")[1])
    mj = plain(model)
    if "data_preprocessor" in mj:
        mj["data_preprocessor"] = keep_dp(mj["data_preprocessor"])
    out["model"] = mj
    out["pretrained"] = pre
    out["test_cfg"] = plain(cfg.model.get("test_cfg"))
    tp = [s for s in (cfg.get("test_pipeline") or []) if s.get("type") not in ("LoadImageFromFile", "PackSegInputs")]
    out["test_pipeline"] = plain(tp)
    rs = step(tp, "Resize")
    out["test_resize"] = dict(scale=plain(rs.get("scale")), keep_ratio=rs.get("keep_ratio", False)) if rs else None
    out["tta"] = tta_info(cfg)
    out["recipe"] = recipe(cfg, config)
    out.update(dataset_facts(cfg))
    skip = SKIP_BUILD.get(out["method"])
    if skip:
        out.update(n_keys=None, n_params=None, keys_digest=None, build_skipped=skip)
        return out
    if prev and (prev.get("keys_digest") or prev.get("build_error")):
        out.update({k: prev[k] for k in BUILD_FIELDS if k in prev})
        return out
    try:
        out.update(build_digest(model))
    except Exception as e:  # noqa: BLE001
        out.update(n_keys=None, n_params=None, keys_digest=None, build_error=str(e))
    return out


# ----------------------------------------------------------------------------------------------- output

def fmt_num(v):
    if v is None or v == "":
        return ""
    return repr(float(v)) if isinstance(v, float) else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--legacy-metafiles", help="folder with mmsegmentation 0.30.0's configs/*/*.yml (for fps)")
    ap.add_argument("--cache", default="/tmp/mmseg_facts_cache.json")
    ap.add_argument("--out-dir", default=REF)
    ap.add_argument("--only", help="comma-separated method dirs (for a quick look; does not write the outputs)")
    a = ap.parse_args()
    t0 = time.time()
    MMLogger.get_instance("mmengine").setLevel(logging.ERROR)
    register_all_modules()

    legacy = legacy_metafiles(a.legacy_metafiles or fetch_legacy_metafiles())
    rows, findings = resolve(load_rows(), legacy)
    if a.only:
        keep = set(a.only.split(","))
        rows = [r for r in rows if r["method"] in keep]

    cache = {}
    if os.path.exists(a.cache):
        cache = json.load(open(a.cache))
        if cache.get("_mmseg") != mmseg.__version__ or cache.get("_torch") != torch.__version__:
            cache = {}
    cache["_mmseg"], cache["_torch"] = mmseg.__version__, torch.__version__
    configs = sorted({r["config"] for r in rows})
    todo = [c for c in configs if cache.get(c, {}).get("facts_version") != FACTS_VERSION]
    print(f"{len(rows)} checkpoints, {len(configs)} configs, {len(todo)} to extract", flush=True)
    last_save = time.time()
    for i, c in enumerate(todo):
        t = time.time()
        try:
            cache[c] = config_facts(c, cache.get(c))
            cache[c]["facts_version"] = FACTS_VERSION
        except Exception as e:  # noqa: BLE001
            cache[c] = dict(config=c, method=c.split("/")[1], error=f"{type(e).__name__}: {e}")
        f = cache[c]
        print(f"[{i + 1}/{len(todo)}] {c} {time.time() - t:.1f}s {f.get('built_on', '')} "
              f"{f.get('build_error') or f.get('error') or f.get('build_skipped') or ''}", flush=True)
        if time.time() - last_save > 20 or i == len(todo) - 1:
            tmp = a.cache + ".tmp"
            json.dump(cache, open(tmp, "w"))
            os.replace(tmp, a.cache)
            last_save = time.time()

    # rows -> CSV
    out_rows = []
    for r in rows:
        f = cache[r["config"]]
        notes = list(r["_notes"])
        crop = (f.get("recipe") or {}).get("crop")
        crop_s = f"{crop[0]}x{crop[1]}" if isinstance(crop, list) and len(crop) == 2 else ""
        # the crop in the config name: the last HxW with both sides >= 64 (`8x4` of 0.x names is GPUs x batch)
        named_crop = [f"{h}x{w}" for h, w in re.findall(r"(\d+)x(\d+)", os.path.basename(r["config"]))
                      if int(h) >= 64 and int(w) >= 64]
        named_crop = named_crop[-1] if named_crop else None
        if named_crop and named_crop != crop_s:
            if crop_s:
                notes.append(f"the config name says crop {named_crop} but its train pipeline crops {crop_s}; "
                             f"crop from the name")
                findings.append(("config crop vs name mismatch", r["name"], crop_s))
            crop_s = named_crop
        ms = legacy.get(r["url"].rsplit("/", 1)[1], (None, None))[1]
        fps = f"{round(1000.0 / ms, 2):.2f}" if ms else ""
        if r["method"] in SKIP_BUILD:
            notes.append(SKIP_BUILD[r["method"]] + "; state-dict facts not extracted")
        if f.get("build_error"):
            notes.append("model did not build in the oracle: " + f["build_error"])
        # the schedule the config name (and the checkpoint name) states; some 1.x configs inherit another schedule
        iters = (f.get("recipe") or {}).get("iters")
        named = re.search(r"[-_](\d+)k[-_]", os.path.basename(r["config"]))
        named = int(named.group(1)) * 1000 if named else None
        if named and iters and named != iters:
            notes.append(f"the config resolves train_cfg.max_iters={iters} but its name and the checkpoint's say "
                         f"{named // 1000}k (upstream config inherits the wrong schedule); schedule from the name")
            findings.append(("config schedule vs name mismatch", r["name"], iters))
        sha = re.search(r"-([0-9a-f]{8})\.pth$", r["url"])
        metrics = r["metrics"]
        out_rows.append(dict(
            method=r["method"], collection=r["collection"], name=r["name"], config=r["config"],
            dataset=r["dataset"], crop=crop_s, schedule=fmt_num(named or iters),
            mem_gb=fmt_num(r["mem"]), fps=fps, hardware=r["hardware"],
            miou=fmt_num(metrics.get("mIoU")), miou_msflip=fmt_num(metrics.get("mIoU(ms+flip)")),
            metrics=json.dumps(metrics, sort_keys=True) if set(metrics) - {"mIoU", "mIoU(ms+flip)"} else "",
            checkpoint_url=r["url"], ckpt_sha256_prefix=sha.group(1) if sha else "", log_url=r["log_url"],
            architecture="|".join(r["architecture"]),
            metafile_config=r["metafile_config"] if r["metafile_config"] != r["config"] else "",
            note=" | ".join(notes)))
    out_rows.sort(key=lambda d: (d["method"], d["config"], d["checkpoint_url"]))

    # summary
    print("\nupstream metafile findings:")
    for kind, cnt in sorted(collections.Counter(k for k, _, _ in findings).items()):
        print(f"  {kind}: {cnt}")
    for r in out_rows:
        if r["note"]:
            print(f"  - {r['method']}: {r['name']} [{r['checkpoint_url'].split('/')[-1]}]: {r['note']}")
    bad = {c: cache[c] for c in configs if cache[c].get("error") or cache[c].get("build_error") or cache[c].get("build_skipped")}
    print(f"\nconfigs not built ({len(bad)}):")
    for c, f in sorted(bad.items()):
        print(f"  {c}: {f.get('error') or f.get('build_error') or f.get('build_skipped')}")
    print("\ncheckpoints per method:", dict(sorted(collections.Counter(r["method"] for r in out_rows).items())))
    print(f"built on meta: {sum(1 for c in configs if cache[c].get('built_on') == 'meta')}, "
          f"on cpu: {sum(1 for c in configs if cache[c].get('built_on') == 'cpu')}")
    if a.only:
        print("(--only: outputs not written)")
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(out_rows)
    with open(os.path.join(a.out_dir, "mmseg_checkpoints.csv"), "w") as fh:
        fh.write(buf.getvalue())
    doc = dict(mmseg_version=mmseg.__version__, torch_version=torch.__version__,
               keys_digest='sha1 of "\\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(model.state_dict().items()))',
               configs={c: {k: v for k, v in cache[c].items() if k != "facts_version"} for c in configs})
    with open(os.path.join(a.out_dir, "mmseg_configs.json"), "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"wrote {len(out_rows)} rows, {len(configs)} configs in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
