"""`lwaffect bench`: the figures it writes, the process-tree memory sampler, the wait for what a timed command
leaves running, and the efficiency arithmetic."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import psutil
import pytest
from typer.testing import CliRunner

from jobs.bench.e2e import TreeSampler, extract_command, finite, placement
from jobs.bench.faces import FACE_METHODS, method_settings, parse_methods
from jobs.bench.leftovers import Leftovers
from jobs.bench.report import face_goals, face_tables
from jobs.bench.suite import BenchConfig, efficiency
from jobs.cli import app
from jobs.extract.config import FaceSettings
from jobs.extract.runtime import RuntimeConfig

SECTIONS = ("setup", "decode", "faces", "align", "backbone", "cache", "temporal", "extract", "efficiency",
            "naive", "memory", "face_methods", "goals")  # fmt: skip
FIGURES = {
    "decode": ("decord", "pyav"),
    "faces": ("pipeline", "mtcnn_full", "speedup"),
    "backbone": ("fp32_nchw", "fp32_channels_last"),
    "cache": (
        "write_fps",
        "write_mb_s",
        "read_fps",
        "read_mb_s",
        "bytes_per_frame",
        "cosine_median",
        "write_once_cpu_ms",
        "write_twice_cpu_ms",
    ),
    "temporal": ("tam_s1", "tam_s3"),
    "extract": (
        "fps",
        "speedup_vs_naive",
        "speedup_vs_naive_all",
        "fps_with_ray_start",
        "median_iou",
        "found_pct",
        "write_assemble_ms",
        "command",
        "speedup_vs_naive_command",
        "command_first",
        "speedup_vs_naive_command_first",
    ),
    "face_methods": ("methods", "sets", "videos"),
    "efficiency": ("value", "ideal_fps", "definition"),
    "naive": ("fps", "frames"),
    "memory": ("short", "long", "rss_ratio", "pss_ratio"),
    "goals": ("faces_vs_mtcnn_full", "extract_vs_naive", "memory_ratio", "memory_peak_mb"),
}


def numbers(tree, path=""):
    """(path, value) of every number in a nested dict."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from numbers(value, f"{path}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield f"{path}{key}", value


def test_tree_sampler_sums_descendants():
    # the root is a shell; the memory is held by its child, which must be counted
    child = f"{sys.executable} -c 'import time; x = bytearray(120_000_000); x[::4096] = b\"1\" * len(x[::4096]); time.sleep(1.5)'"
    proc = subprocess.Popen(["/bin/sh", "-c", f"{child}; true"])
    sampler = TreeSampler(proc.pid, interval=0.05)
    sampler.start()
    proc.wait()
    sampler.stop()
    assert sampler.peak_processes >= 2
    assert sampler.peak_rss >= 120e6
    assert sampler.peak_pss >= 100e6


def test_finite_keeps_what_json_can_hold():
    figures = {
        "a": 1.0,
        "b": math.nan,
        "runs": [20.1, 19.4],
        "bad": [1.0, math.inf],
        "n": {"c": -math.inf, "d": "x"},
    }
    assert finite(figures) == {"a": 1.0, "runs": [20.1, 19.4], "n": {"d": "x"}}


