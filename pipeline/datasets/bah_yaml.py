"""Reading BAH's `annotation.yml`: the frame numbers and 0/1 labels of every annotated video.

The file lists about a million `[<video>/frame-N.jpg, label]` pairs, which PyYAML needs minutes to build
as Python objects. The documented shape (top-level video keys, an indented `frame_annotation:` field,
one `- [<...>/frame-N.jpg, label]` item a line) is therefore read by a regex scan over the whole text, in
about a second. Anything else (nested wrappers, one-line flow lists, `{path: label}` mappings, plain label
lists, a `video:` field naming the video) falls back to PyYAML, read leniently: any mapping with a
`frame_annotation*` key is one video, named by its parent key or a `video` / `path` field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

KEY = re.compile(r"^(?![\s#\-])(?P<key>[^\n]+?):[ \t]*\r?$", re.MULTILINE)
FIELD = re.compile(r"^(?P<indent>[ \t]+)(?![\s#\-])(?P<name>[^:\n]+):(?P<rest>[^\n]*)$", re.MULTILINE)
ENTRY = re.compile(r"frame[-_]?(\d+)\.[A-Za-z]+['\"]?[ \t]*,[ \t]*['\"]?([^\]\s'\"]*)['\"]?[ \t]*\]")
FRAME_NUMBER = re.compile(r"(\d+)\D*$")


@dataclass
class FrameList:
    """The frame annotation of one video as read from the file."""

    key: str | None  # the video as the file names it
    frames: np.ndarray  # (n,) int64 frame numbers; -1 where none could be read
    labels: np.ndarray  # (n,) float32 0 / 1; NaN where the label is not 0 or 1
    entries: list[tuple[str, Any]] | None = None  # (text naming the frame, raw label), PyYAML path
    span: tuple[int, int] | None = None  # offsets of the frame list in the text, scan path

    def describe(self, text: str, i: int) -> tuple[str, Any, int | None]:
        """(text naming entry i, its raw label, its 1-based line) for messages."""
        if self.span is not None:
            match = list(ENTRY.finditer(text, *self.span))[i]
            start = text.rfind("\n", 0, match.start()) + 1
            entry = text[start : text.find("\n", match.end())].strip().lstrip("- ").strip()
            return entry, match[2], text.count("\n", 0, match.start()) + 1
        where, label = self.entries[i] if self.entries else (f"frame {i}", None)
        at = text.find(where)
        return where, label, (text.count("\n", 0, at) + 1 if at >= 0 else None)

    def key_line(self, text: str) -> int | None:
        """1-based line of the video's key, if it can be found."""
        at = text.find(f"{self.key}:") if self.key else -1
        return text.count("\n", 0, at) + 1 if at >= 0 else None


def _label_values(raw: np.ndarray) -> np.ndarray:
    """(n,) str -> (n,) float32: 0 / 1, NaN for anything else."""
    return np.where(raw == "1", 1.0, np.where(raw == "0", 0.0, np.nan)).astype(np.float32)


def _scan(text: str) -> list[FrameList] | None:
    """The documented shape by regex; None where the text has any other shape."""
    keys = list(KEY.finditer(text))
    out: list[FrameList] = []
    for i, key in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(text)
        fields = list(FIELD.finditer(text, key.end(), end))
        if len({f["indent"] for f in fields}) > 1:
            return None  # nested mappings
        for j, field in enumerate(fields):
            if not field["name"].strip().lower().startswith("frame_annot"):
                continue
            if field["rest"].strip():
                return None  # one-line flow list or mapping
            stop = fields[j + 1].start() if j + 1 < len(fields) else end
            found = ENTRY.findall(text, field.end(), stop)
            if text.count("[", field.end(), stop) != len(found) or text.count("]", field.end(), stop) != len(
                found
            ):
                return None  # items of another shape
            raw = np.asarray(found, dtype=str).reshape(-1, 2)  # (n, 2): frame number, label
            frames = raw[:, 0].astype(np.int64)
            name = key["key"].strip().strip("'\"")
            out.append(FrameList(name, frames, _label_values(raw[:, 1]), span=(field.end(), stop)))
    return out or None


def _frame_lists(node: Any, parent: str | None = None) -> Iterator[tuple[str | None, Any]]:
    """(video key, frame annotation) for every mapping that holds a `frame_annotation*` key."""
    if isinstance(node, dict):
        key = next((k for k in node if str(k).lower().startswith("frame_annot")), None)
        if key is not None:
            named = next((node[k] for k in ("video", "video_path", "path", "name") if k in node), None)
            yield (str(named) if named is not None else parent), node[key]
            return
        for k, v in node.items():
            yield from _frame_lists(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from _frame_lists(item, None)


def _entries(annotation: Any) -> Iterator[tuple[int, Any, str]]:
    """(frame number or -1, raw label, text naming the frame) of one video's frame annotation."""
    if isinstance(annotation, dict):
        annotation = list(annotation.items())
    for index, item in enumerate(annotation if isinstance(annotation, list) else []):
        if isinstance(item, (list, tuple)) and len(item) == 2:
            where, label = str(item[0]), item[1]
        elif isinstance(item, dict) and len(item) == 2 and "label" in item:
            where, label = str(next(v for k, v in item.items() if k != "label")), item["label"]
        else:
            yield index, item, f"frame {index}"
            continue
        number = FRAME_NUMBER.search(where.rsplit("/", 1)[-1])
        yield (int(number[1]) if number else -1), label, where


def _as_label(value: Any) -> float:
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):
        return float(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return float(value.strip())
    return float("nan")


def read_frame_lists(text: str) -> list[FrameList]:
    """Every video's frame list in `text`; raises yaml.YAMLError on text that is not YAML."""
    scanned = _scan(text)
    if scanned is not None:
        return scanned
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out = []
    for key, annotation in _frame_lists(data):
        entries = list(_entries(annotation))
        frames = np.asarray([e[0] for e in entries], dtype=np.int64)
        labels = np.asarray([_as_label(e[1]) for e in entries], dtype=np.float32)
        out.append(FrameList(key, frames, labels, [(e[2], e[1]) for e in entries]))
    return out
