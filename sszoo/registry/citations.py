"""BibTeX of the papers behind the zoo's methods, keyed as in ``ZooEntry.citations``."""

CITATIONS: dict[str, str] = {
    "long2015fully": """@inproceedings{long2015fully,
  title={Fully convolutional networks for semantic segmentation},
  author={Long, Jonathan and Shelhamer, Evan and Darrell, Trevor},
  booktitle={Proceedings of the IEEE conference on computer vision and pattern recognition},
  pages={3431--3440},
  year={2015}
}""",
    "zhao2017pyramid": """@inproceedings{zhao2017pyramid,
  title={Pyramid scene parsing network},
  author={Zhao, Hengshuang and Shi, Jianping and Qi, Xiaojuan and Wang, Xiaogang and Jia, Jiaya},
  booktitle={Proceedings of the IEEE conference on computer vision and pattern recognition},
  pages={2881--2890},
  year={2017}
}""",
    "chen2017rethinking": """@article{chen2017rethinking,
  title={Rethinking atrous convolution for semantic image segmentation},
  author={Chen, Liang-Chieh and Papandreou, George and Schroff, Florian and Adam, Hartwig},
  journal={arXiv preprint arXiv:1706.05587},
  year={2017}
}""",
    "deeplabv3plus2018": """@inproceedings{deeplabv3plus2018,
  title={Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation},
  author={Liang-Chieh Chen and Yukun Zhu and George Papandreou and Florian Schroff and Hartwig Adam},
  booktitle={ECCV},
  year={2018}
}""",
    "micikevicius2017mixed": """@article{micikevicius2017mixed,
  title={Mixed precision training},
  author={Micikevicius, Paulius and Narang, Sharan and Alben, Jonah and Diamos, Gregory and Elsen, Erich and Garcia, David and Ginsburg, Boris and Houston, Michael and Kuchaiev, Oleksii and Venkatesh, Ganesh and others},
  journal={arXiv preprint arXiv:1710.03740},
  year={2017}
}""",
    "mmseg2020": """@misc{mmseg2020,
  title={{MMSegmentation}: OpenMMLab Semantic Segmentation Toolbox and Benchmark},
  author={MMSegmentation Contributors},
  howpublished={\\url{https://github.com/open-mmlab/mmsegmentation}},
  year={2020}
}""",
    "sssegmentation2020": """@article{jin2023sssegmenation,
  title={SSSegmenation: An Open Source Supervised Semantic Segmentation Toolbox Based on PyTorch},
  author={Jin, Zhenchao},
  journal={arXiv preprint arXiv:2305.17091},
  year={2023}
}""",
}

METHOD_CITATION = {"fcn": "long2015fully", "fcn_d6": "long2015fully", "pspnet": "zhao2017pyramid",
                   "deeplabv3": "chen2017rethinking", "deeplabv3plus": "deeplabv3plus2018"}
