"""The backbone pretraining job (`lwaffect pretrain`): MobileNetV4 fine-tuned on an AffectNet folder
(config, data and augmentation, the training driver), written as a weights file `--backbone-weights` loads.

May import pipeline and model.
"""
