"""The Aff-Wild2 adapter: videos, per-frame VA / AU / EXPR annotations, release lists and example files.

Names and folders differ between challenge editions and downloads, so everything is found by pattern and
reported in `Catalogue.found`:
- the annotation folder: any folder up to two levels below the root whose name contains "annotation"
  (`8th_ABAW_Annotations`, `Annotations`, ...) and that holds task folders;
- task folders `VA_*`, `AU_*`, `EXPR_*` (`EXPR_Recognition_Challenge`, `EXPR_Classification_Challenge`),
  with set folders whose names contain "train" / "val" (`Train_Set`, `Validation_Set`);
- videos (.mp4 .avi .mkv .mov .webm) anywhere below the root (`batch1/`, `batch2/`, `new_vids/`, `videos/`),
  face-crop (`cropped*`) and annotation folders not entered;
- release lists `*Valence*Arousal*test*release*.txt`, `*Action*Unit*test*release*.txt`,
  `*Expression*test*release*.txt` (the test split, in their order) and organiser example submissions
  (file names with the words VA / AU / EXPR, test and example or sample).
Subject `<video>_left` / `<video>_right` is the left / right person of video `<video>`; any other subject
is the main face of the video of the same name. Videos with no annotation and in no release list become
subjects of no split.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from model.tasks import AFFWILD2_TASKS, TASKS
from pipeline.datasets.annotations import AnnotationError, parse_annotations
from pipeline.datasets.catalogue import Catalogue, CatalogueProblem, Labels, Subject, Video
from pipeline.datasets.files import VIDEO_EXTENSIONS, index_videos, relative, subdirs, tokens, walk_tree

TASK_FOLDERS: dict[str, re.Pattern[str]] = {
    "va": re.compile(r"^(va[_\- ]|valence)", re.IGNORECASE),
    "au": re.compile(r"^(au[_\- ]|action)", re.IGNORECASE),
    "expr": re.compile(r"^(expr|expression)", re.IGNORECASE),
}
RELEASE_PATTERNS: dict[str, str] = {
    "va": "*valence*arousal*test*release*.txt",
    "au": "*action*unit*test*release*.txt",
    "expr": "*expression*test*release*.txt",
}
EXAMPLE_WORDS: dict[str, str] = {"va": "VA", "au": "AU", "expr": "EXPR"}
SIDE = re.compile(r"^(?P<video>.+)_(?P<side>left|right)$")


def split_of_folder(name: str) -> str | None:
    """`Train_Set` -> train, `Validation_Set` -> validation; None for other folder names."""
    low = name.lower()
    if "train" in low:
        return "train"
    if low.startswith("val") or "valid" in low:
        return "validation"
    return None


def find_annotation_folder(root: Path) -> tuple[Path | None, dict[str, Path]]:
    """The annotation folder below `root` and its task folders (task -> folder); (None, {}) if none."""
    best: tuple[Path | None, dict[str, Path]] = (None, {})
    for folder in subdirs(root, depth=2):
        if "annotation" not in folder.name.lower():
            continue
        found: dict[str, Path] = {}
        for candidate in [folder, *subdirs(folder, depth=2)]:
            for task, pattern in TASK_FOLDERS.items():
                if task not in found and pattern.search(candidate.name):
                    found[task] = candidate
        if len(found) > len(best[1]):
            best = (folder, found)
    return best


def is_release_list(name: str, task: str) -> bool:
    """True when file name `name` looks like the test release list of `task`."""
    return fnmatch.fnmatch(name.lower(), RELEASE_PATTERNS[task])


def is_example_submission(name: str, task: str) -> bool:
    """True when file name `name` looks like the organiser example submission of `task`."""
    words = tokens(os.path.splitext(name)[0])
    lower = {w.lower() for w in words}
    return EXAMPLE_WORDS[task] in words and "test" in lower and bool(lower & {"example", "sample"})


def looks_like_affwild2(root: Path) -> bool:
    """True when `root` holds an annotation folder with task folders or a release list (shallow look)."""
    if find_annotation_folder(root)[1]:
        return True
    for folder in [root, *subdirs(root, depth=1)]:
        for name in os.listdir(folder):
            if any(is_release_list(name, task) for task in AFFWILD2_TASKS):
                return True
    return False


def find_cropped(root: Path) -> Path | None:
    """The organiser face-crop folder (`cropped_aligned`, `cropped_aligned_new_50_vids`, ...), if any."""
    for folder in [root, *subdirs(root, depth=1)]:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_dir() and entry.name.lower().startswith("cropped"):
                return Path(entry.path)
    return None


def resolve_subject(name: str, videos: dict[str, Video]) -> Subject | None:
    """The subject called `name`: `<video>_left/right` of an existing video, or the main face of `name`."""
    side = SIDE.match(name)
    if side and side["video"] in videos:
        return Subject(name=name, video=side["video"], position=side["side"])  # type: ignore[arg-type]
    if name in videos:
        return Subject(name=name, video=name, position="main")
    return None


def read_release_list(path: Path) -> list[tuple[int, str]]:
    """(line number, subject name) of every non-empty line; a video extension or trailing `/` is dropped."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        name = line.strip().lstrip("\ufeff").rstrip("/")
        stem, ext = os.path.splitext(name)
        if ext.lower() in VIDEO_EXTENSIONS or ext.lower() == ".txt":
            name = stem
        if name:
            out.append((number, name))
    return out


