"""Progress of long work: bars on a terminal, plain periodic lines elsewhere (CI logs, files).

`progress_display(say)` opens a display: on a terminal a live group of rich bars (description, bar,
done/total with the unit, share, rate, elapsed and time left), otherwise nothing live at all, only a
plain line now and then from each bar that asks for one (every `every_s` seconds or every `every`
advances). Nested drivers share one display: `lwaffect run` opens it, and the extraction, training and
prediction it calls add their bars to it (the display in use is kept in a context variable while it
is open). While bars are live, whatever is written to stderr or stdout (the `say` lines) is printed
above them.

Each driver makes its own bars: `extract` one per video in flight and one overall (frames, with the
videos done in its description), `train` one per epoch (steps) and one overall (epochs), `predict` one
over the frames of every subject, `run` one over its stages.
"""

from __future__ import annotations

import contextvars
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

Say = Callable[[str], None]
_ACTIVE: contextvars.ContextVar[ProgressDisplay | None] = contextvars.ContextVar(
    "lwaffect_progress", default=None
)


def on_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal that can redraw bars (not a pipe, a file or TERM=dumb)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM", "") != "dumb"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Bar:
    """One bar: work done out of a total (None when unknown), its rate and the time left."""

    def __init__(self, display: ProgressDisplay, label: str, total: float | None, unit: str,
                 every_s: float | None, every: int | None, keep: bool):  # fmt: skip
        self.display, self.label, self.total, self.unit = display, label, total, unit
        self.every_s, self.every, self.keep = every_s, every, keep
        self.done, self.calls, self.note = 0.0, 0, ""
        self.started = self.last_line = time.perf_counter()
        self.task_id: Any = None
        if display.live is not None:
            self.task_id = display.live.add_task(label, total=total, unit=unit, note="")

    @property
    def rate(self) -> float:
        """Units per second since the bar was made."""
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def left_s(self) -> float | None:
        """Seconds left at the rate so far; None when the total or the rate is unknown."""
        rate = self.rate
        if self.total is None or rate <= 0:
            return None
        return max(self.total - self.done, 0.0) / rate

    def line(self) -> str:
        """The plain progress line: `[label] done/total unit (share), rate unit/s, time left, note`."""
        done = f"{self.done:,.0f}" + (f"/{self.total:,.0f}" if self.total is not None else "")
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        left = self.left_s()
        parts = [f"[{self.label}] {done} {self.unit}{share}", f"{self.rate:.1f} {self.unit}/s"]
        parts += [f"{_duration(left)} left"] if left is not None else []
        parts += [self.note] if self.note else []
        return ", ".join(parts)

    def advance(self, amount: float = 1.0, note: str | None = None, label: str | None = None) -> None:
        """`amount` more units done; `note` (e.g. the loss) and `label` replace the shown ones."""
        self.done += amount
        self.calls += 1
        self.note = self.note if note is None else note
        self.label = self.label if label is None else label
        if self.display.live is not None:
            self.display.live.update(self.task_id, advance=amount, note=self.note, description=self.label)
            return
        now = time.perf_counter()
        due_time = self.every_s is not None and now - self.last_line >= self.every_s
        due_calls = self.every is not None and self.calls % self.every == 0
        if due_time or due_calls:
            self.last_line = now
            self.display.say(self.line())

    def set_total(self, total: float | None) -> None:
        self.total = total
        if self.display.live is not None:
            self.display.live.update(self.task_id, total=total)

    def close(self) -> None:
        """The bar is finished: removed from the display unless it was made with `keep`."""
        if self.display.live is not None and self.task_id is not None:
            if self.keep:
                self.display.live.update(self.task_id, completed=self.done, total=self.total or self.done)
            else:
                self.display.live.remove_task(self.task_id)
            self.task_id = None


class ProgressDisplay:
    """Bars live on a terminal (`bars=True`), plain periodic lines through `say` otherwise."""

    def __init__(self, say: Say, bars: bool | None = None, stream: TextIO | None = None):
        self.say = say
        self.stream = stream or sys.stderr
        self.bars = on_terminal(self.stream) if bars is None else bars
        self.live: Any = None  # the rich Progress while bars are shown
        self.depth = 0
        self._token: contextvars.Token | None = None

    def __enter__(self) -> ProgressDisplay:
        self.depth += 1
        if self.depth == 1:
            self._token = _ACTIVE.set(self)
            if self.bars:
                self.live = _rich_progress(self.stream)
                self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if self.depth == 0:
            if self.live is not None:
                self.live.stop()
                self.live = None
            if self._token is not None:
                _ACTIVE.reset(self._token)
                self._token = None

    def bar(self, label: str, total: float | None, unit: str, every_s: float | None = None,
            every: int | None = None, keep: bool = False) -> Bar:  # fmt: skip
        """A new bar. Without a terminal it prints its line every `every_s` seconds or `every` advances."""
        return Bar(self, label, total, unit, every_s, every, keep)


def _rich_progress(stream: TextIO) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Count(ProgressColumn):
        """done/total unit."""

        def render(self, task: Any) -> Text:
            total = f"/{task.total:,.0f}" if task.total is not None else ""
            return Text(f"{task.completed:,.0f}{total} {task.fields.get('unit', '')}")

    class Rate(ProgressColumn):
        """unit/s over the last seconds."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.1f} {task.fields.get('unit', '')}/s" if speed else "")

    console = Console(file=stream, stderr=stream is sys.stderr)
    return Progress(
        TextColumn("{task.description}"), BarColumn(bar_width=30), Count(), TaskProgressColumn(), Rate(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("left {task.fields[note]}"),
        console=console, refresh_per_second=4,
    )  # fmt: skip


def current_display(say: Say) -> ProgressDisplay:
    """The display open in this context; where none is, one that prints plain lines through `say`."""
    return _ACTIVE.get() or ProgressDisplay(say, bars=False)


@contextmanager
def progress_display(say: Say, bars: bool | None = None) -> Iterator[ProgressDisplay]:
    """The display already open in this context (an outer driver's), or a new one for this block."""
    active = _ACTIVE.get()
    with active if active is not None else ProgressDisplay(say, bars) as display:
        yield display
