"""Finding files below an input folder: video files, small text files and named folders, in one walk.

Shared by every data set adapter. The walk prunes folders that can hold millions of files and no videos
(organiser face crops, annotation folders, hidden folders), so that a data set tree is listed in well
under a second.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.datasets.catalogue import Video

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm"})  # lower case
# folders never entered while looking for videos: organiser face crops and extracted features
SKIPPED_PREFIXES: tuple[str, ...] = ("cropped", ".", "__")


@dataclass
class TreeListing:
    """What one walk of a folder found."""

    videos: list[Path] = field(default_factory=list)  # video files, sorted by path
    texts: list[Path] = field(default_factory=list)  # .txt / .csv / .yml / .yaml files, sorted by path


def is_skipped(name: str) -> bool:
    """True for folder names the walk never enters (face crops, hidden and private folders)."""
    return name.lower().startswith(SKIPPED_PREFIXES)


def walk_tree(
    root: Path, exclude: set[Path] | frozenset[Path] = frozenset(), text_depth: int = 3
) -> TreeListing:
    """Every video below `root` and the text files up to `text_depth` folders deep.

    Folders in `exclude` (resolved paths) and folders `is_skipped` names are not entered.
    """
    listing = TreeListing()
    excluded = {str(p) for p in exclude}
    base_depth = len(root.parts)
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not is_skipped(d) and os.path.join(top, d) not in excluded)
        depth = len(Path(top).parts) - base_depth
        for name in files:
            suffix = os.path.splitext(name)[1].lower()
            if suffix in VIDEO_EXTENSIONS:
                listing.videos.append(Path(top, name))
            elif suffix in (".txt", ".csv", ".yml", ".yaml") and depth < text_depth:
                listing.texts.append(Path(top, name))
    listing.videos.sort()
    listing.texts.sort()
    return listing


def subdirs(folder: Path, depth: int = 1) -> list[Path]:
    """Folders up to `depth` levels below `folder` (skipped names left out), sorted."""
    out: list[Path] = []
    level = [folder]
    for _ in range(depth):
        nxt = []
        for parent in level:
            try:
                entries = sorted(os.scandir(parent), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.is_dir() and not is_skipped(entry.name):
                    nxt.append(Path(entry.path))
        out += nxt
        level = nxt
    return out


def index_videos(paths: list[Path], root: Path, notes: list[str]) -> dict[str, Video]:
    """Videos by name (the file stem); where stems repeat, the path below `root` without extension.

    Notes how many videos each top-level folder holds.
    """
    stems = Counter(p.stem for p in paths)
    below = {p: relative(p, root) for p in paths}
    bare = Counter(below[p].rsplit(".", 1)[0] for p in paths if stems[p.stem] > 1)
    videos: dict[str, Video] = {}
    for path in paths:
        name = path.stem
        if stems[name] > 1:  # x.mp4 beside x.avi keeps its extension
            name = below[path].rsplit(".", 1)[0]
            name = name if bare[name] == 1 else below[path]
        videos[name] = Video(name=name, path=path)
    clashes = sorted(s for s, n in stems.items() if n > 1)
    if clashes:
        notes.append(
            f"video names repeat in different folders ({', '.join(clashes[:5])}"
            f"{', ...' if len(clashes) > 5 else ''}): those are named by their path below the root"
        )
    per_folder = Counter(below[p].split("/", 1)[0] + "/" if "/" in below[p] else "./" for p in paths)
    if paths:
        where = ", ".join(f"{n} in {folder}" for folder, n in sorted(per_folder.items()))
        notes.append(f"videos: {len(paths)} ({where})")
    else:
        notes.append(f"videos: none found (looked for {', '.join(sorted(VIDEO_EXTENSIONS))} below the root)")
    return videos


def relative(path: Path, root: Path) -> str:
    """`path` below `root` as a POSIX string (the path itself when it is not below `root`)."""
    try:
        return PurePosixPath(path.relative_to(root)).as_posix()
    except ValueError:
        return path.as_posix()


def name_key(name: str) -> str:
    """A lenient key for matching names from lists to files: no folder, no video extension, lower case,
    digits-only names without leading zeros."""
    name = name.strip().replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    stem, ext = os.path.splitext(name)
    if ext.lower() in VIDEO_EXTENSIONS:
        name = stem
    name = name.lower()
    return str(int(name)) if name.isdigit() else name


def tokens(name: str) -> list[str]:
    """The alphanumeric words of a file name, e.g. `CVPR_8th_ABAW_VA_test` -> [CVPR, 8th, ABAW, VA, test]."""
    return [t for t in re.split(r"[^A-Za-z0-9]+", name) if t]
