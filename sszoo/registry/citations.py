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
    "wang2018non": """@inproceedings{wang2018non,
  title={Non-local neural networks},
  author={Wang, Xiaolong and Girshick, Ross and Gupta, Abhinav and He, Kaiming},
  booktitle={Proceedings of the IEEE conference on computer vision and pattern recognition},
  year={2018}
}""",
    "yin2020disentangled": """@inproceedings{yin2020disentangled,
  title={Disentangled Non-Local Neural Networks},
  author={Yin, Minghao and Yao, Zhuliang and Cao, Yue and Li, Xiu and Zhang, Zheng and Lin, Stephen and Hu, Han},
  booktitle={European Conference on Computer Vision (ECCV)},
  year={2020}
}""",
    "cao2019gcnet": """@inproceedings{cao2019gcnet,
  title={GCNet: Non-local networks meet squeeze-excitation networks and beyond},
  author={Cao, Yue and Xu, Jiarui and Lin, Stephen and Wei, Fangyun and Hu, Han},
  booktitle={Proceedings of the IEEE International Conference on Computer Vision Workshops},
  year={2019}
}""",
    "li2019expectation": """@inproceedings{li2019expectation,
  title={Expectation-Maximization Attention Networks for Semantic Segmentation},
  author={Li, Xia and Zhong, Zhisheng and Wu, Jianlong and Yang, Yibo and Lin, Zhouchen and Liu, Hong},
  booktitle={International Conference on Computer Vision},
  year={2019}
}""",
    "huang2019ccnet": """@inproceedings{huang2019ccnet,
  title={CCNet: Criss-Cross Attention for Semantic Segmentation},
  author={Huang, Zilong and Wang, Xinggang and Huang, Lichao and Huang, Chang and Wei, Yunchao and Liu, Wenyu},
  booktitle={Proceedings of the IEEE International Conference on Computer Vision},
  year={2019}
}""",
    "fu2019dual": """@inproceedings{fu2019dual,
  title={Dual attention network for scene segmentation},
  author={Fu, Jun and Liu, Jing and Tian, Haijie and Li, Yong and Bao, Yongjun and Fang, Zhiwei and Lu, Hanqing},
  booktitle={Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition},
  year={2019}
}""",
    "zhu2019asymmetric": """@inproceedings{zhu2019asymmetric,
  title={Asymmetric non-local neural networks for semantic segmentation},
  author={Zhu, Zhen and Xu, Mengde and Bai, Song and Huang, Tengteng and Bai, Xiang},
  booktitle={Proceedings of the IEEE International Conference on Computer Vision},
  year={2019}
}""",
    "huang2019interlaced": """@article{huang2019interlaced,
  title={Interlaced Sparse Self-Attention for Semantic Segmentation},
  author={Huang, Lang and Yuan, Yuhui and Guo, Jianyuan and Zhang, Chao and Chen, Xilin and Wang, Jingdong},
  journal={arXiv preprint arXiv:1907.12273},
  year={2019}
}""",
    "zhang2018context": """@inproceedings{zhang2018context,
  title={Context encoding for semantic segmentation},
  author={Zhang, Hang and Dana, Kristin and Shi, Jianping and Zhang, Zhongyue and Wang, Xiaogang and Tyagi, Ambrish and Agrawal, Amit},
  booktitle={Proceedings of the IEEE conference on Computer Vision and Pattern Recognition},
  year={2018}
}""",
    "he2019adaptive": """@inproceedings{he2019adaptive,
  title={Adaptive Pyramid Context Network for Semantic Segmentation},
  author={He, Junjun and Deng, Zhongying and Zhou, Lei and Wang, Yali and Qiao, Yu},
  booktitle={Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition},
  year={2019}
}""",
    "he2019dynamic": """@inproceedings{he2019dynamic,
  title={Dynamic Multi-Scale Filters for Semantic Segmentation},
  author={He, Junjun and Deng, Zhongying and Qiao, Yu},
  booktitle={Proceedings of the IEEE International Conference on Computer Vision},
  year={2019}
}""",
    "zhao2018psanet": """@inproceedings{zhao2018psanet,
  title={PSANet: Point-wise Spatial Attention Network for Scene Parsing},
  author={Zhao, Hengshuang and Zhang, Yi and Liu, Shu and Shi, Jianping and Loy, Chen Change and Lin, Dahua and Jia, Jiaya},
  booktitle={Proceedings of the European Conference on Computer Vision (ECCV)},
  year={2018}
}""",
    "xiao2018unified": """@inproceedings{xiao2018unified,
  title={Unified perceptual parsing for scene understanding},
  author={Xiao, Tete and Liu, Yingcheng and Zhou, Bolei and Jiang, Yuning and Sun, Jian},
  booktitle={Proceedings of the European Conference on Computer Vision (ECCV)},
  year={2018}
}""",
    "kirillov2019panoptic": """@inproceedings{kirillov2019panoptic,
  title={Panoptic feature pyramid networks},
  author={Kirillov, Alexander and Girshick, Ross and He, Kaiming and Doll{\\'a}r, Piotr},
  booktitle={Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition},
  year={2019}
}""",
    "kirillov2020pointrend": """@inproceedings{kirillov2020pointrend,
  title={PointRend: Image segmentation as rendering},
  author={Kirillov, Alexander and Wu, Yuxin and He, Kaiming and Girshick, Ross},
  booktitle={Proceedings of the IEEE/CVF conference on computer vision and pattern recognition},
  year={2020}
}""",
    "wu2019fastfcn": """@article{wu2019fastfcn,
  title={FastFCN: Rethinking Dilated Convolution in the Backbone for Semantic Segmentation},
  author={Wu, Huikai and Zhang, Junge and Huang, Kaiqi and Liang, Kongming and Yu, Yizhou},
  journal={arXiv preprint arXiv:1903.11816},
  year={2019}
}""",
    "poudel2019fast": """@article{poudel2019fast,
  title={Fast-SCNN: Fast Semantic Segmentation Network},
  author={Poudel, Rudra PK and Liwicki, Stephan and Cipolla, Roberto},
  journal={arXiv preprint arXiv:1902.04502},
  year={2019}
}""",
    "wu2020cgnet": """@article{wu2020cgnet,
  title={CGNet: A Light-weight Context Guided Network for Semantic Segmentation},
  author={Wu, Tianyi and Tang, Sheng and Zhang, Rui and Cao, Juan and Zhang, Yongdong},
  journal={IEEE Transactions on Image Processing},
  volume={30},
  pages={1169--1179},
  year={2020}
}""",
    "romera2017erfnet": """@article{romera2017erfnet,
  title={ERFNet: Efficient Residual Factorized ConvNet for Real-Time Semantic Segmentation},
  author={Romera, Eduardo and Alvarez, Jos{\\'e} M and Bergasa, Luis M and Arroyo, Roberto},
  journal={IEEE Transactions on Intelligent Transportation Systems},
  volume={19},
  number={1},
  pages={263--272},
  year={2017}
}""",
    "zhang2020resnest": """@article{zhang2020resnest,
  title={ResNeSt: Split-Attention Networks},
  author={Zhang, Hang and Wu, Chongruo and Zhang, Zhongyue and Zhu, Yi and Zhang, Zhi and Lin, Haibin and Sun, Yue and He, Tong and Muller, Jonas and Manmatha, R. and Li, Mu and Smola, Alexander},
  journal={arXiv preprint arXiv:2004.08955},
  year={2020}
}""",
    "fan2021rethinking": """@inproceedings{fan2021rethinking,
  title={Rethinking BiSeNet For Real-time Semantic Segmentation},
  author={Fan, Mingyuan and Lai, Shenqi and Huang, Junshi and Wei, Xiaoming and Chai, Zhenhua and Luo, Junfeng and Wei, Xiaolin},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition},
  pages={9716--9725},
  year={2021}
}""",
    "zhao2018icnet": """@inproceedings{zhao2018icnet,
  title={ICNet for Real-time Semantic Segmentation on High-resolution Images},
  author={Zhao, Hengshuang and Qi, Xiaojuan and Shen, Xiaoyong and Shi, Jianping and Jia, Jiaya},
  booktitle={Proceedings of the European Conference on Computer Vision (ECCV)},
  pages={405--420},
  year={2018}
}""",
    "pan2022deep": """@article{pan2022deep,
  title={Deep Dual-Resolution Networks for Real-Time and Accurate Semantic Segmentation of Traffic Scenes},
  author={Pan, Huihui and Hong, Yuanduo and Sun, Weichao and Jia, Yisong},
  journal={IEEE Transactions on Intelligent Transportation Systems},
  year={2022},
  publisher={IEEE}
}""",
    "xu2022pidnet": """@misc{xu2022pidnet,
  title={PIDNet: A Real-time Semantic Segmentation Network Inspired from PID Controller},
  author={Jiacong Xu and Zixiang Xiong and Shankar P. Bhattacharyya},
  year={2022},
  eprint={2206.02066},
  archivePrefix={arXiv},
  primaryClass={cs.CV}
}""",
    "yu2018bisenet": """@inproceedings{yu2018bisenet,
  title={Bisenet: Bilateral segmentation network for real-time semantic segmentation},
  author={Yu, Changqian and Wang, Jingbo and Peng, Chao and Gao, Changxin and Yu, Gang and Sang, Nong},
  booktitle={Proceedings of the European conference on computer vision (ECCV)},
  pages={325--341},
  year={2018}
}""",
    "yu2021bisenet": """@article{yu2021bisenet,
  title={Bisenet v2: Bilateral network with guided aggregation for real-time semantic segmentation},
  author={Yu, Changqian and Gao, Changxin and Wang, Jingbo and Yu, Gang and Shen, Chunhua and Sang, Nong},
  journal={International Journal of Computer Vision},
  pages={1--18},
  year={2021},
  publisher={Springer}
}""",
    "sandler2018mobilenetv2": """@inproceedings{sandler2018mobilenetv2,
  title={MobileNetV2: Inverted Residuals and Linear Bottlenecks},
  author={Sandler, Mark and Howard, Andrew and Zhu, Menglong and Zhmoginov, Andrey and Chen, Liang-Chieh},
  booktitle={Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition},
  pages={4510--4520},
  year={2018}
}""",
    "howard2019searching": """@inproceedings{howard2019searching,
  title={Searching for MobileNetV3},
  author={Howard, Andrew and Sandler, Mark and Chu, Grace and Chen, Liang-Chieh and Chen, Bo and Tan, Mingxing and Wang, Weijun and Zhu, Yukun and Pang, Ruoming and Vasudevan, Vijay and Le, Quoc V. and Adam, Hartwig},
  booktitle={Proceedings of the IEEE/CVF International Conference on Computer Vision},
  pages={1314--1324},
  year={2019}
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
    "wang2020deep": """@article{wang2020deep,
  title={Deep High-Resolution Representation Learning for Visual Recognition},
  author={Wang, Jingdong and Sun, Ke and Cheng, Tianheng and Jiang, Borui and Deng, Chaorui and Zhao, Yang and Liu, Dong and Mu, Yadong and Tan, Mingkui and Wang, Xinggang and Liu, Wenyu and Xiao, Bin},
  journal={IEEE Transactions on Pattern Analysis and Machine Intelligence},
  volume={43},
  number={10},
  pages={3349--3364},
  year={2021}
}""",
    "yuan2020object": """@inproceedings{yuan2020object,
  title={Object-Contextual Representations for Semantic Segmentation},
  author={Yuan, Yuhui and Chen, Xilin and Wang, Jingdong},
  booktitle={ECCV},
  year={2020}
}""",
}
# wave 4: MMPretrain backbones
CITATIONS.update({
    "liu2022convnet": """@inproceedings{liu2022convnet,
  title={A ConvNet for the 2020s},
  author={Liu, Zhuang and Mao, Hanzi and Wu, Chao-Yuan and Feichtenhofer, Christoph and Darrell, Trevor and Xie, Saining},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages={11976--11986},
  year={2022}
}""",
    "yu2022metaformer": """@inproceedings{yu2022metaformer,
  title={MetaFormer is Actually What You Need for Vision},
  author={Yu, Weihao and Luo, Mi and Zhou, Pan and Si, Chenyang and Zhou, Yichen and Wang, Xinchao and Feng, Jiashi and Yan, Shuicheng},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages={10819--10829},
  year={2022}
}""",
})

METHOD_CITATION = {"fcn": "long2015fully", "fcn_d6": "long2015fully", "pspnet": "zhao2017pyramid",
                   "deeplabv3": "chen2017rethinking", "deeplabv3plus": "deeplabv3plus2018",
                   "nonlocal": "wang2018non", "dnl": "yin2020disentangled", "gcnet": "cao2019gcnet",
                   "emanet": "li2019expectation", "ccnet": "huang2019ccnet", "danet": "fu2019dual",
                   "ann": "zhu2019asymmetric", "isanet": "huang2019interlaced", "encnet": "zhang2018context",
                   "apcnet": "he2019adaptive", "dmnet": "he2019dynamic", "psanet": "zhao2018psanet",
                   "upernet": "xiao2018unified", "fpn": "kirillov2019panoptic", "pointrend": "kirillov2020pointrend",
                   "fastfcn": "wu2019fastfcn", "resnest": "zhang2020resnest"}
# STDC's config names start with the backbone (stdc1_..., stdc2_...)
METHOD_CITATION.update({"stdc": "fan2021rethinking",
                        "icnet": "zhao2018icnet"})
METHOD_CITATION.update({"ddrnet": "pan2022deep", "pidnet": "xu2022pidnet"})
METHOD_CITATION.update({"bisenetv1": "yu2018bisenet", "bisenetv2": "yu2021bisenet"})
METHOD_CITATION.update({"fastscnn": "poudel2019fast", "cgnet": "wu2020cgnet", "erfnet": "romera2017erfnet"})
METHOD_CITATION.update({"mobilenet_v2": "sandler2018mobilenetv2", "mobilenet_v3": "howard2019searching"})
METHOD_CITATION.update({"hrnet": "wang2020deep", "ocrnet": "yuan2020object"})
CITATIONS.update({"chu2021twins": """@inproceedings{chu2021twins,
  title={Twins: Revisiting the Design of Spatial Attention in Vision Transformers},
  author={Chu, Xiangxiang and Tian, Zhi and Wang, Yuqing and Zhang, Bo and Ren, Haibing and Wei, Xiaolin and Xia, Huaxia and Shen, Chunhua},
  booktitle={Advances in Neural Information Processing Systems (NeurIPS)},
  year={2021}
}"""})
METHOD_CITATION.update({"twins": "chu2021twins"})
CITATIONS["liu2021swin"] = """@inproceedings{liu2021swin,
  title={Swin Transformer: Hierarchical Vision Transformer using Shifted Windows},
  author={Liu, Ze and Lin, Yutong and Cao, Yue and Hu, Han and Wei, Yixuan and Zhang, Zheng and Lin, Stephen and Guo, Baining},
  booktitle={Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages={10012--10022},
  year={2021}
}"""
METHOD_CITATION.update({"swin": "liu2021swin"})

# plain ViT / DeiT (MMSegmentation's "vit" configs) and SETR
CITATIONS.update({
    "dosovitskiy2020image": """@inproceedings{dosovitskiy2020image,
  title={An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale},
  author={Dosovitskiy, Alexey and Beyer, Lucas and Kolesnikov, Alexander and Weissenborn, Dirk and Zhai, Xiaohua and Unterthiner, Thomas and Dehghani, Mostafa and Minderer, Matthias and Heigold, Georg and Gelly, Sylvain and Uszkoreit, Jakob and Houlsby, Neil},
  booktitle={International Conference on Learning Representations},
  year={2021}
}""",
    "touvron2021training": """@inproceedings{touvron2021training,
  title={Training data-efficient image transformers \\& distillation through attention},
  author={Touvron, Hugo and Cord, Matthieu and Douze, Matthijs and Massa, Francisco and Sablayrolles, Alexandre and J{\\'e}gou, Herv{\\'e}},
  booktitle={International Conference on Machine Learning},
  pages={10347--10357},
  year={2021}
}""",
    "zheng2021rethinking": """@inproceedings{zheng2021rethinking,
  title={Rethinking Semantic Segmentation from a Sequence-to-Sequence Perspective with Transformers},
  author={Zheng, Sixiao and Lu, Jiachen and Zhao, Hengshuang and Zhu, Xiatian and Luo, Zekun and Wang, Yabiao and Fu, Yanwei and Feng, Jianfeng and Xiang, Tao and Torr, Philip HS and Zhang, Li},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition},
  pages={6881--6890},
  year={2021}
}""",
})
# Segmenter's linear-decoder baseline (segmenter_vit-s_fcn: the ViT-S backbone under an FCN head) builds with the
# ViT too; its mask-transformer configs use sszoo.models.heads.segmenter
CITATIONS["strudel2021segmenter"] = """@inproceedings{strudel2021segmenter,
  title={Segmenter: Transformer for Semantic Segmentation},
  author={Strudel, Robin and Garcia, Ricardo and Laptev, Ivan and Schmid, Cordelia},
  booktitle={Proceedings of the IEEE/CVF International Conference on Computer Vision},
  pages={7262--7272},
  year={2021}
}"""
METHOD_CITATION.update({"vit": "dosovitskiy2020image", "setr": "zheng2021rethinking", "segmenter": "strudel2021segmenter"})
METHOD_CITATION.update({"convnext": "liu2022convnet", "poolformer": "yu2022metaformer"})
CITATIONS["xie2021segformer"] = """@inproceedings{xie2021segformer,
  title={SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers},
  author={Xie, Enze and Wang, Wenhai and Yu, Zhiding and Anandkumar, Anima and Alvarez, Jose M and Luo, Ping},
  booktitle={Advances in Neural Information Processing Systems (NeurIPS)},
  volume={34},
  pages={12077--12090},
  year={2021}
}"""
METHOD_CITATION.update({"segformer": "xie2021segformer"})

# BEiT and MAE (MMSegmentation's "beit" and "mae" configs: UPerNet over the backbone + Feature2Pyramid)
CITATIONS.update({
    "bao2021beit": """@inproceedings{bao2021beit,
  title={{BEiT}: {BERT} Pre-Training of Image Transformers},
  author={Bao, Hangbo and Dong, Li and Piao, Songhao and Wei, Furu},
  booktitle={International Conference on Learning Representations},
  year={2022}
}""",
    "he2022masked": """@inproceedings{he2022masked,
  title={Masked Autoencoders Are Scalable Vision Learners},
  author={He, Kaiming and Chen, Xinlei and Xie, Saining and Li, Yanghao and Doll{\\'a}r, Piotr and Girshick, Ross},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition},
  pages={16000--16009},
  year={2022}
}""",
})
METHOD_CITATION.update({"beit": "bao2021beit", "mae": "he2022masked"})
# DPT (Segmenter's citation is above, with the ViT)
CITATIONS["ranftl2021vision"] = """@inproceedings{ranftl2021vision,
  title={Vision Transformers for Dense Prediction},
  author={Ranftl, Ren{\\'e} and Bochkovskiy, Alexey and Koltun, Vladlen},
  booktitle={Proceedings of the IEEE/CVF International Conference on Computer Vision},
  pages={12179--12188},
  year={2021}
}"""
METHOD_CITATION.update({"dpt": "ranftl2021vision"})
# SegNeXt (MSCAN backbone + LightHamHead)
CITATIONS["guo2022segnext"] = """@inproceedings{guo2022segnext,
  title={SegNeXt: Rethinking Convolutional Attention Design for Semantic Segmentation},
  author={Guo, Meng-Hao and Lu, Cheng-Ze and Hou, Qibin and Liu, Zhengning and Cheng, Ming-Ming and Hu, Shi-Min},
  booktitle={Advances in Neural Information Processing Systems},
  volume={35},
  pages={1140--1156},
  year={2022}
}"""
METHOD_CITATION.update({"segnext": "guo2022segnext"})
# K-Net (IterativeDecodeHead over FCN/PSP/ASPP/UPerNet kernel generators)
CITATIONS["zhang2021knet"] = """@inproceedings{zhang2021knet,
  title={K-Net: Towards Unified Image Segmentation},
  author={Zhang, Wenwei and Pang, Jiangmiao and Chen, Kai and Loy, Chen Change},
  booktitle={Advances in Neural Information Processing Systems},
  volume={34},
  pages={10326--10338},
  year={2021}
}"""
METHOD_CITATION.update({"knet": "zhang2021knet"})

# SAN (MMSegmentation's "san" configs: CLIP image and text encoders with the side adapter head)
CITATIONS["xu2023side"] = """@inproceedings{xu2023side,
  title={Side Adapter Network for Open-Vocabulary Semantic Segmentation},
  author={Xu, Mengde and Zhang, Zheng and Wei, Fangyun and Hu, Han and Bai, Xiang},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition},
  pages={2945--2954},
  year={2023}
}"""
METHOD_CITATION.update({"san": "xu2023side"})
# mask classification: Mask2Former and MaskFormer
CITATIONS.update({
    "cheng2022masked": """@inproceedings{cheng2022masked,
  title={Masked-attention Mask Transformer for Universal Image Segmentation},
  author={Cheng, Bowen and Misra, Ishan and Schwing, Alexander G. and Kirillov, Alexander and Girdhar, Rohit},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition},
  pages={1290--1299},
  year={2022}
}""",
    "cheng2021per": """@inproceedings{cheng2021per,
  title={Per-Pixel Classification is Not All You Need for Semantic Segmentation},
  author={Cheng, Bowen and Schwing, Alexander G. and Kirillov, Alexander},
  booktitle={Advances in Neural Information Processing Systems},
  volume={34},
  pages={17864--17875},
  year={2021}
}""",
})
METHOD_CITATION.update({"mask2former": "cheng2022masked", "maskformer": "cheng2021per"})
