"""What the extraction job is told: `ExtractConfig` (what to extract, how, where it runs) and `FaceSettings`
(what the face stage does).

Where the stages run is `jobs.extract.runtime.RuntimeConfig`; how the frozen backbone is run is
`pipeline.features.FeatureConfig`; the shard layout is `pipeline.cache.shard.ShardConfig`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from jobs.extract.runtime import RuntimeConfig
from model.backbone_config import BackboneConfig
from pipeline.cache.crops import CacheKind, CropCodec, default_cache_kind
from pipeline.cache.shard import ShardConfig
from pipeline.faces.config import AlignConfig, FaceConfig
from pipeline.features_config import FeatureConfig
from pipeline.video.decode import DecodeConfig

FaceMode = Literal["detect", "cropped-aligned"]


@dataclass(frozen=True)
class FaceSettings:
    """What the face stage does (`spec()` is what the cache records of it)."""

    mode: FaceMode = "detect"  # detect faces, or use the organiser's cropped_aligned/<subject>/NNNNN.jpg
    face: FaceConfig = FaceConfig()  # detection and tracking
    align: AlignConfig = AlignConfig()  # 5-point alignment to the crop size
    # chunked decoding (not in the spec: it changes no pixel). The worker holds the chunk being decoded
    # and every chunk holding a frame the tracker has not returned yet (up to about 35 frames where a
    # face is lost, `FaceConfig.look_back`), so a chunk is at most `chunk_frames` frames and at most
    # `chunk_bytes`: 8 frames (22 MB at 720p, 50 MB at 1080p); with 16 at 720p the held chunks reached 64
    # frames for a 34-frame lag
    decode: DecodeConfig = DecodeConfig(chunk_frames=8)  # decoder, backend and most frames per chunk
    chunk_bytes: int = 48 * 2**20  # most bytes of RGB frames per chunk (`decode_for`)
    max_missing: float = 0.05  # a video decoding fewer than (1 - this) of its claimed frames is truncated
    crops_root: str | None = None  # cropped_aligned folder (mode "cropped-aligned")

    def decode_for(self, width: int, height: int) -> DecodeConfig:
        """How a video of this frame size is decoded: chunks of at most `chunk_bytes` of RGB frames."""
        frames = max(1, min(self.decode.chunk_frames, self.chunk_bytes // max(width * height * 3, 1)))
        return replace(self.decode, chunk_frames=frames)

    @property
    def crop_size(self) -> int:
        """Side of the crops handed to the backbone (organiser crops are resized to it)."""
        return self.align.size

    def spec(self) -> dict[str, Any]:
        """The settings that decide the crops (batch sizes, decoding and the truncation check do not)."""
        spec: dict[str, Any] = {"mode": self.mode, "crop_size": self.crop_size}
        if self.mode == "detect":
            for name, cfg in (("face", self.face), ("align", self.align)):
                spec[name] = {k: v for k, v in asdict(cfg).items() if k != "batch_size"}
        return spec


@dataclass(frozen=True)
class ExtractConfig:
    """What to extract, how, and where it runs."""

    input: Path  # input folder (any layout `load_catalogue` reads)
    cache: str  # cache location: a folder or a pyarrow filesystem URI
    # one of `model.tasks.SPLITS`: train | validation | test (the subjects of that split in any task) | all
    split: str = "all"
    subject: Literal["auto", "main"] = "auto"  # auto: the catalogue's main/left/right; main: the main face
    faces: FaceSettings = FaceSettings()  # decode, detection/tracking, alignment or organiser crops
    backbone: BackboneConfig = BackboneConfig()  # frozen backbone (weights decide the cache's weights hash)
    features: FeatureConfig = FeatureConfig()  # backbone batch, dtype, autocast
    shard: ShardConfig = ShardConfig()  # shard layout
    # what the cache stores: the frozen part's maps, or the face crops; None: as the backbone's N says
    # (`pipeline.cache.crops.default_cache_kind`: crops from 4 trainable blocks, maps below)
    cache_kind: CacheKind | None = None
    crops: CropCodec = CropCodec()  # how a crop cache compresses its crops (cache_kind "crops")
    runtime: RuntimeConfig = RuntimeConfig()  # Ray placement
    address: str | None = None  # Ray cluster to join; overrides runtime.address (and $RAY_ADDRESS)
    device: Literal["cpu", "cuda"] | None = None  # None: cuda when the cluster has a GPU
    rebuild: bool = False  # replace a cache made with other settings
    subjects: tuple[str, ...] | None = None  # only these subjects (None: every subject of the split)

    @property
    def kind(self) -> CacheKind:
        """What this extraction caches: `cache_kind` where given, else the default of the backbone's N."""
        return self.cache_kind or default_cache_kind(self.backbone.trainable_blocks)

    def __post_init__(self) -> None:
        if self.faces.crop_size != self.backbone.input_size:
            raise ValueError(
                f"the face crops are {self.faces.crop_size} px but the backbone takes "
                f"{self.backbone.input_size} px: build the config with `sized(faces, backbone)`"
            )


def sized(mode: FaceMode = "detect", **backbone: Any) -> tuple[FaceSettings, BackboneConfig]:
    """Face settings and the backbone config of `backbone` (BackboneConfig fields), the faces aligned to
    the backbone's input size (`--input-size`: 112 or 224)."""
    cfg = BackboneConfig(**backbone)
    return FaceSettings(mode=mode, align=AlignConfig(size=cfg.input_size)), cfg