def _missing_video(name: str, root: Path) -> str:
    side = SIDE.match(name)
    looked = f"'{side['video']}' or '{name}'" if side else f"'{name}'"
    return f"annotation for subject '{name}' has no matching video (no video {looked} below {root})"


def _pick(candidates: list[Path], what: str, root: Path, notes: list[str]) -> Path | None:
    if not candidates:
        return None
    candidates = sorted(candidates, key=lambda p: (len(p.parts), str(p)))
    if len(candidates) > 1:
        others = ", ".join(relative(p, root) for p in candidates[1:])
        notes.append(f"{what}: several files match; using {relative(candidates[0], root)}, not {others}")
    return candidates[0]


def load_affwild2(root: Path, workers: int | None = None) -> Catalogue:
    """Catalogue of an Aff-Wild2 folder; bad inputs are recorded in `Catalogue.errors`."""
    cat = Catalogue(root=root, layout="affwild2")
    ann_dir, task_dirs = find_annotation_folder(root)
    if ann_dir is None:
        cat.found.append("annotations: no folder named *annotation* with task folders (VA_*, AU_*, EXPR_*)")
    else:
        cat.found.append(f"annotations: {relative(ann_dir, root)}/")
    listing = walk_tree(root, exclude={ann_dir} if ann_dir else frozenset())
    cat.videos = index_videos(listing.videos, root, cat.found)
    cat.cropped_aligned = find_cropped(root)
    if cat.cropped_aligned is not None:
        count = sum(1 for e in os.scandir(cat.cropped_aligned) if e.is_dir())
        where = relative(cat.cropped_aligned, root)
        cat.found.append(f"face crops: {where}/ ({count} folders; organiser crops, not used)")
    files = _annotation_files(cat, ann_dir, task_dirs)
    results = parse_annotations([(path, TASKS[task]) for task, _, _, path in files], workers)
    for (task, split, subject, path), result in zip(files, results, strict=True):
        if isinstance(result, AnnotationError):
            problem = CatalogueProblem(path, result.reason, result.line, task, subject.name, subject.video)
            cat.errors.append(problem)
            continue
        cat.labels[task, subject.name] = Labels(task, subject.name, result.values, result.valid, path, 1)
        cat.splits[task][split].append(subject.name)
    texts = listing.texts + (sorted(ann_dir.glob("*.txt")) if ann_dir else [])
    for task in AFFWILD2_TASKS:
        _read_lists(cat, task, texts)
    claimed = {s.video for s in cat.subjects.values()}
    extra = [name for name in cat.videos if name not in claimed]
    for name in extra:
        cat.subjects[name] = Subject(name=name, video=name, position="main")
    if extra:
        shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
        cat.found.append(
            f"videos with no annotation and in no test list: {len(extra)} ({shown}); in no split"
        )
    return cat


