"""The extraction's write stage for Ray Data: stage rows with maps (or crop images) -> each subject's shard,
and summary rows.

Every map is written once, here, where the rows are: one `pipeline.cache.shard.ShardWriter` per subject
streams row groups into the subject's shard under a temporary name, and closes it (footer, rename into
place) once the subject's END row has come and every frame before it. The driver gets only summary rows
(`jobs.extract.rows`): one per run of consecutive frames written, one per closed shard (END, with its
frame, face and byte counts, for the manifest) and one per failed subject (FAIL). A subject's rows must
all reach the same writer, so the stage has one worker, or runs inside the one backbone or crop worker
(`jobs.extract.plan.StagePlan.write_joined`). Where the driver had no spec (`jobs.extract.spec`), the
stage adopts the one the backbone workers send with their rows.

Kept in a module of its own so that its worker imports neither torch nor the detector.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jobs.extract.rows import END, FAIL, FRAME, PART_TIMES, SPEC_COLUMN, summary_batch
from jobs.extract.runtime import node_address
from pipeline.cache.schema import frames_table, map_columns
from pipeline.cache.shard import ShardOpener, ShardWriter
from pipeline.cache.spec import SpecMismatch, cache_differences

# test hook: seconds the stage sleeps once the first row group of a shard is written, so that a test can
# kill a run in the middle of a write (read by the driver, which passes it on)
PAUSE_VAR = "LWAFFECT_WRITE_PAUSE_S"


def pause_from_env() -> float:
    """The test hook's pause (`PAUSE_VAR`), 0 when unset."""
    return float(os.environ.get(PAUSE_VAR) or 0.0)


class WriteStage:
    """Ray Data stage: rows with maps -> shards; returns summary rows.

    Each subject's frame rows of a batch are sorted by frame index and handed to its shard writer as runs
    of consecutive indices; marker rows come after them: END closes the shard once complete, FAIL drops
    it. Rows of a subject that failed or was closed are ignored.
    """

    def __init__(
        self,
        opener: ShardOpener,
        pause_s: float = 0.0,
        # where the driver had no spec (`opener.spec` None): the cache spec as a function of the backbone's
        # (`jobs.extract.spec.spec_with`), which the backbone workers send with their rows
        describe: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
    ):
        self.opener, self.pause_s, self.describe = opener, pause_s, describe
        self.described: str | None = None  # the backbone spec (JSON) adopted from the rows
        self.agreed: set[str] = set()  # backbone specs (JSON) seen that make the adopted spec's maps
        self.writers: dict[str, ShardWriter] = {}  # subjects with a shard in the making
        self.done: set[str] = set()  # subjects closed or failed
        self.node = node_address()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        self._adopt(batch)
        out: list[dict[str, Any]] = []
        kind = batch["kind"]
        frames = np.flatnonzero(kind == FRAME)
        subjects = batch["subject"][frames]
        for subject in dict.fromkeys(subjects.tolist()):
            rows = frames[subjects == subject]
            rows = rows[np.argsort(batch["index"][rows], kind="stable")]
            index = batch["index"][rows]
            for run in np.split(rows, np.flatnonzero(np.diff(index) != 1) + 1):
                out += self._write(batch, run)
        for i in np.flatnonzero(kind != FRAME):
            subject, video = str(batch["subject"][i]), str(batch["video"][i])
            if kind[i] == FAIL:
                out += self._drop(subject, video, str(batch["stage"][i]), str(batch["reason"][i]))
            else:
                out += self._settle(subject, video, frames=int(batch["frames"][i]))
        made_on = {
            self.node,
            *(str(x) for x in batch["node"] if x),
        }  # this writer, and where the rows were made
        nodes = ",".join(sorted(made_on))
        for row in out:
            row["t_write"] = (time.perf_counter() - started) / len(out)
            row["nodes"] = nodes
        return summary_batch(out)

    def _adopt(self, batch: dict[str, np.ndarray]) -> None:
        """Where the driver had no spec: the first backbone spec the rows bring makes the cache's, written
        into the cache before any shard opens; rows from a backbone that makes other maps stop the run."""
        if self.describe is None or SPEC_COLUMN not in batch:
            return
        for text in dict.fromkeys(batch[SPEC_COLUMN].tolist()):
            if text in self.agreed:
                continue
            backbone = json.loads(text)
            adopted = self.opener.spec
            if adopted is None:
                adopted = self.describe(backbone)
                self.opener, self.described = self.opener.adopting(adopted), text
            differences = cache_differences(backbone, adopted)
            if differences:
                raise SpecMismatch(
                    "the backbone workers do not all make the same maps "
                    f"({'; '.join(differences)}; the later worker's value first): the nodes hold different "
                    "weights files. Give every node the same file and rerun."
                )
            self.agreed.add(text)

    def _write(self, batch: dict[str, np.ndarray], run: np.ndarray) -> list[dict[str, Any]]:
        subject, video = str(batch["subject"][run[0]]), str(batch["video"][run[0]])
        face = batch["face"][run]
        row: dict[str, Any] = {
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
        if subject in self.done:
            return [row]  # counted for progress, not written
        writer = self._writer(subject, video)
        try:
            writer.add(
                frames_table(
                    writer.schema,
                    batch["index"][run],
                    face,
                    batch["box"][run],
                    batch["score"][run],
                    batch["landmarks"][run],
                    batch["source"][run].tolist(),
                    tuple(batch[name][run] for name in map_columns(writer.schema)),
                )
            )
        except Exception as err:
            return [row, *self._drop(subject, video, "write", f"{writer.path}: {type(err).__name__}: {err}")]
        if self.pause_s and writer.groups:
            time.sleep(self.pause_s)
            self.pause_s = 0.0
        return [row, *self._settle(subject, video)]

    def _writer(self, subject: str, video: str) -> ShardWriter:
        if subject not in self.writers:
            self.writers[subject] = self.opener.open(subject, video)
        return self.writers[subject]

    def _settle(self, subject: str, video: str, frames: int | None = None) -> list[dict[str, Any]]:
        """Note the frame count (END row) and close the shard once complete: its END summary row."""
        if subject in self.done:
            return []
        writer = self._writer(subject, video)
        try:
            if frames is not None:
                writer.end(frames)
            if not writer.complete:
                return []
            entry = writer.close()
        except Exception as err:
            return self._drop(subject, video, "write", f"{writer.path}: {type(err).__name__}: {err}")
        del self.writers[subject]
        self.done.add(subject)
        return [
            {"kind": END, "subject": subject, "video": video, "frames": entry.frames, "faces": entry.faces,
             "bytes": entry.bytes, SPEC_COLUMN: self.described or ""}
        ]  # fmt: skip

    def _drop(self, subject: str, video: str, stage: str, reason: str) -> list[dict[str, Any]]:
        """Discard a failed subject's shard: its FAIL summary row."""
        if subject in self.done:
            return []
        self.done.add(subject)
        writer = self.writers.pop(subject, None)
        if writer is not None:
            writer.discard()
        return [{"kind": FAIL, "subject": subject, "video": video, "stage": stage, "reason": reason}]