def test_efficiency_cpu_is_e2e_over_stages_back_to_back():
    figures = {
        "decode": {"pipeline_backend": "decord", "decord": {"fps": 100.0}},
        "faces": {"frames": 100, "face_frames": 50, "pipeline": {"fps": 50.0}},
        "align": {"fps": 200.0},
        "backbone": {"pipeline": "bf16_channels_last", "bf16_channels_last": {"fps": 100.0}},
        "cache": {"write_fps": 400.0},
        "extract": {"fps": 10.0, "steady_fps": 20.0},
    }
    # seconds per frame: 1/100 + 1/50 + 1/200 + 0.5/100 + 1/400 = 0.0425
    cpu = efficiency(figures, "cpu")
    assert cpu["ideal_fps"] == pytest.approx(1 / 0.0425)
    assert cpu["value"] == pytest.approx(10.0 * 0.0425)
    assert cpu["steady"] == pytest.approx(20.0 * 0.0425)
    assert cpu["slowest_stage"] == "faces"
    gpu = efficiency(figures, "cuda")
    assert gpu["value"] == pytest.approx(10.0 / 50.0)
    assert cpu["definition"].startswith("cpu") and gpu["definition"].startswith("gpu")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_tiny_writes_positive_figures(tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--videos", "1", "--resolution", "360p", "--seconds", "2", "--repeats", "2",
            "--memory-seconds", "2", "--naive-frames", "3", "--hard-variants", "crossing", "--hard-seconds", "1",
            "--output", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads((out / "bench.json").read_text())
    for section in SECTIONS:
        assert section in figures, section
    for section, keys in FIGURES.items():
        for key in keys:
            assert key in figures[section], f"{section}.{key}"
    found = dict(numbers(figures))
    assert len(found) > 40
    counts = ("wrong_boxes", "switches", "no_face_frames")  # may well be 0 (and so may their goals)
    # the steady rate is a difference of two timed runs of 1 and 10 s of video: on a loaded machine the
    # short run can take as long as the long one, and the bench then reports 0 (not measurable)
    noisy = ("memory.marginal_fps",)
    bad = {
        k: v for k, v in found.items()
        if not (math.isfinite(v) and (v > 0 or any(c in k for c in counts) or (k in noisy and v == 0)))
    }  # fmt: skip
    assert not bad, bad
    assert figures["setup"]["frames"] == 60 and figures["setup"]["width"] == 640
    # the real extract job found the synthetic face where it is
    assert figures["extract"]["found_pct"] > 50 and figures["extract"]["median_iou"] > 0.5
    assert figures["cache"]["cosine_median"] > 0.99  # cached float16 maps match float32 ones
    assert figures["memory"]["long"]["frames"] == 10 * figures["memory"]["short"]["frames"]
    table = (out / "bench.md").read_text()
    assert "| stage | variant | frames/s | other figures |" in table
    assert "| extract |" in table and "| naive |" in table and "| memory |" in table
    assert "| faces | MTCNN every full-res frame |" in result.output
    # the face stage on both sets, scored per subject: the crossing video's two people are both found
    today = figures["face_methods"]["methods"]["today"]["sets"]
    assert set(today) == {"default", "hard"} and today["default"]["found_pct"] > 50
    crossing = figures["face_methods"]["videos"]["today"]["hard-crossing-1280x720"]
    assert crossing["subjects"] == 2 and crossing["frames"] == 60 and crossing["found_pct"] > 50
    assert "| today | hard | 1 |" in table and "| hard-crossing-1280x720 | hard | today |" in table
    assert "hard_found_today" in figures["goals"] and figures["extract"]["write_assemble_ms"] > 0
    refine = figures["face_methods"]["methods"]["refine"]["sets"]  # beside today's, by default
    assert refine["hard"]["found_pct"] > 50 and "hard_ms_ratio_refine" in figures["goals"]
    assert figures["face_methods"]["timing"]["clock"].startswith("thread CPU time")
    # every start-up cost counts: with Ray's start the rate is lower than with Ray already up
    assert figures["extract"]["speedup_vs_naive_all"] < figures["extract"]["speedup_vs_naive"]
    # the command as a user runs it, timed from its launch to its exit
    command = figures["extract"]["command"]
    assert command["frames"] == 60 and command["seconds"] > 0 and command["fps"] > 0
    # timed `repeats` times: the slower of two is reported, and both are listed
    assert len(command["runs_s"]) == 2 and command["seconds"] == max(command["runs_s"])
    assert "(median of 2 runs: " in table
    # the naive loop too: two passes, the slower one reported, both listed
    naive = figures["naive"]
    assert len(naive["runs_fps"]) == 2 and naive["fps"] == min(naive["runs_fps"])
    assert "(median of 2 passes: " in table
    first = figures["extract"]["command_first"]  # the same before the backbone's spec was remembered
    assert (
        first["frames"] == 60
        and first["seconds"] > 0
        and "| extract | the command, a machine's first run |" in table
    )
    assert first["specs_remembered"] == 1  # the first run remembered the spec, which the second one read
    # each run against the mean of the naive passes timed just before and after it: the goal is the median
    # of those ratios (of two, the lower), and the runs over the block of passes are reported beside it
    passes = command["naive_passes_fps"]  # before the first run, then after each of the three runs
    assert len(passes) == 4 and len(command["paired_speedups"]) == 2
    assert (
        len(command["naive_settling_fps"]) == 4
    )  # the first pass after the job and after each run, left out
    paired = [
        60 / s / ((a + b) / 2) for s, a, b in zip(command["runs_s"], passes[1:-1], passes[2:], strict=True)
    ]
    assert command["paired_speedups"] == pytest.approx(paired)
    assert figures["extract"]["speedup_vs_naive_command"] == pytest.approx(min(paired))
    assert figures["extract"]["speedup_vs_naive_command_block"] == pytest.approx(
        command["fps"] / naive["fps"]
    )
    first_ratio = first["fps"] / ((passes[0] + passes[1]) / 2)
    assert figures["extract"]["speedup_vs_naive_command_first"] == pytest.approx(first_ratio)
    assert "each run over the naive passes just before and after it: " in table
    assert (
        figures["extract"]["speedup_vs_naive_command"] > 0
        and "| extract | the command, launch to exit |" in table
    )
    for goal in (
        "extract_command_first_vs_naive",
        "extract_command_vs_naive",
        "extract_vs_naive",
        "extract_vs_naive_ray_up",
        "extract_vs_naive_steady",
        "write_once_vs_twice",
    ):
        assert goal in figures["goals"], goal
    assert "| cache | write once vs part files + shard |" in table


def test_face_methods_are_named_changes_of_the_face_settings():
    assert FACE_METHODS["today"] == {"follow": "detect"} and parse_methods("today") == ("today",)
    assert method_settings(FaceSettings(), FACE_METHODS["refine"]) == FaceSettings()  # the default
    with pytest.raises(ValueError, match="unknown face method nope"):
        parse_methods("today,nope")
    changed = method_settings(FaceSettings(), {"every": 2, "thresholds": [0.5, 0.6, 0.6]})
    assert changed.face.every == 2 and changed.face.thresholds == (0.5, 0.6, 0.6)
    assert changed.align == FaceSettings().align and method_settings(FaceSettings(), {}) == FaceSettings()
    with pytest.raises(ValueError, match="FaceConfig has no field colour"):
        method_settings(FaceSettings(), {"colour": 1})


def _set(found, worst, iou, wrong, switches, ms):
    return {"videos": 2.0, "face_frames": 100.0, "found_pct": found, "worst_video_found_pct": worst,
            "worst_video": "hard-dark", "median_iou": iou, "wrong_boxes": wrong, "no_face_frames": 10.0,
            "switches": switches, "fps": 1000 / ms, "ms_per_frame": ms}  # fmt: skip


def test_face_goals_and_tables_put_each_method_beside_todays():
    fm = {
        "methods": {
            "today": {"sets": {"default": _set(99, 98, 0.9, 0, 0, 5.0), "hard": _set(70, 20, 0.7, 3, 2, 10.0)}},
            "new": {"sets": {"default": _set(99, 99, 0.9, 0, 0, 4.0), "hard": _set(96, 90, 0.85, 0, 0, 4.0)}},
        },
        "videos": {m: {"hard-dark": {"set": "hard", "variant": "dark", "subjects": 1.0, "frames": 90.0,
                                     "found_pct": 50.0, "median_iou": 0.8, "wrong_boxes": 1.0,
                                     "no_face_frames": 9.0, "switches": 0.0, "ms_per_frame": 3.0}}
                   for m in ("today", "new")},
        "timing": {"clock": "wall clock", "turns": 1.0},
    }  # fmt: skip
    goals = face_goals(fm)
    assert goals["hard_found_today"]["met"] == "no" and goals["hard_found_new"]["met"] == "yes"
    assert goals["hard_worst_video_today"]["value"] == 20 and goals["hard_switches_today"]["met"] == "no"
    assert (
        goals["hard_ms_ratio_new"]["value"] == pytest.approx(0.4)
        and goals["hard_ms_ratio_new"]["met"] == "yes"
    )
    assert goals["default_ms_ratio_new"]["value"] == pytest.approx(0.8)
    assert "hard_ms_ratio_today" not in goals and goals["hard_wrong_boxes_new"]["sign"] == "<="
    text = "\n".join(face_tables(fm))
    assert "| today | hard | 2 | 100 | 70.0 | 20.0 (hard-dark) | 0.700 | 3/10 | 2 |" in text
    assert text.count("| hard-dark | hard |") == 2  # one row per method
    assert "ms: detect + track per decoded frame in this process, wall clock," in text  # as timed


def test_turns_of_a_face_method_keep_each_videos_least_time():
    from jobs.bench.faces import least
    from jobs.bench.stages import FacePass, VideoFaces

    def passed(*times):
        videos = [VideoFaces(f"v{i}", "default", 10.0, t, t / 2, {}) for i, t in enumerate(times)]
        return FacePass(frames=20.0, face_seconds=sum(times), align_seconds=sum(times) / 2, videos=videos)

    kept = least(None, passed(3.0, 1.0))
    kept = least(
        kept, passed(2.0, 4.0)
    )  # the first video was disturbed in the first turn, the second in this
    assert [v.detect_s for v in kept.videos] == [2.0, 1.0]
    assert kept.face_seconds == 3.0 and kept.align_seconds == 1.5


def orphan(seconds: float) -> tuple[subprocess.Popen, int]:
    """A shell that starts a `sleep` in the background and exits at once: the sleep is orphaned."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", f"sleep {seconds} >/dev/null & echo $!"], stdout=subprocess.PIPE, text=True
    )
    out, _ = proc.communicate(timeout=10)
    return proc, int(out)


def test_the_processes_a_command_leaves_running_are_waited_for_or_killed():
    with Leftovers() as left:
        proc, sleeper = orphan(1.0)
        assert proc.returncode == 0 and psutil.pid_exists(sleeper)  # the command is done, its sleep is not
        assert psutil.Process(sleeper).ppid() == os.getpid()  # came back here, not to init
        waited = left.wait()
    assert 0.5 < waited < 10 and not psutil.pid_exists(sleeper)
    with Leftovers() as left:
        _, sleeper = orphan(60)
        waited = left.wait(timeout=0.5)
    assert 0.4 < waited < 10 and not psutil.pid_exists(sleeper)  # killed after the timeout
    _, sleeper = orphan(60)  # outside: not this process's to wait for
    assert psutil.Process(sleeper).ppid() != os.getpid()
    psutil.Process(sleeper).kill()


def test_the_bench_places_the_face_detector_where_the_extraction_does(tmp_path):
    # the face stage is timed where the face workers run their detector: the CPU unless asked for the GPU
    assert BenchConfig(device="cuda").face_device == "cpu"
    assert BenchConfig(device="cuda", runtime=RuntimeConfig(face_device="cuda")).face_device == "cuda"
    with pytest.raises(ValueError, match="only where the backbone does"):
        BenchConfig(device="cpu", runtime=RuntimeConfig(face_device="cuda"))
    # and the timed commands are placed the same way, with options the extract command takes
    assert placement(None) == () and placement("cpu") == ("--device", "cpu")
    flags = placement("cuda", "cuda")
    assert flags == ("--device", "cuda", "--face-device", "cuda")
    command = extract_command(tmp_path / "videos", tmp_path / "cache", flags)
    assert command[-4:] == list(flags) and command[1:4] == ["-m", "jobs", "extract"]
    usage = CliRunner().invoke(app, ["extract", "--help"], env={"COLUMNS": "200"}).output
    assert "--device" in usage and "--face-device" in usage
    refused = CliRunner().invoke(app, ["bench", "--face-device", "cuda", "--output", str(tmp_path / "b")])
    assert refused.exit_code == 1 and "only where the backbone does" in refused.output
