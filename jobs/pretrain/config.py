"""`PretrainConfig`: what `lwaffect pretrain` trains on, from which weights, how, and where it writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VA_LOSSES = ("ccc", "mse")  # valence / arousal losses: 1 - CCC over the batch, or mean squared error


class PretrainError(ValueError):
    """Settings or files that stop a pretraining run (a usage or configuration error)."""


@dataclass(frozen=True)
class PretrainConfig:
    """One pretraining run."""

    input: Path  # AffectNet folder, original or cropped layout (pipeline.datasets.affectnet)
    output: Path  # the .safetensors file of the backbone (features_only state dict, normalisation metadata)
    state: Path | None = None  # folder of the resume state and log.jsonl; None: OUTPUT's name + ".pretrain"
    name: str = "mobilenetv4_conv_small"  # timm model name
    backbone_weights: Path | None = None  # weights file to start from (wins over `pretrained`)
    pretrained: bool = False  # start from timm's hub weights for the name (needs the Hugging Face hub)
    input_size: int = 112  # side of the square face image the network sees (the seed trained at 112)
    epochs: int = 10  # epochs in all (a rerun goes on up to this many)
    batch_size: int = 64  # images per step
    lr: float = 1e-3  # peak AdamW learning rate (linear warm-up over the first epoch's tenth, cosine decay)
    weight_decay: float = 0.05  # AdamW weight decay
    label_smoothing: float = 0.1  # of the expression cross-entropy
    va_loss: str = "ccc"  # ccc or mse (VA_LOSSES); images without valence / arousal (-2) are left out
    va_weight: float = 1.0  # weight of the valence / arousal loss beside the expression loss
    flip: bool = True  # augmentation: mirror half the training images
    jitter: float = (
        0.1  # augmentation: random scale and shift of up to this fraction, rotation up to 100x deg
    )
    color_jitter: float = 0.0  # augmentation: random brightness and contrast factor of up to this fraction
    dropout: float = 0.2  # before the heads
    workers: int = 2  # image-loading processes (0: in the training process)
    seed: int = 0  # weights, order of the images, augmentation
    threads: int | None = None  # torch CPU threads (None: torch's default)
    device: str = "cpu"  # cpu, cuda or cuda:N

    @property
    def state_dir(self) -> Path:
        return self.state if self.state is not None else self.output.with_name(self.output.name + ".pretrain")

    def check(self) -> None:
        """Raise PretrainError on settings that cannot run."""
        if self.output.suffix != ".safetensors":
            raise PretrainError(f"--output must be a .safetensors file, not {self.output}")
        if not 64 <= self.input_size <= 1024 or self.input_size % 16:
            raise PretrainError(
                f"--input-size must be a multiple of 16 from 64 to 1024, not {self.input_size}"
            )
        if self.va_loss not in VA_LOSSES:
            raise PretrainError(f"--va-loss must be one of {', '.join(VA_LOSSES)}, not {self.va_loss!r}")
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise PretrainError(
                "epochs must be at least 1, the batch size at least 2 and the learning rate positive"
            )
        if not 0 <= self.jitter < 0.5 or not 0 <= self.color_jitter < 1:
            raise PretrainError("jitter must lie in [0, 0.5) and color jitter in [0, 1)")
        if self.backbone_weights is not None and not self.backbone_weights.is_file():
            raise PretrainError(f"backbone weights file {self.backbone_weights} does not exist")


# settings a resumed run must share with the state it resumes (the others may change between runs)
RESUME_FIELDS = ("input", "name", "backbone_weights", "pretrained", "input_size", "batch_size", "lr",
                 "weight_decay", "label_smoothing", "va_loss", "va_weight", "flip", "jitter", "color_jitter",
                 "dropout", "seed")  # fmt: skip
