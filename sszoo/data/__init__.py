"""Datasets in their standard layouts, image/label reading and a synthetic data generator.

``build_dataset(key, root, split)`` opens any dataset of the zoo; ``sszoo.data.synthetic`` writes small
learnable datasets in the Cityscapes, ADE20K and VOC layouts for tests, demos and smoke training.
"""
from .datasets import CITYSCAPES_ID_TO_TRAINID, LAYOUTS, Layout, SegDataset, build_dataset, cityscapes_lut
from .io import DataError, ImageReadError, read_image, read_label, read_rgb8, to_rgb8

__all__ = ["CITYSCAPES_ID_TO_TRAINID", "LAYOUTS", "Layout", "SegDataset", "build_dataset", "cityscapes_lut",
           "DataError", "ImageReadError", "read_image", "read_label", "read_rgb8", "to_rgb8"]
