"""The extraction's write stage for Ray Data: stage rows with maps -> part files, and summary rows.

Kept in a module of its own so that its workers import neither torch nor the detector. Rows and summaries
are those of `jobs.extract.rows`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from jobs.extract.rows import FRAME, PART_TIMES, summary_batch
from jobs.extract.runtime import node_address
from pipeline.cache.schema import frames_table
from pipeline.cache.write import PartWriter


class WriteStage:
    """Ray Data stage: rows with maps -> part files; returns one summary row per part and per marker row.

    Each subject's rows of a batch are sorted by frame index and written as one part per run of
    consecutive indices (`PartWriter.write`), so the driver can tell from the summaries when a subject's
    parts cover all its frames.
    """

    def __init__(self, writer: PartWriter):
        self.writer = writer
        self.node = node_address()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        out: list[dict[str, Any]] = []
        kind = batch["kind"]
        for i in np.flatnonzero(kind != FRAME):
            out.append(
                {
                    "kind": int(kind[i]),
                    "subject": str(batch["subject"][i]),
                    "video": str(batch["video"][i]),
                    "frames": int(batch["frames"][i]),
                    "stage": str(batch["stage"][i]),
                    "reason": str(batch["reason"][i]),
                }
            )
        frames = np.flatnonzero(kind == FRAME)
        subjects = batch["subject"][frames]
        for subject in dict.fromkeys(subjects.tolist()):
            rows = frames[subjects == subject]
            rows = rows[np.argsort(batch["index"][rows], kind="stable")]
            index = batch["index"][rows]
            for run in np.split(rows, np.flatnonzero(np.diff(index) != 1) + 1):
                out.append(self._write(batch, run))
        n = max(len(out), 1)
        made_on = {
            self.node,
            *(str(x) for x in batch["node"] if x),
        }  # this writer, and where the rows were made
        nodes = ",".join(sorted(made_on))
        for row in out:
            row["t_write"] = (time.perf_counter() - started) / n
            row["nodes"] = nodes
        return summary_batch(out)

    def _write(self, batch: dict[str, np.ndarray], run: np.ndarray) -> dict[str, Any]:
        subject, video = str(batch["subject"][run[0]]), str(batch["video"][run[0]])
        table = frames_table(
            self.writer.schema,
            batch["index"][run],
            batch["face"][run],
            batch["box"][run],
            batch["score"][run],
            batch["landmarks"][run],
            batch["source"][run].tolist(),
            (batch["s8"][run], batch["s16"][run]),
        )
        self.writer.write(subject, video, table)
        face = batch["face"][run]
        row = {
            "kind": FRAME,
            "subject": subject,
            "video": video,
            "start": int(batch["index"][run[0]]),
            "stop": int(batch["index"][run[-1]]) + 1,
            "faces": int(face.sum()),
            "n_face": float(face.sum()),
        }
        for column in PART_TIMES:
            row[column] = float(batch[column][run].sum())
        return row
