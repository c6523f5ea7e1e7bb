"""The training step and loop: loss, optimiser, poly schedule, mixed precision, DDP, checkpoints, evaluation.

One iteration is what the reference's training step does: forward through backbone, decode head and
auxiliary head; cross-entropy of each head's logits resized (bilinear, the head's ``align_corners``)
to the label size, averaged over *all* label pixels (ignored pixels count in the denominator, as
MMSegmentation's ``CrossEntropyLoss`` with ``avg_non_ignore=False``); total = decode + 0.4 x aux;
SGD with momentum and weight decay on every parameter; the learning rate follows the poly schedule
``(lr - min_lr) * (1 - it / (iters - 1)) ** power + min_lr`` set before step ``it``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from typing import Any, Optional

import torch
from torch import nn

from ..atomic import write_text
from ..models import HeadOutputs, Segmentor
from ..models.losses import seg_cross_entropy  # noqa: F401  (re-exported by sszoo.train)
from ..registry import get_entry
from .augment import AugmentConfig, TrainAugment, collate, normalize_batch
from .checkpoint import (FORMAT, LAST_POINTER, atomic_save, export_safetensors,
                         iteration_checkpoints, read_train_checkpoint, rng_state, set_rng_state)
from ..distributed import all_reduce_mean, barrier, cleanup, convert_batchnorm, init_distributed
from .logger import TrainLogger, format_eta, peak_memory_mb
from .optim import clip_gradients, group_lr, param_groups
from .recipe import TrainConfig, format_config
from .sampling import AugmentedDataset, StepBatchSampler, _mix


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, bad labels); the message says what to do."""


# ------------------------------------------------------------------------------------------------ loss
class TrainForward(nn.Module):
    """The module DDP wraps: its forward is the segmentor's training forward, every head's output at
    feature resolution (:meth:`Segmentor.forward_heads`, heads in the reference's order)."""

    def __init__(self, model: Segmentor) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> HeadOutputs:
        return self.model.forward_heads(x)


