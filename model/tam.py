"""The multi-scale temporal aggregation module (TAM): 3D MLP-Mixer levels that keep the time axis.

Source: the seed paper (MobileNetV4 + multi-scale 3D MLP-Mixer, ABAW 8th) and MLP-Mixer. A level cuts a
sequence of backbone maps (B, T, C, H, W) into space-time tubelets of `time_patch` frames x `patch` x
`patch` cells, projects each tubelet to width `dim`, mixes all tubelets jointly (token mixing over space
and time) and then channels, and returns one vector per frame, (B, T, dim):

- Time axis: after the final LayerNorm the tokens are averaged over space within each time patch, giving
  (B, T / time_patch, dim), and then up-sampled back to T frames by a learned per-offset projection, a
  linear map dim -> time_patch x dim (a transposed convolution with kernel = stride = time_patch): frame k
  of a time patch reads its own slice. The tubelet projection keeps the frames of a tubelet linearly
  separable, so the per-offset map can give each frame its own output; interpolation between neighbouring
  time patches could not (it blurs changes shorter than a time patch, e.g. brief AU onsets) and would give
  the frames inside a patch nearly the same prediction.
- Reading the places: by default the frame vector is the mean of the space tokens; with `pool="position"`
  each token is narrowed to READ_DIM and one linear map reads all places, so a cue at one place of the face
  (an action unit's region) keeps its own weights instead of being averaged with every other place.
- Variable T: token mixing is an MLP over the token axis, so its size is fixed by `num_frames`, the
  sequence length the level is built for (the seed's 32). A level takes any T <= num_frames: the sequence
  is padded to num_frames by repeating its last frame (which also rounds up to a multiple of time_patch)
  and the outputs of the padded frames are cut off. Longer sequences are refused: cut them into windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from model.mixer import MixerBlock

READ_DIM = 8  # width each space token is narrowed to before a "position" read
CELLS = 7  # tubelets a map side is cut into when a level's patch follows the map (the seed's 7x7)
CELL_RANGE = (3, 14)  # fewest and most tubelets a side a followed patch may give


@dataclass(frozen=True)
class LevelConfig:
    """One mixer level of the TAM."""

    source: int  # backbone map it reads: 0 = stride 8 (64x28x28), 1 = stride 16 (96x14x14), 2 = stride 32
    # tubelet side in map cells (4 on 28x28, 2 on 14x14, 1 on 7x7: 7x7 tubelets per frame); None: follows
    # the map, about CELLS tubelets a side (`auto_patch`; `model.configs.build_model` records the value)
    patch: int | None = None
    time_patch: int = 4  # tubelet length in frames
    dim: int = 256  # token width D after the tubelet projection
    depth: int = 1  # number of mixer blocks
    token_mlp_dim: int = 256  # hidden width of the token-mixing MLP
    channel_mlp_dim: int = 1024  # hidden width of the channel-mixing MLP
    dropout: float = 0.0  # dropout inside both MLPs
    pool: str = (
        "mean"  # frame vector from the space tokens: "mean" over them, or "position" (a read per place)
    )


def auto_patch(height: int, width: int) -> int | None:
    """The tubelet side that cuts a height x width map into about CELLS cells a side: the common divisor
    giving the number of cells nearest CELLS (ties: more cells); None when that is outside CELL_RANGE."""
    sides = [p for p in range(1, min(height, width) + 1) if height % p == 0 and width % p == 0]
    best = min(sides, key=lambda p: (abs(max(height, width) / p - CELLS), p))
    low, high = CELL_RANGE
    return best if low <= max(height, width) // best <= high else None


def pad_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, T, ...) -> (B, frames, ...) by repeating the last frame."""
    missing = frames - x.shape[1]
    if missing <= 0:
        return x
    last = x[:, -1:].expand(x.shape[0], missing, *x.shape[2:])
    return torch.cat([x, last], dim=1)


