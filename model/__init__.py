"""lwaffect's model, pure PyTorch: backbone, 3D mixer, multi-scale TAM, heads, losses, task table, configs.

Its only file I/O is in weights.py (backbone weights files, the hub probe) and checkpoint.py (checkpoints).
May import torch, timm and its own modules; never pipeline or jobs.
"""

__version__ = "0.1.0"
