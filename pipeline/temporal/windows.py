"""Sequence windows over the feature cache: T-frame windows per subject with labels and a validity mask.

Windows are planned from frame counts and labels only, and their maps are read from the cache by row
ranges (`FeatureCache.read`) through a small LRU of row blocks, so a data set never has to fit in memory.
A window never mixes subjects. Frame tasks give windows of `seq_len` frames every `stride` frames, the
last one padded (mask False); the clip task (EMI) gives one window per clip, sampled or padded to
`seq_len`. Shuffling keeps locality: windows are drawn, grouped by the row block they start in, and the
blocks are visited in random order with the windows of a few blocks mixed together. Balanced draws weigh
a window by 1 / the frequency of its rarest positive class, capped at `max_weight_ratio` times the median
weight, and draw by systematic resampling (each window floor or ceil of its expected count, not a lottery
that leaves a third of the windows out of an epoch).

Frames without a face have all-zero cached maps. Unless `no_face="zeros"`, a window's faceless frames carry
the maps of its nearest frame with a face (`hold_faces`), so that zeros reach neither the tail's BatchNorm
statistics nor, through token mixing, the outputs of their neighbours; training leaves out windows without
a labelled face frame. The same reading (`ShardReader.window`) and frame mask (`frame_mask`) serve training
here and prediction in `pipeline.temporal.predictor`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from model.tasks import get_task

Item = tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]  # (maps, targets, mask)
NoFace = Literal["hold", "zeros"]  # maps of frames without a face: the nearest face frame's, or the zeros
NO_FACE: tuple[NoFace, ...] = ("hold", "zeros")


@dataclass(frozen=True)
class WindowConfig:
    """How windows are cut, drawn and read."""

    seq_len: int = 32  # frames per window (T)
    stride: int = 16  # frames between the starts of two windows of one subject
    include_no_face: bool = False  # also count frames without a detected face as valid
    no_face: NoFace = "hold"  # maps of faceless frames: the nearest face frame's in the window, or zeros
    balanced: bool = False  # draw windows with weights by their rarest positive class (au, expr, ah)
    max_weight_ratio: float = 10.0  # balanced draws: no window weighs more than this times the median one
    shuffle: bool = True  # random window order (a new one per epoch); False: subject and frame order
    seed: int = 0  # seed of the window order; the epoch number is mixed in
    block_rows: int = 128  # rows per cache read
    cached_blocks: int = 8  # row blocks kept in the LRU
    shuffle_blocks: int = 4  # row blocks whose windows are mixed together when shuffling


@dataclass(frozen=True)
class Window:
    """Rows [start, stop) of one subject's shard; `rows` lists them explicitly for clip windows."""

    subject: str  # cache subject (shard) name
    start: int  # first row
    stop: int  # one past the last row; stop - start <= seq_len
    rows: tuple[int, ...] | None = None  # explicit rows (clip task), else range(start, stop)


def plan_windows(num_frames: int, seq_len: int, stride: int) -> list[tuple[int, int]]:
    """Row ranges of the windows of one subject: every `stride` rows, the last one partial if needed.

    Every row is covered; a window that only repeats rows the previous one already reached is left out.
    """
    if seq_len < 1 or stride < 1:
        raise ValueError(f"seq_len and stride must be positive, got {seq_len} and {stride}")
    spans = []
    for start in range(0, num_frames, stride):
        if start > 0 and start - stride + seq_len >= num_frames:
            break
        spans.append((start, min(start + seq_len, num_frames)))
    return spans


def clip_rows(num_frames: int, seq_len: int) -> np.ndarray:
    """Rows of a clip's single window: all of them, or `seq_len` evenly spaced ones when longer."""
    if num_frames <= seq_len:
        return np.arange(num_frames)
    return np.round(np.linspace(0, num_frames - 1, seq_len)).astype(np.int64)