def _annotation_files(
    cat: Catalogue, ann_dir: Path | None, task_dirs: dict[str, Path]
) -> list[tuple[str, str, Subject, Path]]:
    """(task, split, subject, file) of every annotation file whose subject has a video, in folder order.

    Files naming no video, or a subject already annotated in another set of the task, go to `cat.errors`.
    """
    root, out = cat.root, []
    seen: dict[tuple[str, str], Path] = {}
    for task in AFFWILD2_TASKS:
        tdir = task_dirs.get(task)
        if tdir is None:
            if ann_dir is not None:
                cat.found.append(f"{task}: no task folder in {relative(ann_dir, root)}/")
            continue
        counts = []
        for sdir in subdirs(tdir):
            split = split_of_folder(sdir.name)
            if split is None:
                cat.found.append(f"{task}: {relative(sdir, root)}/ is not a train or validation set; skipped")
                continue
            paths = sorted(sdir.glob("*.txt"))
            counts.append(f"{split} {len(paths)} files ({sdir.name}/)")
            cat.splits.setdefault(task, {}).setdefault(split, [])
            for path in paths:
                name = path.stem
                if (task, name) in seen:
                    reason = f"subject '{name}' is also annotated in {seen[task, name]}"
                    cat.errors.append(CatalogueProblem(path, reason, task=task, subject=name))
                    continue
                seen[task, name] = path
                subject = resolve_subject(name, cat.videos)
                if subject is None:
                    cat.errors.append(
                        CatalogueProblem(path, _missing_video(name, root), task=task, subject=name)
                    )
                    continue
                cat.subjects.setdefault(name, subject)
                out.append((task, split, subject, path))
        sets = ", ".join(counts) or "no Train_Set / Validation_Set"
        cat.found.append(f"{task}: {relative(tdir, root)}/: {sets}")
    return out


def _read_lists(cat: Catalogue, task: str, texts: list[Path]) -> None:
    """The test split of `task` from its release list, and its organiser example submission."""
    root = cat.root
    release = _pick([p for p in texts if is_release_list(p.name, task)], f"{task} test list", root, cat.found)
    if release is None:
        cat.found.append(f"{task} test list: not found (pattern {RELEASE_PATTERNS[task]})")
    else:
        _read_test_split(cat, task, release)
    examples = [p for p in texts if is_example_submission(p.name, task)]
    example = _pick(examples, f"{task} example", root, cat.found)
    if example is None:
        words = f"{EXAMPLE_WORDS[task]}, test, example"
        cat.found.append(f"{task} example submission: not found (a .txt named with the words {words})")
    else:
        cat.example_submissions[task] = example
        cat.found.append(f"{task} example submission: {relative(example, root)}")


def _read_test_split(cat: Catalogue, task: str, path: Path) -> None:
    entries = read_release_list(path)
    names: list[str] = []
    taken: set[str] = set()
    repeated = 0
    for number, name in entries:
        if name in taken:
            repeated += 1
            continue
        taken.add(name)
        subject = resolve_subject(name, cat.videos)
        if subject is None:
            reason = f"test subject '{name}' has no matching video below {cat.root}"
            cat.errors.append(CatalogueProblem(path, reason, number, task, name))
            continue
        cat.subjects.setdefault(name, subject)
        names.append(name)
    cat.splits.setdefault(task, {})["test"] = names
    extra = f"; {repeated} repeated names ignored" if repeated else ""
    cat.found.append(f"{task} test list: {relative(path, cat.root)} ({len(names)} subjects{extra})")
    if not entries:
        cat.found.append(f"{task} test list {relative(path, cat.root)} is empty")
