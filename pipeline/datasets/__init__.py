"""Data set adapters: `load_catalogue` reads an input folder (Aff-Wild2, HUME-Vidmimic2, BAH or plain).

Layout detection ("auto"), in this order: `affwild2` when an annotation folder with task folders or a
test release list is found; `emi` when `raw/` and `train_split.csv` / `valid_split.csv` are there; `ah`
when an `annotation.yml` is there; else `plain` (every video below the folder, no labels).

Error handling: every adapter collects the bad inputs it meets (wrong header, non-numeric or out-of-range
value, wrong column count, empty file, annotation or list entry with no matching video, ...) as
`CatalogueProblem`s naming the file, the 1-based line where one applies, and the reason, and leaves the
affected subject out of that task's splits. With `strict=True` (the default) `load_catalogue` then raises
one `CatalogueError` listing them all, so the user sees every bad file at once; with `strict=False` it
returns the catalogue of the good inputs with the problems in `Catalogue.errors` (and as failure-table
rows from `Catalogue.failures()`), so that a run can go on and report them. A missing input folder is
always an error. Nothing is probed or decoded here (see `Catalogue.video_info`).

May import model and pipeline.video (probing a video's frames on demand).
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.datasets.affwild2 import load_affwild2, looks_like_affwild2
from pipeline.datasets.bah import load_ah, looks_like_ah
from pipeline.datasets.catalogue import (
    LAYOUTS,
    Catalogue,
    CatalogueError,
    CatalogueProblem,
    Labels,
    Subject,
    Video,
)
from pipeline.datasets.hume import load_emi, looks_like_emi
from pipeline.datasets.plain import load_plain

__all__ = [
    "LAYOUTS",
    "Catalogue",
    "CatalogueError",
    "CatalogueProblem",
    "Labels",
    "Subject",
    "Video",
    "detect_layout",
    "load_catalogue",
]


def detect_layout(root: Path) -> str:
    """The layout of folder `root`: affwild2, emi, ah or plain (shallow look, nothing parsed)."""
    if looks_like_affwild2(root):
        return "affwild2"
    if looks_like_emi(root):
        return "emi"
    if looks_like_ah(root):
        return "ah"
    return "plain"


def load_catalogue(
    root: Path, layout: str = "auto", *, strict: bool = True, workers: int | None = None
) -> Catalogue:
    """Catalogue of the input folder `root`.

    `layout` is "auto" (detect) or one of LAYOUTS. `strict` raises one CatalogueError listing every bad
    input; otherwise they are returned in `Catalogue.errors`. `workers` threads parse annotation files
    (default: the number of CPUs, at most 8).
    """
    root = Path(os.path.abspath(Path(root).expanduser()))
    if not root.is_dir():
        raise CatalogueError(f"{root}: input folder does not exist or is not a folder")
    if layout not in ("auto", *LAYOUTS):
        raise CatalogueError(f"unknown layout {layout!r}; known layouts: auto, {', '.join(LAYOUTS)}")
    chosen = detect_layout(root) if layout == "auto" else layout
    if chosen == "affwild2":
        catalogue = load_affwild2(root, workers)
    elif chosen == "emi":
        catalogue = load_emi(root)
    elif chosen == "ah":
        catalogue = load_ah(root)
    else:
        catalogue = load_plain(root)
    how = "detected" if layout == "auto" else "given"
    catalogue.found.insert(0, f"layout: {chosen} ({how})")
    if strict and catalogue.errors:
        raise CatalogueError.from_problems(root, catalogue.errors)
    return catalogue
