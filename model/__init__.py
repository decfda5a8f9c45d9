"""lwaffect's model: pure PyTorch, no I/O (backbone, 3D mixer, multi-scale TAM, heads, losses)."""

__version__ = "0.1.0"
