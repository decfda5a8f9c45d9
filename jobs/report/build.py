"""`write_report`: OUT/run.json and the files it names -> one self-contained HTML file.

Reads the record (`record`), gathers what to show (`gather`), decodes the thumbnails of every video
(`thumbs`, a few videos at once), builds each subject's figure (`figures`) and assembles the page (`page`).
The Plotly library (plotly.js from the `plotly` package, about 4.8 MB) and each figure's JSON are stored
gzip-compressed in base64: the library then costs about 2 MB of the file, and a figure is inflated
only when its timeline is drawn. The file is written atomically.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.progress import progress_display
from jobs.report.figures import clip_figure, subject_figure
from jobs.report.gather import ReportData, gather
from jobs.report.page import page
from jobs.report.record import ReportError, read_record
from jobs.report.thumbs import Thumb, video_thumbs
from pipeline.io import write_text

REPORT_FILE = "report.html"  # OUT/report.html
Say = Callable[[str], None]

__all__ = ["REPORT_FILE", "ReportConfig", "ReportError", "ReportResult", "write_report"]


@dataclass(frozen=True)
class ReportConfig:
    """One report of one run."""

    run: Path  # the run's output folder, which holds run.json
    output: Path | None = None  # the HTML file; None: RUN/report.html
    thumbnails: int = 8  # thumbnails per video, at regular intervals; 0: none
    thumb_px: int = 96  # side of a thumbnail in pixels
    most_points: int = 1200  # points per timeline; a longer subject is binned to this many
    threads: int = 2  # videos decoded at once for the thumbnails

    @property
    def path(self) -> Path:
        return self.output if self.output is not None else Path(self.run) / REPORT_FILE


@dataclass(frozen=True)
class ReportResult:
    """What was written."""

    path: Path  # the HTML file
    bytes: int  # its size
    videos: int  # videos shown
    subjects: int  # subjects shown
    seconds: float  # time to make it
    notes: tuple[str, ...] = ()  # what could not be shown


def packed(value: Any) -> str:
    """JSON (no NaN), gzip-compressed, in base64: what `page.js` inflates."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return base64.b64encode(gzip.compress(text.encode(), 9, mtime=0)).decode()


@functools.cache
def plotly_library() -> str:
    """plotly.js from the `plotly` package, packed like the figures (the page draws with it offline)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as e:  # a dependency of lwaffect: only a broken install lacks it
        raise ReportError(
            f"the plotly package is missing ({e}): reinstall lwaffect (`make install`)"
        ) from None
    return base64.b64encode(gzip.compress(get_plotlyjs().encode(), 9, mtime=0)).decode()


def figures_of(data: ReportData, most: int) -> dict[str, list[tuple[str, str]]]:
    """Subject -> [(element id, packed figure)]: its timeline, then its clip bars (EMI)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for k, subject in enumerate(data.subjects.values()):
        fps = data.videos[subject.video].fps
        made = [subject_figure(subject, fps, most)]
        clip = clip_figure(subject)
        made += [clip] if clip is not None else []
        out[subject.name] = [(f"figure-{k}-{j}", packed(f)) for j, f in enumerate(made)]
    return out


def all_thumbs(data: ReportData, cfg: ReportConfig, say: Say) -> dict[str, list[Thumb]]:
    """Every subject's thumbnails, `cfg.threads` videos at a time, with a bar over the videos."""
    thumbs: dict[str, list[Thumb]] = {}
    if cfg.thumbnails <= 0:
        return thumbs
    with progress_display(say) as display, ThreadPoolExecutor(max(cfg.threads, 1)) as pool:
        bar = display.bar("report: thumbnails", len(data.videos), "videos", every_s=15.0)
        jobs = [
            pool.submit(video_thumbs, v, [data.subjects[s] for s in v.subjects], cfg.thumbnails, cfg.thumb_px)
            for v in data.videos.values()
        ]
        for job in as_completed(jobs):
            thumbs.update(job.result())
            bar.advance(1)
        bar.close()
    return thumbs


def write_report(cfg: ReportConfig, say: Say | None = None) -> ReportResult:
    """Write the HTML report of the run in `cfg.run`; what can no longer be found is said in the page."""
    say = say or (lambda line: None)
    started = time.perf_counter()
    data = gather(read_record(cfg.run), say)
    thumbs = all_thumbs(data, cfg, say)
    document = page(data, figures_of(data, cfg.most_points), thumbs, plotly_library(), cfg.thumb_px)
    write_text(cfg.path, document)
    size = cfg.path.stat().st_size
    say(
        f"[report] {cfg.path}: {len(data.videos)} videos, {len(data.subjects)} subjects, {size / 2**20:.1f} MiB"
    )
    return ReportResult(cfg.path, size, len(data.videos), len(data.subjects), time.perf_counter() - started,
                        tuple(data.notes))  # fmt: skip
