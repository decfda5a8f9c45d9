"""Progress output (`jobs.progress`): bars with counts on a terminal (a pseudo-terminal here), plain periodic
lines when the output is a pipe or a file; the same for a real command, `lwaffect predict`."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.progress import ProgressDisplay, current_display, progress_display

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SCRIPT = """
import time
from jobs.progress import progress_display
with progress_display(print) as display:
    bar = display.bar("work", 6, "items", every=2, keep=True)
    for i in range(6):
        time.sleep(0.3)
        bar.advance(1, note=f"loss {i}")
    bar.close()
"""


def environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("NO_COLOR", None)
    return {**env, **extra}


def in_terminal(args: list[str], timeout: float = 300) -> str:
    """What `args` writes to a pseudo-terminal (stdout and stderr), until it exits."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                            env=environment(TERM="xterm", COLUMNS="160"))  # fmt: skip
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=30)
    os.close(master)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def in_pipe(args: list[str], timeout: float = 300) -> str:
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=environment(TERM="xterm"),
                          timeout=timeout, check=True)  # fmt: skip
    return done.stdout + done.stderr


def test_lines_every_n_advances_with_counts_rate_and_time_left():
    lines: list[str] = []
    with ProgressDisplay(lines.append, bars=False) as display:
        bar = display.bar("epoch 1", 5, "steps", every=2)
        for _ in range(5):
            bar.advance(1, note="loss 0.5")
    assert len(lines) == 2
    assert re.fullmatch(r"\[epoch 1\] 2/5 steps \(40%\), [\d.]+ steps/s, \d+:\d\d left, loss 0\.5", lines[0])
    assert lines[1].startswith("[epoch 1] 4/5 steps (80%)")


def test_lines_every_few_seconds_and_nested_drivers_share_one_display():
    lines: list[str] = []
    with progress_display(lines.append, bars=False) as outer:
        with progress_display(print) as inner:  # a driver called by another: the outer display
            assert inner is outer and current_display(print) is outer
        bar = outer.bar("extract 0/2 videos", None, "frames", every_s=0.05)
        bar.advance(10)
        time.sleep(0.06)
        bar.advance(5)
    assert lines == [lines[0]] and lines[0].startswith("[extract 0/2 videos] 15 frames, ")
    assert "left" not in lines[0]  # no total, no time left
    assert current_display(print) is not outer  # closed


def test_bars_with_counts_on_a_terminal_and_plain_lines_in_a_pipe():
    args = [sys.executable, "-c", SCRIPT]
    terminal = in_terminal(args)
    assert "\x1b[" in terminal and "━" in terminal  # redrawn, coloured bars
    text = ANSI.sub("", terminal)
    assert "6/6 items" in text and "100%" in text and "items/s" in text and "loss 5" in text
    assert "[work]" not in text  # no plain lines on a terminal
    piped = in_pipe(args)
    assert "\x1b[" not in piped and "━" not in piped
    assert [line.split(",")[0] for line in piped.splitlines()] == [
        "[work] 2/6 items (33%)", "[work] 4/6 items (67%)", "[work] 6/6 items (100%)",
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_predict_shows_a_bar_on_a_terminal_and_a_line_per_subject_in_a_pipe(
    affwild2_cache, random_checkpoint, tmp_path
):
    from pipeline.cache.read import open_cache

    cache = open_cache(affwild2_cache)
    frames = sum(cache.num_frames(s) for s in cache.subjects())
    args = [sys.executable, "-m", "jobs", "predict", "--task", "va", "--cache", affwild2_cache, "--weights",
            str(random_checkpoint("va")), "--output", str(tmp_path)]  # fmt: skip
    text = ANSI.sub("", in_terminal(args))
    n = len(cache.subjects())
    assert f"predict va {n}/{n}" in text and f"{frames:,}/{frames:,} frames" in text and "frames/s" in text
    assert f"  predict 1/{n} " not in text
    piped = in_pipe(args)
    assert f"  predict 1/{n} " in piped and f"  predict {n}/{n} " in piped and "\x1b[" not in piped
