"""The HUME-Vidmimic2 (EMI track) adapter: clips in `raw/`, six intensities per clip from the split CSVs.

`train_split.csv` and `valid_split.csv` have the columns `Filename,Admiration,Amusement,Determination,
Empathic Pain,Excitement,Joy` (`model.tasks.EMI_NAMES`); extra columns are noted and ignored. A Filename
may carry a folder or an extension or not, and digit names may differ in leading zeros: it is matched to
the clips in `raw/` leniently. The test split is every clip in `raw/` that neither CSV names, sorted.
Each clip is one subject (main face) with labels of shape (1, 6).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from model.tasks import EMI_NAMES, TASKS
from pipeline.datasets.catalogue import Catalogue, CatalogueProblem, Labels, Subject
from pipeline.datasets.files import index_videos, name_key, relative, subdirs, walk_tree

SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": ("train_split.csv", "train*.csv"),
    "validation": ("valid_split.csv", "val*.csv"),
}


def find_split_csvs(root: Path) -> dict[str, Path]:
    """split -> CSV at the root: `train_split.csv` / `valid_split.csv`, else `train*.csv` / `val*.csv`."""
    found: dict[str, Path] = {}
    for split, patterns in SPLIT_FILES.items():
        for pattern in patterns:
            matches = sorted(p for p in root.glob(pattern) if p.is_file())
            if matches:
                found[split] = matches[0]
                break
    return found


def looks_like_emi(root: Path) -> bool:
    """True when `root` has a `raw/` folder and a train or validation split CSV."""
    return (root / "raw").is_dir() and bool(find_split_csvs(root))


def _read_split(
    path: Path, clips: dict[str, str], cat: Catalogue, split: str, taken: dict[str, Path]
) -> list[str]:
    """Subjects of one split CSV; labels go into `cat.labels`, bad rows into `cat.errors`."""
    errors, spec = cat.errors, TASKS["emi"]
    text = path.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff")
    if not text.strip():
        errors.append(CatalogueProblem(path, "empty split file (no header, no rows)", task="emi"))
        return []
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader)]
    missing = [c for c in ("Filename", *EMI_NAMES) if c not in header]
    if missing:
        expected = ",".join(("Filename", *EMI_NAMES))
        reason = f"header {','.join(header)!r} lacks the column(s) {', '.join(missing)}; expected {expected}"
        errors.append(CatalogueProblem(path, reason, 1, "emi"))
        return []
    extra = [c for c in header if c not in ("Filename", *EMI_NAMES)]
    if extra:
        cat.found.append(f"emi: {path.name}: extra columns ignored: {', '.join(extra)}")
    where = {c: header.index(c) for c in ("Filename", *EMI_NAMES)}
    names: list[str] = []
    for row in reader:
        line = reader.line_num
        if not any(f.strip() for f in row):
            continue
        filename = row[where["Filename"]].strip() if where["Filename"] < len(row) else ""
        name = clips.get(name_key(filename)) if filename else None
        if len(row) != len(header):
            reason = f"{len(row)} columns, expected {len(header)}"
            errors.append(CatalogueProblem(path, reason, line, "emi", name or filename or None, name))
            if name is not None:
                taken.setdefault(name, path)  # listed, so not a test clip
            continue
        if name is None:
            reason = f"clip '{filename}' has no matching video in {relative(cat.root / 'raw', cat.root)}/"
            errors.append(CatalogueProblem(path, reason, line, "emi", filename))
            continue
        if name in taken:
            reason = f"clip '{filename}' is also listed in {taken[name]}"
            errors.append(CatalogueProblem(path, reason, line, "emi", name, name))
            continue
        taken[name] = path  # listed, so not a test clip even where its values are bad
        values, bad = [], None
        for column in EMI_NAMES:
            text_value = row[where[column]].strip()
            try:
                value = float(text_value)
            except ValueError:
                bad = f"value {text_value!r} in column {column} is not a number"
                break
            lo, hi = spec.value_range
            if not (math.isfinite(value) and lo <= value <= hi):
                bad = f"value {text_value} in column {column} is not a number in [{lo:g}, {hi:g}]"
                break
            values.append(value)
        if bad is not None:
            errors.append(CatalogueProblem(path, bad, line, "emi", name, name))
            continue
        array = np.asarray([values], dtype=np.float32)  # (1, 6)
        cat.labels["emi", name] = Labels("emi", name, array, np.ones(1, dtype=bool), path, first_frame=0)
        names.append(name)
    return names


def load_emi(root: Path) -> Catalogue:
    """Catalogue of a HUME-Vidmimic2 folder; bad inputs are recorded in `Catalogue.errors`."""
    cat = Catalogue(root=root, layout="emi")
    raw = root / "raw"
    cat.videos = index_videos(walk_tree(raw).videos, root, cat.found)
    for name in cat.videos:
        cat.subjects[name] = Subject(name=name, video=name, position="main")
    clips = {name_key(name): name for name in cat.videos}
    taken: dict[str, Path] = {}
    cat.splits["emi"] = {}
    for split, path in find_split_csvs(root).items():
        names = _read_split(path, clips, cat, split, taken)
        cat.splits["emi"][split] = names
        cat.found.append(f"emi {split}: {relative(path, root)} ({len(names)} clips)")
    for split in SPLIT_FILES:
        if split not in cat.splits["emi"]:
            cat.found.append(f"emi {split}: no split file (looked for {' or '.join(SPLIT_FILES[split])})")
    test = sorted(name for name in cat.videos if name not in taken)
    cat.splits["emi"]["test"] = test
    cat.found.append(f"emi test: {len(test)} clips in raw/ that no split file names")
    others = [f"{p.name}/" for p in subdirs(root) if p.name != "raw"]
    if others:
        cat.found.append(f"other folders (not used): {', '.join(others)}")
    return cat
