"""The extraction's row protocol: the rows that flow between the three Ray stages and back to the driver.

Stage rows (`FaceStage` -> `BackboneStage` -> `WriteStage`): a batch of numpy columns, one row per frame
and subject, plus marker rows that end a subject:

- `kind`: FRAME (a frame of a subject), END (the subject's last row: `frames` is its frame count) or
  FAIL (the subject failed: `stage` and `reason` say where and why); `subject`, `video`;
- the face record: `index` (decode index; -1 on markers), `face` (bool), `box` (4), `score`,
  `landmarks` (5, 2) float32 and `source` (one of `pipeline.faces.track.SOURCES`: detected, refined, tracked, interpolated or none);
- `crops` (3, S, S) uint8 from the face stage, which the backbone stage replaces by the cached maps,
  one column each named as the cache spec's `cached_names` (N = 2: `s8` and `s16`), and the crop stage
  of a crop cache by `crop`, the bytes of its image, empty where no face;
- per-row shares of each stage's seconds (`t_decode`, `t_detect`, `t_align`, then `t_backbone`) and
  `w_video`, the row's share of one decoded frame (1 / subjects of the video), so that sums over rows
  give each stage's frames and time; `node`, the Ray node the row was made on; `SPEC_COLUMN`, where the
  backbone workers describe the backbone.

Summary rows (`WriteStage` -> driver), columns SUMMARY_COLUMNS + TIME_COLUMNS; the maps never reach the
driver. FRAME: a run of consecutive frames `start`..`stop` of a subject went to its shard (`faces`, the
run's summed times, `n_face` its rows with a face); END: the subject's shard is complete and in place
(`frames`, `faces`, `bytes`: its manifest entry; `SPEC_COLUMN`, the backbone's spec the write stage
adopted, where it did); FAIL: the subject failed (`stage`, `reason`). `nodes`
lists the nodes that made and wrote the rows, `t_write` each row's share of the write call's seconds.
`summary_batch` builds them, `summaries` reads them back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

FRAME, END, FAIL = 0, 1, 2  # row kinds
# the backbone's spec as JSON, on stage rows from a backbone worker that describes it and on END summaries
# of shards written with it (`jobs.extract.spec`)
SPEC_COLUMN = "backbone_spec"

# per-row shares of the stages' seconds and of a decoded frame; the write stage sums them per run
PART_TIMES = ("t_decode", "t_detect", "t_align", "t_backbone", "w_video")
SUMMARY_COLUMNS = ("kind", "subject", "video", "start", "stop", "faces", "frames", "bytes", "stage", "reason",
                   "nodes", SPEC_COLUMN)  # fmt: skip
TIME_COLUMNS = ("t_decode", "t_detect", "t_align", "t_backbone", "t_write", "w_video", "n_face")


def blank_rows(subject: str, video: str, kind: int, n: int, size: int) -> dict[str, np.ndarray]:
    """`n` stage rows of `kind` for a subject with every other column blank (crops of side `size`)."""
    return {
        "kind": np.full(n, kind, np.int8),
        "subject": np.array([subject] * n, dtype=object),
        "video": np.array([video] * n, dtype=object),
        "index": np.full(n, -1, np.int32),
        "face": np.zeros(n, bool),
        "box": np.full((n, 4), np.nan, np.float32),
        "score": np.zeros(n, np.float32),
        "landmarks": np.full((n, 5, 2), np.nan, np.float32),
        "source": np.array(["none"] * n, dtype=object),
        "crops": np.zeros((n, 3, size, size), np.uint8),
        "frames": np.zeros(n, np.int64),
        "stage": np.array([""] * n, dtype=object),
        "reason": np.array([""] * n, dtype=object),
        **{f"t_{s}": np.zeros(n) for s in ("decode", "detect", "align")},
        "w_video": np.zeros(n),
        "node": np.array([""] * n, dtype=object),
    }


def marker(
    subject: str, video: str, kind: int, size: int, frames: int = 0, stage: str = "", reason: str = ""
) -> dict[str, np.ndarray]:
    """An END or FAIL row of a subject."""
    row = blank_rows(subject, video, kind, 1, size)
    row["frames"][:] = frames
    row["stage"][:], row["reason"][:] = stage, reason
    return row


_DEFAULTS: dict[str, Any] = {
    "kind": FRAME,
    "subject": "",
    "video": "",
    "start": 0,
    "stop": 0,
    "faces": 0,
    "frames": 0,
    "bytes": 0,
    "stage": "",
    "reason": "",
    "nodes": "",
    SPEC_COLUMN: "",
    **dict.fromkeys(TIME_COLUMNS, 0.0),
}


def summary_batch(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Summary rows, each a dict of some summary columns -> a batch of every column (the rest default);
    without rows, empty columns of the defaults' types."""
    return {
        c: np.array([row.get(c, _DEFAULTS[c]) for row in rows], dtype=None if rows else type(_DEFAULTS[c]))
        for c in (*SUMMARY_COLUMNS, *TIME_COLUMNS)
    }


@dataclass(frozen=True)
class Summary:
    """One summary row, as the driver reads it."""

    kind: int  # FRAME: rows went to the shard; END: the shard is complete and in place; FAIL: it failed
    subject: str
    video: str
    start: int  # FRAME: first frame index of the run
    stop: int  # FRAME: one past its last
    faces: int  # FRAME: frames of the run with a face; END: of the shard
    frames: int  # END: the shard's frame count
    bytes: int  # END: the shard's size on disk
    stage: str  # FAIL: the stage that failed (decode, faces, write, ...)
    reason: str  # FAIL: why
    nodes: tuple[str, ...]  # Ray nodes that made and wrote the rows
    backbone_spec: str  # END: the backbone's spec (JSON) the write stage adopted; "" where the driver had one
    times: dict[str, float]  # TIME_COLUMNS: the part's seconds per stage, decoded frames, face rows


def summaries(batch: dict[str, np.ndarray]) -> Iterator[Summary]:
    """The summary rows of a batch the write stage returned, in order."""
    for i in range(len(batch["kind"])):
        yield Summary(
            kind=int(batch["kind"][i]),
            subject=str(batch["subject"][i]),
            video=str(batch["video"][i]),
            start=int(batch["start"][i]),
            stop=int(batch["stop"][i]),
            faces=int(batch["faces"][i]),
            frames=int(batch["frames"][i]),
            bytes=int(batch["bytes"][i]),
            stage=str(batch["stage"][i]),
            reason=str(batch["reason"][i]),
            nodes=tuple(n for n in str(batch["nodes"][i]).split(",") if n),
            backbone_spec=str(batch[SPEC_COLUMN][i]),
            times={c: float(batch[c][i]) for c in TIME_COLUMNS},
        )
