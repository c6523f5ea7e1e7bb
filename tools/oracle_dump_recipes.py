"""Dump the resolved training recipe of every zoo config and the class metadata of every dataset.

Run once with the MMSegmentation oracle's python (../shared/tools/mmseg-oracle-setup.sh):

    /path/to/oracle/bin/python tools/oracle_dump_recipes.py tools/reference/mmseg_recipes.json

It reads facts (numbers, class names, palettes) out of MMSegmentation's configs and dataset classes;
tools/generate_zoo.py turns them, with the reference CSVs, into sszoo/registry/zoo.json.
"""
import csv, glob, json, os, sys, warnings

warnings.filterwarnings("ignore")
import mmseg
from mmengine import Config
from mmseg.utils import register_all_modules
from mmseg.registry import DATASETS

HERE = os.path.dirname(os.path.abspath(__file__))


def find_config(base):
    root = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs")
    hits = glob.glob(os.path.join(root, "*", base + ".py"))
    return hits[0]


def step(pipeline, kind):
    for s in pipeline:
        if s["type"] == kind:
            return s
    return None


def train_dataset(cfg):
    d = cfg.train_dataloader.dataset
    while "pipeline" not in d:  # RepeatDataset / ConcatDataset wrappers (VOC + Aug, iSAID, ...)
        d = d["dataset"] if "dataset" in d else d["datasets"][0]
    return d


def recipe(cfg):
    tp = train_dataset(cfg).pipeline
    rr = step(tp, "RandomResize")
    rc = step(tp, "RandomCrop")
    opt = cfg.optim_wrapper
    o = opt.optimizer
    sched = cfg.param_scheduler
    sched = sched[-1] if isinstance(sched, list) else sched
    aux = cfg.model.get("auxiliary_head")
    dec = cfg.model.decode_head
    return dict(
        crop=list(rc["crop_size"]), cat_max_ratio=rc.get("cat_max_ratio", 1.0),
        train_scale=list(rr["scale"]), ratio_range=list(rr["ratio_range"]),
        images_per_gpu=cfg.train_dataloader.batch_size,
        iters=cfg.train_cfg.max_iters, val_interval=cfg.train_cfg.get("val_interval"),
        optimizer=o["type"], lr=o["lr"], momentum=o.get("momentum"), weight_decay=o.get("weight_decay"),
        betas=list(o["betas"]) if "betas" in o else None,
        amp=opt.get("type") == "AmpOptimWrapper", loss_scale=opt.get("loss_scale"),
        poly_power=sched.get("power"), min_lr=sched.get("eta_min"), scheduler=sched["type"],
        decode_loss_weight=dec.loss_decode.get("loss_weight", 1.0),
        aux_loss_weight=aux.loss_decode.get("loss_weight") if aux else None,
        seg_pad_val=cfg.model.data_preprocessor.get("seg_pad_val", 255),
        pad_val=cfg.model.data_preprocessor.get("pad_val", 0),
        mean=list(cfg.model.data_preprocessor.mean), std=list(cfg.model.data_preprocessor.std),
        bgr_to_rgb=cfg.model.data_preprocessor.get("bgr_to_rgb", False),
        test_pipeline=[dict(s) for s in cfg.test_pipeline if s["type"] not in ("LoadImageFromFile", "PackSegInputs")],
        data_root=train_dataset(cfg).get("data_root"),
        dataset_type=cfg.test_dataloader.dataset.type,
        val_data_prefix=dict(cfg.test_dataloader.dataset.get("data_prefix", {})),
        val_ann_file=cfg.test_dataloader.dataset.get("ann_file", ""),
    )


def main():
    out = sys.argv[1]
    register_all_modules()
    rows = list(csv.DictReader(open(os.path.join(HERE, "reference", "mmseg_zoo.csv"))))
    rows += list(csv.DictReader(open(os.path.join(HERE, "reference", "mmseg_fp16_legacy.csv"))))
    recipes, datasets = {}, {}
    for r in rows:
        base = os.path.basename(r["config"]).removesuffix(".py")
        if "configs/fp16/" in r["config"]:
            # the 0.x fp16 folder is gone in 1.x; its recipe is the 1.x amp config of the same model
            base = base.replace("_512x1024_80k_fp16_cityscapes", "").replace("-d8", "-d8_4xb2-amp-80k_cityscapes-512x1024")
        cfg = Config.fromfile(find_config(base))
        recipes[r["config"]] = recipe(cfg)
        dtype = cfg.test_dataloader.dataset.type
        if dtype not in datasets:
            cls = DATASETS.get(dtype)
            meta = cls.METAINFO
            datasets[dtype] = dict(classes=list(meta["classes"]), palette=[list(p) for p in meta["palette"]])
    json.dump(dict(mmseg_version=mmseg.__version__, recipes=recipes, datasets=datasets), open(out, "w"), indent=1)
    print(len(recipes), "recipes,", len(datasets), "datasets")


if __name__ == "__main__":
    main()
