"""Parsing and checking Aff-Wild2 frame annotation files (one header line, then one line per frame).

The fast path reads each file with `pyarrow.csv` into float32 columns (files in parallel threads; pyarrow
releases the GIL) and checks every value with numpy. Only a file that fails is read again line by line in
Python, to name the first bad line and the reason. The header must equal the task table's header
(`model.tasks`), field for field (surrounding spaces and a byte-order mark ignored); values must be numbers
in the task's range or its invalid marker, and whole numbers for class and 0/1 labels. A row holding the
invalid marker in any column is masked invalid.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from model.tasks import TaskSpec


@dataclass(frozen=True)
class ParsedLabels:
    """The labels of one annotation file."""

    values: np.ndarray  # (N, K) float32, 0.0 in invalid rows
    valid: np.ndarray  # (N,) bool


class AnnotationError(ValueError):
    """A bad annotation file: `line` (1-based, None for the whole file) and `reason`."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


def _header_fields(line: bytes) -> tuple[str, ...]:
    text = line.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    return tuple(f.strip() for f in text.split(","))


def _integral(spec: TaskSpec) -> bool:
    return spec.kind in ("multiclass", "multilabel", "binary")


def _describe_range(spec: TaskSpec) -> str:
    lo, hi = spec.value_range
    kind = "a whole number in" if _integral(spec) else "a number in"
    marker = f" or the invalid marker {spec.invalid:g}" if spec.invalid is not None else ""
    return f"{kind} [{lo:g}, {hi:g}]{marker}"


def _bad_values(values: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """(N, K) bool: values that are neither in range nor the invalid marker."""
    lo, hi = spec.value_range
    ok = (values >= lo) & (values <= hi)
    if _integral(spec):
        ok &= values == np.round(values)
    if spec.invalid is not None:
        ok |= values == spec.invalid
    return ~ok  # NaN fails every comparison: bad


def _check_values(values: np.ndarray, spec: TaskSpec) -> ParsedLabels:
    """Raise AnnotationError at the first bad value; mask invalid rows."""
    bad = _bad_values(values, spec)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        row, col = int(rows[0]), int(np.flatnonzero(bad[rows[0]])[0])
        value = values[row, col]
        more = f" ({len(rows) - 1} more bad lines)" if len(rows) > 1 else ""
        column = spec.label_columns[col]
        raise AnnotationError(
            f"value {value:g} in column {column} is not {_describe_range(spec)}{more}", row + 2
        )
    if spec.invalid is not None:
        valid = ~(values == spec.invalid).any(axis=1)
    else:
        valid = np.ones(len(values), dtype=bool)
    values[~valid] = 0.0
    return ParsedLabels(values=values, valid=valid)


def _is_number(text: str) -> bool:
    """True for what pyarrow reads as a float (Python's float() also takes `1_000`, pyarrow does not)."""
    try:
        float(text)
    except ValueError:
        return False
    return "_" not in text


def _diagnose(body: bytes, spec: TaskSpec) -> AnnotationError | None:
    """The first bad line of a body that pyarrow refused, found line by line."""
    k = len(spec.label_columns)
    bad_lines: list[tuple[int, str]] = []
    for i, raw in enumerate(body.removesuffix(b"\n").split(b"\n")):
        line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
        number = i + 2
        fields = line.split(",")
        if not line.strip():
            bad_lines.append((number, "empty line"))
        elif len(fields) != k:
            bad_lines.append(
                (number, f"{len(fields)} columns, expected {k} ({','.join(spec.label_columns)})")
            )
        else:
            for field, column in zip(fields, spec.label_columns, strict=True):
                if not _is_number(field):
                    bad_lines.append((number, f"value {field.strip()!r} in column {column} is not a number"))
                    break
    if not bad_lines:
        return None
    number, reason = bad_lines[0]
    more = f" ({len(bad_lines) - 1} more bad lines)" if len(bad_lines) > 1 else ""
    return AnnotationError(reason + more, number)


def parse_annotation(path: Path, spec: TaskSpec) -> ParsedLabels:
    """Labels of one annotation file for task `spec`; raises AnnotationError naming line and reason."""
    data = path.read_bytes()
    if not data.strip():
        raise AnnotationError("empty annotation file (no header, no frame lines)")
    end = data.find(b"\n")
    head, body = (data, b"") if end < 0 else (data[:end], data[end + 1 :])
    found = _header_fields(head)
    if found != spec.header:
        raise AnnotationError(
            f"header {','.join(found)!r} is not the {spec.name} header {','.join(spec.header)!r}", 1
        )
    body = body.rstrip(b"\r\n\t ")  # trailing blank lines are no frames
    if not body:
        raise AnnotationError("no frame lines after the header (empty annotation)", 2)
    table = _read_table(body + b"\n", spec)
    k = len(spec.label_columns)
    values = np.empty((table.num_rows, k), dtype=np.float32)  # (N, K)
    for j, column in enumerate(table.columns):
        if column.null_count:  # empty fields or empty lines
            raise _diagnose(body, spec) or AnnotationError(f"empty value in column {spec.label_columns[j]}")
        start = 0
        for chunk in column.chunks:
            values[start : start + len(chunk), j] = _float32s(chunk)
            start += len(chunk)
    return _check_values(values, spec)


def _float32s(chunk: pa.Array) -> np.ndarray:
    """(n,) float32 view of a float32 array without nulls (its data buffer; `to_numpy` would import pandas)."""
    return np.frombuffer(chunk.buffers()[1], dtype=np.float32, count=len(chunk), offset=chunk.offset * 4)


def _read_table(body: bytes, spec: TaskSpec) -> pa.Table:
    """The frame lines as K float32 columns; AnnotationError naming the first bad line where they are not."""
    k = len(spec.label_columns)
    try:
        table = pacsv.read_csv(
            pa.py_buffer(body),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True, use_threads=False),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{j}": pa.float32() for j in range(k)},
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as e:
        raise _diagnose(body, spec) or AnnotationError(
            f"cannot be read as {k} numeric columns: {e}"
        ) from None
    if table.num_columns != k:
        raise _diagnose(body, spec) or AnnotationError(f"{table.num_columns} columns, expected {k}", 2)
    return table


def parse_annotations(
    jobs: Sequence[tuple[Path, TaskSpec]], workers: int | None = None
) -> list[ParsedLabels | AnnotationError]:
    """Parse many files in parallel threads; each result is the labels or the error of that file."""

    def one(job: tuple[Path, TaskSpec]) -> ParsedLabels | AnnotationError:
        try:
            return parse_annotation(*job)
        except AnnotationError as e:
            return e
        except (OSError, UnicodeError) as e:
            return AnnotationError(f"cannot be read: {e}")

    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(jobs) < 4:
        return [one(job) for job in jobs]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, jobs))
