"""The BAH (AH track) adapter: per-frame ambivalence/hesitancy labels from `annotation.yml`, split lists.

`annotation.yml` is keyed by video path; each video's `frame_annotation` lists `[<...>/frame-N.jpg, label]`
pairs (label 1 = A/H present, frames numbered from 0); `bah_yaml` reads it, fast for the documented shape
and leniently otherwise. Split files (`default-split/train.txt`,
`val.txt`, `test.txt`, or any `*split*` folder) hold lines `video,label,transcript`; only the first field
is read. Every video is one subject, named by its path below `videos/` (else below the root), e.g.
`<pid>/Visite_1/<pid>_Question_N_<date>_Video.mp4`. Labels are (N, 1) with row k = frame-k; frames the
file does not list are masked invalid.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from model.tasks import SPLIT_PARTS
from pipeline.datasets.bah_yaml import read_frame_lists
from pipeline.datasets.catalogue import Catalogue, CatalogueProblem, Labels, Subject
from pipeline.datasets.files import index_videos, relative, subdirs, walk_tree

SPLIT_NAMES: dict[str, str] = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}
HEADER_WORDS = frozenset({"video", "videos", "video_path", "path", "name", "filename", "file"})


def find_annotation_yml(root: Path) -> Path | None:
    """`annotation.yml` at the root, else the first `*annot*.y(a)ml` up to two folders deep."""
    for name in ("annotation.yml", "annotation.yaml", "annotations.yml", "annotations.yaml"):
        if (root / name).is_file():
            return root / name
    for folder in [root, *subdirs(root, depth=2)]:
        for path in sorted(folder.glob("*.y*ml")):
            if "annot" in path.name.lower() and path.is_file():
                return path
    return None


def looks_like_ah(root: Path) -> bool:
    """True when `root` holds a BAH annotation file."""
    return find_annotation_yml(root) is not None


def find_split_files(root: Path) -> dict[str, Path]:
    """split -> list file, from `default-split/` (else any folder named *split*) up to two levels deep."""
    folders = [f for f in [root, *subdirs(root, depth=2)] if "split" in f.name.lower()]
    folders.sort(key=lambda f: (f.name.lower() != "default-split", len(f.parts), str(f)))
    for folder in folders:
        found = {}
        for path in sorted(folder.glob("*.txt")):
            split = SPLIT_NAMES.get(path.stem.lower())
            if split and split not in found:
                found[split] = path
        if found:
            return found
    return {}


class _VideoIndex:
    """Finds a video from a path-like key: full relative path, any path suffix, with or without extension."""

    def __init__(self, cat: Catalogue) -> None:
        self.by_suffix: dict[str, set[str]] = defaultdict(set)
        for name, video in cat.videos.items():
            parts = relative(video.path, cat.root).split("/")
            for i in range(len(parts)):
                suffix = "/".join(parts[i:])
                self.by_suffix[suffix].add(name)
                self.by_suffix[suffix.rsplit(".", 1)[0]].add(name)

    def find(self, key: str) -> str | None:
        key = key.strip().replace("\\", "/").lstrip("./").rstrip("/")
        names = self.by_suffix.get(key) or set()
        return next(iter(names)) if len(names) == 1 else None


def load_ah(root: Path) -> Catalogue:
    """Catalogue of a BAH folder; bad inputs are recorded in `Catalogue.errors`."""
    cat = Catalogue(root=root, layout="ah")
    cat.videos = index_videos(walk_tree(root).videos, root, cat.found)
    base = root / "videos" if (root / "videos").is_dir() else root
    subject_of: dict[str, str] = {}  # video name -> subject name (its path below `base`)
    for name, video in cat.videos.items():
        subject_of[name] = relative(video.path, base)
        cat.subjects[subject_of[name]] = Subject(name=subject_of[name], video=name, position="main")
    index = _VideoIndex(cat)
    labelled = _read_annotation(cat, index, subject_of)
    cat.splits["ah"] = {}
    split_files = find_split_files(root)
    for split, path in sorted(split_files.items(), key=lambda item: SPLIT_PARTS.index(item[0])):
        names = _read_split(cat, index, subject_of, path, split)
        if split != "test":
            kept = [n for n in names if n in labelled]
            if len(kept) < len(names):
                cat.found.append(
                    f"ah {split}: {len(names) - len(kept)} videos have no frame annotation; left out"
                )
            names = kept
        cat.splits["ah"][split] = names
        cat.found.append(f"ah {split}: {relative(path, root)} ({len(names)} videos)")
    if not split_files:
        cat.found.append("ah splits: no split files (looked for default-split/{train,val,test}.txt)")
    return cat


def _read_annotation(cat: Catalogue, index: _VideoIndex, subject_of: dict[str, str]) -> set[str]:
    """Labels from the annotation file into `cat.labels`; the subjects that got labels."""
    path = find_annotation_yml(cat.root)
    if path is None:
        cat.found.append("ah annotation: no annotation.yml found")
        return set()
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        lists = read_frame_lists(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        cat.errors.append(CatalogueProblem(path, f"not valid YAML: {getattr(e, 'problem', e)}", line, "ah"))
        return set()
    if not lists:
        cat.errors.append(CatalogueProblem(path, "no video with a frame_annotation list found", task="ah"))
        return set()
    done: set[str] = set()
    for frame_list in lists:
        key = frame_list.key
        name = index.find(key) if key else None
        if name is None:
            reason = f"annotation for video '{key}' has no matching video below {cat.root}"
            cat.errors.append(CatalogueProblem(path, reason, frame_list.key_line(text), "ah", key))
            continue
        subject = subject_of[name]
        frames, labels = frame_list.frames, frame_list.labels
        bad = np.flatnonzero((frames < 0) | np.isnan(labels))
        if len(bad) or not len(frames):
            if len(bad):
                where, raw, line = frame_list.describe(text, int(bad[0]))
                what = "no frame number in" if frames[bad[0]] < 0 else f"label {raw!r} (not 0 or 1) of"
                more = f" ({len(bad) - 1} more bad frames)" if len(bad) > 1 else ""
                reason = f"video '{key}': {what} {where}{more}"
            else:
                reason, line = f"video '{key}': empty frame_annotation", frame_list.key_line(text)
            cat.errors.append(CatalogueProblem(path, reason, line, "ah", subject, name))
            continue
        values = np.zeros((int(frames.max()) + 1, 1), dtype=np.float32)  # (N, 1), row k = frame-k
        valid = np.zeros(len(values), dtype=bool)
        values[frames, 0] = labels
        valid[frames] = True
        cat.labels["ah", subject] = Labels("ah", subject, values, valid, path, first_frame=0)
        done.add(subject)
    cat.found.append(f"ah annotation: {relative(path, cat.root)} ({len(done)} videos with frame labels)")
    return done


def _read_split(
    cat: Catalogue, index: _VideoIndex, subject_of: dict[str, str], path: Path, split: str
) -> list[str]:
    """Subjects of one split file, in file order; unknown videos into `cat.errors`."""
    names: dict[str, None] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        first = line.split(",", 1)[0].strip().lstrip("\ufeff")
        if not first or (number == 1 and first.lower() in HEADER_WORDS):
            continue
        name = index.find(first)
        if name is None:
            reason = f"{split} video '{first}' has no matching video below {cat.root}"
            cat.errors.append(CatalogueProblem(path, reason, number, "ah", first))
            continue
        names.setdefault(subject_of[name])
    return list(names)