class TAMLevel(nn.Module):
    """One level: (B, T, C, H, W) -> (B, T, dim) for T <= num_frames."""

    def __init__(self, cfg: LevelConfig, map_shape: tuple[int, ...], num_frames: int):
        super().__init__()
        channels, height, width = map_shape
        if cfg.patch is None:
            cfg = replace(cfg, patch=auto_patch(height, width))
        if cfg.patch is None or height % cfg.patch or width % cfg.patch:
            raise ValueError(
                f"patch {cfg.patch} does not divide the {height}x{width} map of level {cfg}: "
                "give the level a patch that divides both sides"
            )
        self.cfg = cfg
        self.num_frames = num_frames
        self.time_patches = math.ceil(num_frames / cfg.time_patch)  # Nt
        self.padded_frames = self.time_patches * cfg.time_patch
        self.patch = cfg.patch
        self.grid = (height // cfg.patch, width // cfg.patch)
        self.spatial_tokens = self.grid[0] * self.grid[1]  # Ns
        self.num_tokens = self.time_patches * self.spatial_tokens  # N = Nt * Ns
        tubelet = cfg.time_patch * channels * self.patch * self.patch
        self.tubelet_embed = nn.Linear(tubelet, cfg.dim)
        self.blocks = nn.Sequential(
            *(
                MixerBlock(self.num_tokens, cfg.dim, cfg.token_mlp_dim, cfg.channel_mlp_dim, cfg.dropout)
                for _ in range(cfg.depth)
            )
        )
        self.norm = nn.LayerNorm(cfg.dim)
        if cfg.pool not in ("mean", "position"):
            raise ValueError(f"pool must be mean or position, got {cfg.pool!r}")
        # "position": each token narrowed to READ_DIM, then one linear map over all places (D x Ns x READ_DIM)
        self.narrow = nn.Linear(cfg.dim, READ_DIM) if cfg.pool == "position" else None
        self.place_read = (
            nn.Linear(self.spatial_tokens * READ_DIM, cfg.dim) if cfg.pool == "position" else None
        )
        self.time_upsample = nn.Linear(cfg.dim, cfg.time_patch * cfg.dim)

    def tubelets(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T', C, H, W) -> (B, N, time_patch * C * patch * patch), tokens ordered time patch first."""
        b, _, c, _, _ = x.shape
        tp, p, (gh, gw) = self.cfg.time_patch, self.patch, self.grid
        x = x.reshape(b, self.time_patches, tp, c, gh, p, gw, p)
        x = x.permute(0, 1, 4, 6, 2, 3, 5, 7)  # (B, Nt, gh, gw, tp, C, p, p)
        return x.reshape(b, self.num_tokens, tp * c * p * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        if not 1 <= t <= self.num_frames:
            raise ValueError(
                f"this TAM level is built for sequences of at most {self.num_frames} frames "
                f"(num_frames), got {t}: cut the sequence into windows or build the model with num_frames={t}"
            )
        x = pad_frames(x, self.padded_frames)  # (B, T, C, H, W) -> (B, T', C, H, W)
        tokens = self.tubelet_embed(self.tubelets(x))  # -> (B, N, D)
        tokens = self.norm(self.blocks(tokens))
        tokens = tokens.reshape(b, self.time_patches, self.spatial_tokens, -1)  # -> (B, Nt, Ns, D)
        if self.narrow is not None and self.place_read is not None:
            pooled = self.place_read(self.narrow(tokens).flatten(2))  # (B, Nt, Ns * READ_DIM) -> (B, Nt, D)
        else:
            pooled = tokens.mean(2)  # -> (B, Nt, D)
        frames = self.time_upsample(pooled)  # (B, Nt, D) -> (B, Nt, tp * D)
        frames = frames.reshape(b, self.padded_frames, self.cfg.dim)  # -> (B, T', D), offset k of patch j
        return frames[:, :t]  # -> (B, T, D)


class MultiScaleTAM(nn.Module):
    """Levels over the backbone maps, concatenated: maps (B, T, C, H, W) each -> (B, T, sum of dims)."""

    def __init__(
        self, levels: tuple[LevelConfig, ...], map_shapes: tuple[tuple[int, ...], ...], num_frames: int
    ):
        super().__init__()
        if not levels:
            raise ValueError("a TAM needs at least one level")
        self.levels = nn.ModuleList(TAMLevel(cfg, map_shapes[cfg.source], num_frames) for cfg in levels)
        self.out_dim = sum(cfg.dim for cfg in levels)
        self.configs = tuple(levels)
        self.sources = {cfg.source for cfg in levels}  # indices of the maps the levels read

    def forward(self, maps: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
        """maps: s8, s16, s32 (B, T, C, H, W) each (None where no level reads it) -> (B, T, sum D)."""
        outs = [level(maps[cfg.source]) for level, cfg in zip(self.levels, self.configs, strict=True)]
        return torch.cat(outs, dim=-1)  # (B, T, D) each -> (B, T, sum D)