def compute_losses(model: Segmentor, outputs: HeadOutputs, label: torch.Tensor, *, aux_weight: Optional[float],
                   ignore_index: int = 255, valid: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
    """``{"decode": ..., "aux": ... (weighted), "total": ...}``: each head's own loss terms
    (:meth:`Segmentor.loss`), auxiliary heads weighted by ``aux_weight`` when given; ``valid`` (N x 2, the
    unpadded size of each crop) for heads whose targets depend on the padding (PIDNet's boundaries)."""
    return model.loss(outputs, label, aux_weight=aux_weight, ignore_index=ignore_index, valid=valid)


# -------------------------------------------------------------------------------------- optimiser, lr
def poly_lr(base_lr: float, iteration: int, total: int, power: float, min_lr: float) -> float:
    """The poly learning rate used for update ``iteration`` (0-based) of ``total``.

    As the reference's ``PolyLR(begin=0, end=total)``, which decays over ``total - 1`` steps, the last
    update uses exactly ``min_lr``: ``(base_lr - min_lr) * (1 - iteration / (total - 1)) ** power + min_lr``.
    """
    span = total - 1
    if span <= 0:
        return base_lr
    frac = min(iteration, span) / span
    return (base_lr - min_lr) * (1.0 - frac) ** power + min_lr


def scheduled_lr(cfg: TrainConfig, iteration: int, base_lr: Optional[float] = None) -> float:
    """The learning rate of update ``iteration`` for a parameter group whose unscheduled lr is ``base_lr``
    (default ``cfg.lr``): the linear warm-up, then the poly schedule or the recipe's milestones.

    As MMEngine's ``LinearLR(start_factor, begin=0, end=W)`` followed by ``PolyLR(begin=W, end=iters)``:
    the warm-up rises from ``start_factor x lr`` to ``lr`` at update ``W - 1``, and the poly schedule
    decays over the remaining updates (:func:`poly_lr`); see :func:`sszoo.train.optim.group_lr`.
    """
    return group_lr(cfg.lr if base_lr is None else base_lr, iteration, iters=cfg.iters,
                    warmup_iters=cfg.warmup_iters, warmup_start_factor=cfg.warmup_start_factor,
                    poly_power=cfg.poly_power, min_lr=cfg.min_lr, milestones=tuple(cfg.lr_milestones),
                    gamma=cfg.lr_gamma)


def set_lr(optimizer: torch.optim.Optimizer, cfg: TrainConfig, iteration: int) -> float:
    """Set every group's lr for update ``iteration`` (each from its own ``lr_mult x lr``); returns the base one."""
    for g in optimizer.param_groups:
        g["lr"] = scheduled_lr(cfg, iteration, cfg.lr * g.get("lr_mult", 1.0))
    return scheduled_lr(cfg, iteration)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay), Adam (L2 weight decay added to the gradient, as torch's and so MMEngine's
    Adam: CGNet's recipe) or AdamW, over the recipe's parameter groups (:func:`sszoo.train.optim.param_groups`:
    one group, MMEngine's custom keys, or layer-wise lr decay)."""
    groups = param_groups(model, cfg.lr, cfg.weight_decay, cfg.paramwise)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def init_weights(model: Segmentor) -> None:
    """Initialisation for training from scratch: He (fan-out) normal convolutions, BN at identity,
    and the classifiers at N(0, 0.01) with zero bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    init_weights_classifier_only(model)


# ---------------------------------------------------------------------------------------- model set-up
def drop_mismatched_class_weights(model: Segmentor) -> list[str]:
    """Remove per-class loss weights (CGNet's, PIDNet's 19 Cityscapes weights) from heads whose class count is
    not theirs, e.g. after ``num_classes=`` for another dataset; returns the heads changed."""
    changed = []
    for name, head in [("decode_head", h) for h in model.decode_heads] + [("auxiliary_head", h)
                                                                          for h in model.auxiliary_heads]:
        specs = getattr(head, "loss_specs", ())
        n = head.conv_seg.out_channels if hasattr(head, "conv_seg") else model.num_classes
        if any(s.class_weight is not None and len(s.class_weight) != n for s in specs):
            head.loss_specs = tuple(dataclasses.replace(s, class_weight=None)
                                    if s.class_weight is not None and len(s.class_weight) != n else s for s in specs)
            changed.append(name)
    return changed


def build_train_model(cfg: TrainConfig, log) -> Segmentor:
    """The network of ``cfg.model`` with ``cfg.num_classes`` outputs, initialised as the config asks."""
    from ..factory import create_model
    from ..hub import load_state_dict_strict

    entry = get_entry(cfg.model)
    model = create_model(cfg.model, num_classes=cfg.num_classes)
    dropped = drop_mismatched_class_weights(model)
    if dropped:
        log(f"loss: the recipe's class weights are for {entry.num_classes} classes, the model has "
            f"{cfg.num_classes}: {', '.join(dropped)} train without class weights")
    if cfg.init_from:
        state = _load_init_state(cfg.init_from, entry)
        own = model.state_dict()
        dropped = [k for k in state if k.endswith("conv_seg.weight") or k.endswith("conv_seg.bias")
                   if k in own and state[k].shape != own[k].shape]
        if dropped:
            log(f"init: {cfg.init_from} has another class count; classifier layers {dropped} start fresh")
            init_weights_classifier_only(model)
            state = {k: v for k, v in state.items() if k not in dropped}
            state.update({k: own[k] for k in dropped})
        if model.auxiliary_head is not None and not any(k.startswith("auxiliary_head.") for k in state):
            log("init: the checkpoint has no auxiliary head; it starts fresh")
            state.update({k: v for k, v in own.items() if k.startswith("auxiliary_head.")})
        load_state_dict_strict(model, state, source=f"--init-from {cfg.init_from}")
        log(f"init: all weights from {cfg.init_from}")
    else:
        init_weights(model)
        if cfg.pretrained_backbone:
            try:
                from ..hub import load_backbone_weights
            except ImportError as e:
                raise TrainingError("--pretrained-backbone needs sszoo.hub.load_backbone_weights, which this "
                                    "installation lacks; train from scratch or use --init-from PATH") from e
            backbone_state = load_backbone_weights(cfg.pretrained_backbone)
            load_state_dict_strict(model.backbone, backbone_state, source=f"backbone {cfg.pretrained_backbone}")
            log(f"init: backbone from {cfg.pretrained_backbone}, heads random")
        else:
            log("init: random weights (no --pretrained-backbone / --init-from): training from scratch")
    if cfg.bn_momentum is not None:  # the recipe's norm_cfg momentum (Fast-SCNN trains its running stats at 0.01)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = cfg.bn_momentum
        log(f"init: BatchNorm momentum {cfg.bn_momentum:g}, as the recipe")
    return model


def init_weights_classifier_only(model: Segmentor) -> None:
    """Every head's classifier at N(0, 0.01) with zero bias (a head without a ``conv_seg``, Segmenter's mask
    transformer, gets fresh class embeddings and mask norm from its own ``reset_classifier``)."""
    for head in model.decode_heads + model.auxiliary_heads:
        if not hasattr(head, "conv_seg"):
            head.reset_classifier(head.num_classes)
            continue
        nn.init.normal_(head.conv_seg.weight, std=0.01)
        nn.init.zeros_(head.conv_seg.bias)


def _load_init_state(spec: str, entry) -> dict[str, torch.Tensor]:
    from ..hub import load_pretrained

    if os.path.exists(spec) or "://" in spec or spec.startswith("hf-hub:"):
        return dict(load_pretrained(entry, spec))
    return dict(load_pretrained(get_entry(spec), True))  # a zoo name: its published weights


# ------------------------------------------------------------------------------------------- the loop
class Trainer:
    """Runs one training job described by a :class:`TrainConfig`.

    ``train_set``/``val_set`` default to ``sszoo.data.build_dataset(cfg.dataset, cfg.data, "train"/"val")``;
    ``model`` defaults to :func:`build_train_model`. ``resume`` is a training checkpoint path.
    """

    def __init__(self, cfg: TrainConfig, *, resume: Optional[str] = None, model: Optional[Segmentor] = None,
                 train_set=None, val_set=None) -> None:
        self.cfg = cfg
        self.dist, self.device = init_distributed(cfg.device)
        self.log = TrainLogger(cfg.work_dir, enabled=self.dist.is_main, tensorboard=cfg.tensorboard)
        self.entry = get_entry(cfg.model)
        self.resume_path = resume
        self._model_arg = model
        self._train_set, self._val_set = train_set, val_set

    # ---- set-up
    def _datasets(self):
        from ..data import build_dataset

        train_set = self._train_set if self._train_set is not None else build_dataset(self.cfg.dataset, self.cfg.data,
                                                                                      "train")
        if len(train_set) == 0:
            raise TrainingError(f"the training set under {self.cfg.data!r} has no images; generate one with "
                                "`python -m sszoo.data.synthetic ROOT --layout cityscapes --num 16 --split train`")
        val_set = self._val_set
        if val_set is None:
            try:
                val_set = build_dataset(self.cfg.dataset, self.cfg.data, "val")
            except Exception as e:  # no val split: train without evaluation, say so
                self.log.info(f"evaluation disabled: no usable val split ({str(e).splitlines()[0]})")
                val_set = None
        info = getattr(val_set, "info", None)
        if info is not None and info.num_classes != self.cfg.num_classes:
            self.log.info(f"evaluation disabled: the model has {self.cfg.num_classes} classes but the val set "
                          f"({info.key}) has {info.num_classes}")
            val_set = None
        return train_set, val_set

    def _protocol(self):
        import dataclasses

        from ..inference import Protocol
        proto = Protocol.from_entry(self.entry)
        return dataclasses.replace(proto, scale=tuple(self.cfg.test_scale), mean=tuple(self.cfg.mean),
                                   std=tuple(self.cfg.std))

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            self.log.close()
            cleanup()

    def _run(self) -> dict[str, Any]:
        cfg, dev, info = self.cfg, self.device, self.dist
        log = self.log.info
        if info.is_main:
            os.makedirs(cfg.work_dir, exist_ok=True)
            write_text(cfg.to_json() + "\n", os.path.join(cfg.work_dir, "config.json"))
            log(f"sszoo.train: {cfg.model} on {cfg.dataset} at {cfg.data} -> {cfg.work_dir}\n"
                f"effective recipe:\n{format_config(cfg)}\n"
                f"device {dev}, {info.world_size} process(es), {cfg.batch_size // info.world_size} images each")
        train_set, val_set = self._datasets()
        if dev.type == "cuda":
            # cuDNN autotuning picks the fastest kernels; deterministic mode pins reproducible ones instead
            torch.backends.cudnn.benchmark = not cfg.deterministic
            torch.backends.cudnn.deterministic = cfg.deterministic
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(cfg.seed)  # model initialisation is seeded too
        model = self._model_arg if self._model_arg is not None else build_train_model(cfg, log)
        model.train()
        model.to(dev)
        memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        model = convert_batchnorm(model, dev, log)
        forward: nn.Module = TrainForward(model)
        if info.enabled:
            forward = nn.parallel.DistributedDataParallel(forward, device_ids=[dev.index] if dev.type == "cuda"
                                                          else None)
        optimizer = build_optimizer(model, cfg)
        scaler = _make_scaler(cfg.amp, dev)
        amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.amp)

        start, best = 0, None
        if self.resume_path:
            ckpt = read_train_checkpoint(self.resume_path)
            saved = TrainConfig.from_dict(ckpt["config"])
            diff = saved.differences(cfg)
            if diff:
                listing = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
                raise TrainingError(f"cannot resume from {self.resume_path}: the recipe differs ({listing}). "
                                    "Resume with the options of the original run (see its config.json).")
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            if scaler is not None and ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            set_rng_state(ckpt["rng"])
            start, best = int(ckpt["iteration"]), ckpt.get("best")
            log(f"resumed from {self.resume_path} at iteration {start}")
            if start >= cfg.iters:
                log(f"the checkpoint already completed all {cfg.iters} iterations")

        aug = TrainAugment(AugmentConfig(crop=tuple(cfg.crop), scale=tuple(cfg.scale), ratio_range=cfg.ratio_range,
                                         short_sides=tuple(cfg.short_sides), max_size=cfg.max_size,
                                         cat_max_ratio=cfg.cat_max_ratio, flip_prob=cfg.flip_prob,
                                         photometric=cfg.photometric, ignore_index=cfg.ignore_index))
        sampler = StepBatchSampler(len(train_set), cfg.batch_size, cfg.iters, seed=cfg.seed, start=start,
                                   rank=info.rank, world_size=info.world_size)
        loader = torch.utils.data.DataLoader(
            AugmentedDataset(train_set, aug, num_classes=model.num_classes), batch_sampler=sampler,
            num_workers=cfg.workers,
            collate_fn=functools.partial(collate, crop=tuple(cfg.crop), ignore_index=cfg.ignore_index),
            pin_memory=dev.type == "cuda", persistent_workers=False)

        state = _LoopState(start=start, best=best)
        if self.resume_path:
            state.saved = iteration_checkpoints(cfg.work_dir, start)
        last_eval: Optional[dict] = None
        t_window, n_window = time.perf_counter(), 0
        sums = torch.zeros(3, dtype=torch.float64)
        bad_streak = 0
        it = start
        for it, batch in enumerate(loader, start=start):
            # dropout and any other torch randomness of this step depend on (seed, iteration, rank) only
            torch.manual_seed(_mix(cfg.seed, it, info.rank, 3))
            lr = set_lr(optimizer, cfg, it)
            x = normalize_batch(batch["image"].to(dev, non_blocking=True), batch["valid"], cfg.mean, cfg.std,
                                memory_format)
            label = batch["label"].to(dev, non_blocking=True).long()
            ctx = torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
            with ctx:
                outputs = forward(x)
            losses = compute_losses(model, outputs, label, aux_weight=cfg.aux_weight, ignore_index=cfg.ignore_index,
                                    valid=batch["valid"].to(dev))
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scale_before = scaler.get_scale()
                scaler.scale(losses["total"]).backward()
                if cfg.clip_grad:
                    scaler.unscale_(optimizer)  # clip the true gradients, as MMEngine's AmpOptimWrapper
                    clip_gradients(optimizer, cfg.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                if scaler.get_scale() < scale_before:
                    log(f"iter {it + 1}: fp16 gradient overflow, step skipped; loss scale "
                        f"{scale_before:g} -> {scaler.get_scale():g}")
                    self.log.record("overflow", it + 1, {"scale_before": scale_before,
                                                         "scale_after": scaler.get_scale()})
            else:
                losses["total"].backward()
                clip_gradients(optimizer, cfg.clip_grad)
            reduced = all_reduce_mean(torch.stack([losses["decode"].detach(), losses["aux"].detach(),
                                                   losses["total"].detach()]).float())
            if not bool(torch.isfinite(reduced).all()):
                bad_streak += 1
                # with fp16 the loss scaler skips such steps; otherwise (or if it keeps happening) stop
                if scaler is None or bad_streak >= 20:
                    raise TrainingError(
                        f"the loss became non-finite at iteration {it + 1} (decode {reduced[0].item():.4g}, "
                        f"aux {reduced[1].item():.4g}); training stopped and nothing was saved after the last good "
                        f"checkpoint ({state.last_ckpt or 'none written yet'}). Lower --lr (now {cfg.lr:g}), "
                        "check the labels, or use --amp off, then --resume.")
                # fp16: the scaler has skipped this step (inf/NaN gradients); go on with a smaller scale
            else:
                if scaler is None:
                    optimizer.step()
                bad_streak = 0
                sums += reduced.double().cpu()
                n_window += 1
            done = it + 1

            if done % cfg.log_interval == 0 or done == cfg.iters:
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                elapsed = time.perf_counter() - t_window
                ips = n_window * cfg.batch_size / max(elapsed, 1e-9)
                eta = (cfg.iters - done) * elapsed / max(n_window, 1)
                avg = (sums / max(n_window, 1)).tolist()
                rec = {"lr": lr, "loss": avg[2], "decode_loss": avg[0], "aux_loss": avg[1],
                       "images_per_s": ips, "eta_s": eta, "peak_mem_mb": peak_memory_mb(dev)}
                if scaler is not None:
                    rec["grad_scale"] = scaler.get_scale()
                log(f"iter {done}/{cfg.iters}  lr {lr:.3e}  loss {avg[2]:.4f} (decode {avg[0]:.4f}, aux {avg[1]:.4f})"
                    + (f"  scale {rec['grad_scale']:g}" if scaler is not None else "")
                    + f"  {ips:.1f} img/s  eta {format_eta(eta)}  mem {rec['peak_mem_mb']:.0f} MB")
                self.log.record("train", done, rec)
                t_window, n_window = time.perf_counter(), 0
                sums.zero_()

            is_last = done == cfg.iters
            if val_set is not None and ((cfg.eval_interval and done % cfg.eval_interval == 0) or is_last):
                last_eval = self._evaluate(model, val_set, done, state)
                t_window = time.perf_counter()
            if (cfg.ckpt_interval and done % cfg.ckpt_interval == 0) or is_last:
                self._save(model, optimizer, scaler, done, state)
            if state.best_is_new:
                self._save_best(model, optimizer, scaler, done, state)

        result = self._finish(model, state, last_eval, start)
        return result

    # ---- evaluation, checkpoints, export
    def _evaluate(self, model: Segmentor, val_set, done: int, state: "_LoopState") -> Optional[dict]:
        """Evaluate with :func:`sszoo.eval.evaluate` (every process takes its share of the images)."""
        from ..eval import evaluate

        cfg = self.cfg
        model.eval()
        precision = {"off": "fp32"}.get(cfg.amp, cfg.amp)
        with torch.no_grad():
            results = evaluate(model, val_set, self._protocol(), precision=precision, device=self.device,
                               progress=False)
        model.train()
        miou = float(results["mIoU"])
        self.log.info(f"eval at iter {done}: mIoU {miou:.2f}  mAcc {float(results['mAcc']):.2f}  "
                      f"aAcc {float(results['aAcc']):.2f}  ({results.get('num_images', '?')} images)")
        self.log.record("eval", done, {k: float(results[k]) for k in ("mIoU", "mAcc", "aAcc")})
        if state.best is None or miou > state.best["mIoU"]:
            state.best = {"mIoU": miou, "iteration": done}
            state.best_is_new = True
        return results

    def _checkpoint(self, model, optimizer, scaler, done: int, state: "_LoopState") -> dict:
        return {"format": FORMAT, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None, "iteration": done,
                "rng": rng_state(), "config": self.cfg.to_dict(), "best": state.best}

    def _save(self, model, optimizer, scaler, done: int, state: "_LoopState") -> None:
        cfg = self.cfg
        if self.dist.is_main:
            ckpt = self._checkpoint(model, optimizer, scaler, done, state)
            name = f"iter_{done}.pth"
            atomic_save(ckpt, os.path.join(cfg.work_dir, name))
            write_text(name + "\n", os.path.join(cfg.work_dir, LAST_POINTER))
            state.last_ckpt = os.path.join(cfg.work_dir, name)
            state.saved.append(state.last_ckpt)
            # keep the newest `keep_checkpoints` iteration checkpoints (and always the final one)
            while len(state.saved) > max(cfg.keep_checkpoints, 1):
                old = state.saved.pop(0)
                if os.path.exists(old):
                    os.unlink(old)
            self.log.info(f"checkpoint: {state.last_ckpt}")
        barrier()

    def _save_best(self, model, optimizer, scaler, done: int, state: "_LoopState") -> None:
        """``best.pth``: the full checkpoint of the evaluation with the best mIoU so far."""
        if self.dist.is_main:
            atomic_save(self._checkpoint(model, optimizer, scaler, done, state),
                        os.path.join(self.cfg.work_dir, "best.pth"))
            self.log.info(f"best mIoU so far ({state.best['mIoU']:.2f}): {self.cfg.work_dir}/best.pth")
        state.best_is_new = False
        barrier()

    def _finish(self, model: Segmentor, state: "_LoopState", last_eval: Optional[dict], start: int) -> dict[str, Any]:
        cfg = self.cfg
        out: dict[str, Any] = {"work_dir": cfg.work_dir, "iterations": cfg.iters,
                               "final_checkpoint": os.path.join(cfg.work_dir, f"iter_{cfg.iters}.pth"),
                               "best_checkpoint": None, "exported": None, "metrics": None, "best": state.best}
        if last_eval is not None:
            out["metrics"] = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in last_eval.items()}
        best_path = os.path.join(cfg.work_dir, "best.pth")
        if os.path.isfile(best_path):
            out["best_checkpoint"] = best_path
        if self.dist.is_main:
            exported = os.path.join(cfg.work_dir, "model_final.safetensors")
            meta = {"format": "pt", "sszoo_model": cfg.model, "num_classes": cfg.num_classes,
                    "iterations": cfg.iters, "dataset": cfg.dataset}
            export_safetensors(model.state_dict(), exported, meta)
            out["exported"] = exported
            if out["best_checkpoint"]:
                best_ckpt = read_train_checkpoint(best_path)
                best_export = os.path.join(cfg.work_dir, "model_best.safetensors")
                export_safetensors(best_ckpt["model"], best_export, {**meta, "iterations": best_ckpt["iteration"]})
                out["best_exported"] = best_export
            self.log.info(f"done: final weights {exported}"
                          + (f"; best mIoU {state.best['mIoU']:.2f} at iter {state.best['iteration']}"
                             if state.best else ""))
            self.log.record("done", cfg.iters, {"exported": exported, "best": state.best})
        barrier()
        return out


class _LoopState:
    def __init__(self, start: int, best: Optional[dict]) -> None:
        self.start = start
        self.best = best
        self.best_is_new = False
        self.last_ckpt: Optional[str] = None
        self.saved: list[str] = []


def _make_scaler(amp: str, device: torch.device):
    if amp != "fp16":
        return None
    try:
        return torch.amp.GradScaler(device.type)
    except (AttributeError, TypeError):  # torch < 2.3 has only the CUDA scaler
        return torch.cuda.amp.GradScaler()


def train(cfg: TrainConfig, *, resume: Optional[str] = None, model: Optional[Segmentor] = None,
          train_set=None, val_set=None) -> dict[str, Any]:
    """Run the training job ``cfg`` (see :class:`Trainer`); returns the summary of :func:`sszoo.train.main`."""
    return Trainer(cfg, resume=resume, model=model, train_set=train_set, val_set=val_set).run()
