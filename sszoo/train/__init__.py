"""Training with the zoo's published recipes: ``python -m sszoo.train`` / :func:`sszoo.train.main`.

Public API:
    main(argv=None) -> dict          the command line (returns metrics and paths of the run)
    console_main() -> int            the same for console scripts (prints the summary, returns 0)
    train(cfg, resume=None, ...)     run a :class:`TrainConfig` from Python
    TrainConfig, config_from_entry   the effective recipe
    TrainAugment, AugmentConfig      the reference augmentation pipeline
    seg_cross_entropy, poly_lr       the loss and the learning-rate schedule
"""
from .augment import AugmentConfig, TrainAugment
from .cli import console_main, main
from .engine import Trainer, TrainingError, poly_lr, seg_cross_entropy, train
from .recipe import TrainConfig, config_from_entry

__all__ = ["AugmentConfig", "TrainAugment", "TrainConfig", "Trainer", "TrainingError", "config_from_entry",
           "console_main", "main", "poly_lr", "seg_cross_entropy", "train"]