def label_rows(values: np.ndarray, valid: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the frames with decode indices `index`; frames past the annotation are invalid."""
    inside = (index >= 0) & (index < len(values))
    rows = np.where(inside, index, 0)
    out = np.where(inside[:, None], values[rows], 0.0).astype(np.float32)  # (n, K)
    return out, valid[rows] & inside


def class_presence(task: str, values: np.ndarray, valid: np.ndarray) -> np.ndarray | None:
    """Which classes have a positive among the valid frames: (classes,) bool; None for regression."""
    kind = get_task(task).kind
    v = values[valid]
    if kind == "multilabel":  # (n, 12) 0/1
        return (v > 0.5).any(axis=0)
    if kind == "multiclass":  # (n, 1) class index
        return np.bincount(v[:, 0].astype(np.int64), minlength=get_task(task).outputs) > 0
    if kind == "binary":  # (n, 1): both classes count
        return np.array([(v[:, 0] < 0.5).any(), (v[:, 0] >= 0.5).any()])
    return None


def class_frequencies(task: str, values: np.ndarray, valid: np.ndarray) -> np.ndarray | None:
    """Share of valid frames in which each class is positive: (classes,); None for regression."""
    kind = get_task(task).kind
    v = values[valid]
    if kind == "regression" or len(v) == 0:
        return None
    if kind == "multilabel":
        return (v > 0.5).mean(axis=0)
    if kind == "multiclass":
        return np.bincount(v[:, 0].astype(np.int64), minlength=get_task(task).outputs) / len(v)
    positive = float((v[:, 0] >= 0.5).mean())
    return np.array([1.0 - positive, positive])


def capped_weights(weights: np.ndarray, max_ratio: float) -> np.ndarray:
    """Weights (n,) with none above `max_ratio` times their median: a window of a class seen in a handful
    of frames would otherwise be drawn hundreds of times an epoch."""
    if len(weights) == 0:
        return weights
    return np.minimum(weights, max_ratio * float(np.median(weights)))


def systematic_draw(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """len(weights) indices drawn in proportion to `weights` by systematic resampling: window i comes
    floor or ceil of n * w_i / sum(w) times, so equal weights give every window exactly once."""
    n = len(weights)
    cumulative = np.cumsum(weights) / weights.sum()
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, (rng.random() + np.arange(n)) / n, side="right")


def window_weight(presence: np.ndarray | None, freq: np.ndarray | None, floor: float = 1e-3) -> float:
    """Sampling weight of a window: 1 / frequency of the rarest class present in it (1 when none is)."""
    if presence is None or freq is None or not presence.any():
        return 1.0
    return float(1.0 / max(float(freq[presence].min()), floor))


class ShardReader:
    """Reads rows of cache shards through an LRU of fixed row blocks."""

    def __init__(self, cache: Any, block_rows: int = 128, cached_blocks: int = 8):
        self.cache = cache
        self.block_rows = block_rows
        self.cached_blocks = cached_blocks
        self._blocks: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._frames: dict[str, int] = {}
        self.reads = 0  # cache reads made, for tests and diagnostics

    def num_frames(self, subject: str) -> int:
        if subject not in self._frames:
            self._frames[subject] = int(self.cache.num_frames(subject))
        return self._frames[subject]

    def _block(self, subject: str, b: int) -> Any:
        key = (subject, b)
        if key in self._blocks:
            self._blocks.move_to_end(key)
            return self._blocks[key]
        start = b * self.block_rows
        stop = min(start + self.block_rows, self.num_frames(subject))
        block = self.cache.read(subject, start, stop)
        self.reads += 1
        self._blocks[key] = block
        while len(self._blocks) > self.cached_blocks:
            self._blocks.popitem(last=False)
        return block

    def rows(self, subject: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """Decode index (n,), face (n,) and maps ((n, C, H, W), ...) of the given rows, in their order (a crop
        cache's: ((n, 3, S, S) uint8 crops,))."""
        blocks = rows // self.block_rows
        index = np.empty(len(rows), np.int64)
        face = np.empty(len(rows), bool)
        maps: list[np.ndarray] | None = None
        for b in np.unique(blocks):
            block = self._block(subject, int(b))
            sel = np.nonzero(blocks == b)[0]
            local = rows[sel] - int(b) * self.block_rows
            if maps is None:
                # maps float16 -> float32; a crop cache's crops stay uint8
                maps = [np.empty((len(rows), *m.shape[1:]), _dtype(m)) for m in block.maps]
            index[sel] = block.index[local]
            face[sel] = block.face[local]
            for out, m in zip(maps, block.maps, strict=True):
                out[sel] = m[local]
        assert maps is not None, "no rows requested"
        return index, face, tuple(maps)

    def window(
        self, subject: str, rows: np.ndarray, seq_len: int, no_face: NoFace = "hold"
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """Decode index (T,), face (T,) and maps ((T, C, H, W), ...) of `rows` padded to T = `seq_len`;
        with `no_face="hold"` faceless frames carry their nearest face frame's maps (`hold_faces`)."""
        if no_face not in NO_FACE:
            raise ValueError(f"unknown no-face treatment {no_face!r}; use one of {', '.join(NO_FACE)}")
        index, face, maps = self.rows(subject, pad_rows(rows, seq_len))
        return index, face, hold_faces(maps, face) if no_face == "hold" else maps

    def faces(self, subject: str) -> np.ndarray:
        """(N,) bool: which rows of `subject` have a face (read without the maps)."""
        n = self.num_frames(subject)
        return np.asarray(self.cache.read(subject, 0, n, maps=False).face, bool) if n else np.zeros(0, bool)


def _dtype(cached: np.ndarray) -> type:
    return np.uint8 if cached.dtype == np.uint8 else np.float32


def pad_rows(rows: np.ndarray, seq_len: int) -> np.ndarray:
    """Rows padded to `seq_len` by repeating the last one (the padding is masked out)."""
    if len(rows) >= seq_len:
        return rows[:seq_len]
    return np.concatenate([rows, np.full(seq_len - len(rows), rows[-1], rows.dtype)])


def nearest_face(face: np.ndarray) -> np.ndarray:
    """(n,) row of the nearest frame with a face for every row of a window (itself where it has one; the
    earlier one on a tie); `face` (n,) bool must hold at least one True."""
    known = np.flatnonzero(face)
    pos = np.arange(len(face))
    after = np.searchsorted(known, pos)  # first face row at or after each row
    before = known[np.clip(after - 1, 0, len(known) - 1)]
    after = known[np.clip(after, 0, len(known) - 1)]
    return np.where(np.abs(pos - before) <= np.abs(after - pos), before, after)


def hold_faces(maps: tuple[np.ndarray, ...], face: np.ndarray) -> tuple[np.ndarray, ...]:
    """Maps ((n, C, H, W), ...) of a window with each faceless frame's maps replaced by those of its nearest
    face frame; unchanged when every frame, or none, has a face."""
    face = np.asarray(face, bool)
    if face.all() or not face.any():
        return maps
    source = nearest_face(face)
    return tuple(m[source] for m in maps)


def frame_mask(count: int, face: np.ndarray, include_no_face: bool) -> np.ndarray:
    """(T,) bool of a window padded to T = len(face): its `count` real rows, those with a face only unless
    `include_no_face`. A clip's frames are pooled over it, a frame task's loss counts it."""
    mask = np.arange(len(face)) < count
    return mask if include_no_face else mask & np.asarray(face, bool)


class WindowDataset(IterableDataset):
    """Windows of one task's labelled subjects, streamed from the cache; DataLoader-compatible.

    Yields one window at a time: maps tuple of (T, C, H, W) float32 (a crop cache: ((T, 3, S, S) uint8,),
    made into maps by `pipeline.temporal.crops.CropMaps`), targets (T, K) float32 (clip task: (K,)),
    mask (T,) bool. `window_loader` batches them to (B, T, C, H, W), (B, T, K), (B, T).
    """

    def __init__(self, cache: Any, labels: Mapping[str, Any], task: str, cfg: WindowConfig):
        """`labels` maps a cache subject to its `Labels` (values (N, K), valid (N,))."""
        self.cache = cache
        self.task = task
        self.cfg = cfg
        self.clip = get_task(task).unit == "clip"
        self.labels = {
            s: (np.asarray(lab.values, np.float32), np.asarray(lab.valid, bool)) for s, lab in labels.items()
        }
        self.epoch = 0
        self._reader: ShardReader | None = None
        self.windows: list[Window] = []
        self.weights = np.zeros(0)
        self._plan()

    def _plan(self) -> None:
        reader = ShardReader(self.cache, self.cfg.block_rows, self.cfg.cached_blocks)
        freq = None  # class frequencies over all labelled frames, for balanced draws
        if self.cfg.balanced and not self.clip and self.labels:
            values = np.concatenate([v for v, _ in self.labels.values()])
            valid = np.concatenate([ok for _, ok in self.labels.values()])
            freq = class_frequencies(self.task, values, valid)
        windows, weights = [], []
        for subject, (values, valid) in self.labels.items():
            n = reader.num_frames(subject)
            # a window needs a frame with a face (unless faceless ones count): others would train on nothing
            face = np.ones(n, bool) if self.cfg.include_no_face else reader.faces(subject)
            if self.clip:
                if n > 0 and valid.any() and face.any():
                    rows = clip_rows(n, self.cfg.seq_len)
                    windows.append(
                        Window(subject, int(rows[0]), int(rows[-1]) + 1, tuple(int(r) for r in rows))
                    )
                    weights.append(1.0)
                continue
            for start, stop in plan_windows(n, self.cfg.seq_len, self.cfg.stride):
                v, ok = label_rows(values, valid, np.arange(start, stop))
                if not (ok & face[start:stop]).any():
                    continue
                windows.append(Window(subject, start, stop))
                weights.append(
                    window_weight(class_presence(self.task, v, ok), freq) if freq is not None else 1.0
                )
        self.windows = windows
        self.weights = capped_weights(np.asarray(weights, np.float64), self.cfg.max_weight_ratio)

    def set_epoch(self, epoch: int) -> None:
        """Select the window order of `epoch` (the order depends only on the seed and the epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def order(self) -> list[int]:
        """Window indices of this epoch, grouped by row block for locality when shuffled."""
        n = len(self.windows)
        if not self.cfg.shuffle or n == 0:
            return list(range(n))
        rng = np.random.default_rng((self.cfg.seed, self.epoch))
        if self.cfg.balanced:
            drawn = systematic_draw(self.weights, rng)
        else:
            drawn = rng.permutation(n)
        groups: dict[tuple[str, int], list[int]] = {}
        for i in drawn:
            w = self.windows[int(i)]
            groups.setdefault((w.subject, w.start // self.cfg.block_rows), []).append(int(i))
        keys = list(groups)
        keys = [keys[k] for k in rng.permutation(len(keys))]
        out: list[int] = []
        for g in range(0, len(keys), self.cfg.shuffle_blocks):
            pool = np.concatenate([groups[k] for k in keys[g : g + self.cfg.shuffle_blocks]])
            out.extend(int(i) for i in rng.permutation(pool))
        return out

    def window(self, w: Window) -> Item:
        """Maps, targets and mask of one window."""
        if self._reader is None:
            self._reader = ShardReader(self.cache, self.cfg.block_rows, self.cfg.cached_blocks)
        rows = np.asarray(w.rows) if w.rows is not None else np.arange(w.start, w.stop)
        index, face, maps = self._reader.window(w.subject, rows, self.cfg.seq_len, self.cfg.no_face)
        values, valid = self.labels[w.subject]
        target, ok = label_rows(values, valid, index)  # (T, K), (T,)
        mask = frame_mask(len(rows), face, self.cfg.include_no_face)  # (T,)
        if self.clip:
            return (
                tuple(torch.from_numpy(m) for m in maps),
                torch.from_numpy(values[0]),
                torch.from_numpy(mask),
            )
        mask &= ok
        return tuple(torch.from_numpy(m) for m in maps), torch.from_numpy(target), torch.from_numpy(mask)

    def __iter__(self) -> Iterator[Item]:
        order = self.order()
        info = get_worker_info()
        if info is not None:  # each worker takes every num_workers-th window
            order = order[info.id :: info.num_workers]
        for i in order:
            yield self.window(self.windows[i])


def collate_windows(items: Sequence[Item]) -> Item:
    """Stack windows into a batch: maps ((B, T, C, H, W), ...), targets (B, T, K) or (B, K), mask (B, T)."""
    maps = tuple(torch.stack(level) for level in zip(*(it[0] for it in items), strict=True))
    return maps, torch.stack([it[1] for it in items]), torch.stack([it[2] for it in items])


def window_loader(dataset: WindowDataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """A DataLoader over `dataset` yielding (maps tuple (B, T, C, H, W) float32, targets, mask (B, T))."""
    return DataLoader(dataset, batch_size=batch_size, collate_fn=collate_windows, num_workers=num_workers)
