"""The benchmark's goals and its Markdown table, from the figures `jobs.bench.suite.run_bench` measured."""

from __future__ import annotations

from typing import Any

FACE_SPEEDUP_GOAL = 5.0  # face stage vs MTCNN on every full-resolution frame
HARD_FOUND_GOAL = 95.0  # % of the hard set's true face frames found (same subject, IoU >= 0.5)
HARD_VIDEO_GOAL = 85.0  # % found in the hard set's worst video
HARD_IOU_GOAL = 0.8  # median IoU on the hard set
HARD_MS_RATIO_GOAL = 0.5  # face stage worker ms per frame of a new method / today's, hard set
DEFAULT_MS_RATIO_GOAL = 1.0  # the same on the default set
E2E_SPEEDUP_GOAL = 6.0  # extract, every start-up cost included (Ray too), vs the naive per-frame loop
RAY_UP_SPEEDUP_GOAL = 8.0  # extract with Ray already running vs the naive loop
STEADY_SPEEDUP_GOAL = 12.0  # extract once running vs the naive loop
WRITE_RATIO_GOAL = 0.5  # CPU per frame of writing each map once / of the two writes it replaced
MEMORY_RATIO_GOAL = 1.2  # peak memory of a 10x longer video / the short one
MEMORY_LIMIT_MB = 4000.0  # peak memory of extraction


def _goal(value: float, goal: float, higher: bool, what: str) -> dict[str, Any]:
    met = value >= goal if higher else value <= goal
    return {"value": value, "goal": goal, "met": "yes" if met else "no", "what": what,
            "sign": ">=" if higher else "<="}  # fmt: skip


def face_goals(face_methods: dict[str, Any]) -> dict[str, Any]:
    """The face stage's goals of each method: on the hard set, found share (pooled and worst video), median
    IoU, no box on a no-face frame, no identity switch; beside today's method, worker ms per frame on both
    sets and the default set's found share."""
    out: dict[str, Any] = {}
    methods = face_methods.get("methods", {})
    today = methods.get("today", {}).get("sets", {})
    for method, m in methods.items():
        hard = m["sets"].get("hard")
        if hard and "found_pct" in hard:
            out[f"hard_found_{method}"] = _goal(hard["found_pct"], HARD_FOUND_GOAL, True,
                                                f"{method}: hard set, % of true face frames found")  # fmt: skip
            out[f"hard_worst_video_{method}"] = _goal(
                hard["worst_video_found_pct"], HARD_VIDEO_GOAL, True,
                f"{method}: hard set, % found in the worst video ({hard['worst_video']})",
            )  # fmt: skip
            out[f"hard_iou_{method}"] = _goal(hard["median_iou"], HARD_IOU_GOAL, True,
                                              f"{method}: hard set, median IoU")  # fmt: skip
            out[f"hard_wrong_boxes_{method}"] = _goal(hard["wrong_boxes"], 0, False,
                                                      f"{method}: hard set, boxes on frames without a face")  # fmt: skip
            out[f"hard_switches_{method}"] = _goal(hard["switches"], 0, False,
                                                   f"{method}: hard set, identity switches")  # fmt: skip
        if method == "today" or not today:
            continue
        for name, limit in (("hard", HARD_MS_RATIO_GOAL), ("default", DEFAULT_MS_RATIO_GOAL)):
            if name in m["sets"] and name in today:
                ratio = m["sets"][name]["ms_per_frame"] / today[name]["ms_per_frame"]
                out[f"{name}_ms_ratio_{method}"] = _goal(ratio, limit, False,
                                                         f"{method}: {name} set, face stage ms per frame / today's")  # fmt: skip
        if "found_pct" in m["sets"].get("default", {}) and "found_pct" in today.get("default", {}):
            out[f"default_found_{method}"] = _goal(m["sets"]["default"]["found_pct"], today["default"]["found_pct"],
                                                   True, f"{method}: default set, % found (today's or more)")  # fmt: skip
    return out


def goals(f: dict[str, Any]) -> dict[str, Any]:
    """Each goal with its measured value and whether it is met."""
    out = {
        "faces_vs_mtcnn_full": _goal(
            f["faces"]["speedup"], FACE_SPEEDUP_GOAL, True, "face stage fps / MTCNN on full frames fps"
        ),
        "extract_vs_naive": _goal(
            f["extract"]["speedup_vs_naive_all"],
            E2E_SPEEDUP_GOAL,
            True,
            "extract fps (Ray start, actor start and model loading included) / naive loop fps",
        ),
        "extract_command_vs_naive": _goal(
            f["extract"]["speedup_vs_naive_command"],
            E2E_SPEEDUP_GOAL,
            True,
            "`python -m jobs extract` fps, launch to exit (every start-up cost included; the backbone's spec "
            "remembered from the run before) / naive loop fps (the passes just before and after each run; median of the runs)",
        ),
        "extract_vs_naive_ray_up": _goal(
            f["extract"]["speedup_vs_naive"],
            RAY_UP_SPEEDUP_GOAL,
            True,
            "extract fps (Ray running; actor start and model loading included) / naive loop fps",
        ),
    }
    if "speedup_vs_naive_command_first" in f["extract"]:
        out["extract_command_first_vs_naive"] = _goal(
            f["extract"]["speedup_vs_naive_command_first"],
            E2E_SPEEDUP_GOAL,
            True,
            "`python -m jobs extract` fps, launch to exit, on a machine's first run (no backbone spec remembered: "
            "the backbone workers describe it) / naive loop fps (the passes just before and after it)",
        )
    if "speedup_vs_naive_steady" in f["extract"]:
        out["extract_vs_naive_steady"] = _goal(
            f["extract"]["speedup_vs_naive_steady"],
            STEADY_SPEEDUP_GOAL,
            True,
            "extract steady fps (memory runs: extra frames / extra seconds) / naive loop fps",
        )
    c = f["cache"]
    if "write_once_cpu_ms" in c:
        out["write_once_vs_twice"] = _goal(
            c["write_once_cpu_ms"] / c["write_twice_cpu_ms"],
            WRITE_RATIO_GOAL,
            False,
            "cache write CPU per frame, each map written once / part files then the shard",
        )
    if "memory" in f:
        m = f["memory"]
        # PSS: the physical memory the process tree holds, each shared page counted once (summed RSS
        # counts torch's libraries and the object store once per process that maps them)
        out["memory_ratio"] = _goal(m["pss_ratio"], MEMORY_RATIO_GOAL, False, "peak PSS long / short video")
        peak = max(m["short"]["peak_pss_mb"], m["long"]["peak_pss_mb"])
        out["memory_peak_mb"] = _goal(peak, MEMORY_LIMIT_MB, False, "largest peak PSS of extract (MB)")
    return out | face_goals(f.get("face_methods", {}))


def _n(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def _found(x: dict[str, Any]) -> str:
    """Face scores in words: found share, median IoU, boxes on no-face frames, switches where counted."""
    text = (f"found {_n(x.get('found_pct'))}%, IoU {_n(x.get('median_iou'), 3)}, "
            f"box on {x.get('wrong_boxes', 0):.0f}/{x.get('no_face_frames', 0):.0f} no-face frames")  # fmt: skip
    return text + (f", {x['switches']:.0f} identity switches" if x.get("switches") else "")


def face_tables(fm: dict[str, Any]) -> list[str]:
    """Markdown of the face methods: each method on each set, then each video."""
    lines = [
        "Face stage by method and set (found: that subject's box at IoU >= 0.5 with its true box; "
        f"ms: detect + track per decoded frame in this process, {fm['timing']['clock']}, "
        "the least of the methods' turns):",
        "",
        "| method | set | videos | face frames | found % | worst video found % | median IoU "
        "| boxes on no-face frames | identity switches | frames/s | ms/frame |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, m in fm["methods"].items():
        for name, x in m["sets"].items():
            lines.append(
                f"| {method} | {name} | {x['videos']:.0f} | {x['face_frames']:.0f} | {_n(x.get('found_pct'))} "
                f"| {_n(x.get('worst_video_found_pct'))} ({x.get('worst_video', '-')}) | {_n(x.get('median_iou'), 3)} "
                f"| {x['wrong_boxes']:.0f}/{x['no_face_frames']:.0f} | {x['switches']:.0f} | {_n(x['fps'])} "
                f"| {_n(x['ms_per_frame'], 2)} |"
            )
    lines += [
        "",
        "Per video:",
        "",
        "| video | set | method | frames | found % | median IoU | boxes on no-face frames | switches | ms/frame |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = dict.fromkeys(v for per in fm["videos"].values() for v in per)
    for video in names:
        for method, per in fm["videos"].items():
            if video in per:
                x = per[video]
                lines.append(
                    f"| {video} | {x['set']} | {method} | {x['frames'] / x['subjects']:.0f} "
                    f"| {_n(x.get('found_pct'))} | {_n(x.get('median_iou'), 3)} "
                    f"| {x['wrong_boxes']:.0f}/{x['no_face_frames']:.0f} | {x['switches']:.0f} "
                    f"| {_n(x['ms_per_frame'], 2)} |"
                )
    return lines


def markdown(f: dict[str, Any]) -> str:
    """The figures as one Markdown table (stage, variant, frames/s, other figures) with a header."""
    s = f["setup"]
    rows: list[tuple[str, str, float | None, str]] = []
    dec = f["decode"]
    for backend in ("decord", "pyav"):
        if backend in dec:
            used = " (pipeline)" if backend == dec["pipeline_backend"] else ""
            rows.append(("decode", f"{backend}{used}", dec[backend]["fps"], ""))
    faces = f["faces"]
    p, m = faces["pipeline"], faces.get("mtcnn_full", {})
    rows.append(("faces", "detect every k-th, downscaled + track", p["fps"],
                 f"{_found(p)}; {_n(p.get('ms_per_frame'), 2)} ms/frame"))  # fmt: skip
    if m:
        rows.append(("faces", "MTCNN every full-res frame", m["fps"],
                     f"{_found(m)}; stage speed-up {_n(faces.get('speedup'))}x"))  # fmt: skip
    rows.append(("align", f"5-point, {f['align'].get('crop_size', 224)} px", f["align"]["fps"], ""))
    bb = f["backbone"]
    for name in [k for k, v in bb.items() if isinstance(v, dict) and "fps" in v]:  # the variants, in order
        used = " (pipeline)" if name == bb["pipeline"] else ""
        rows.append(("backbone", f"{name}{used}", bb[name]["fps"], f"batch {bb.get('batch_size', '-')}"))
    c = f["cache"]
    rows.append(("cache", "write (streamed shard)", c["write_fps"],
                 f"{_n(c['write_mb_s'])} MB/s, {_n(c['bytes_per_frame'] / 1000)} kB/frame "
                 f"(raw {_n(c['raw_bytes_per_frame'] / 1000)} kB)"))  # fmt: skip
    if "write_once_cpu_ms" in c:
        rows.append(("cache", "write once vs part files + shard", None,
                     f"{_n(c['write_once_cpu_ms'], 2)} vs {_n(c['write_twice_cpu_ms'], 2)} ms CPU per frame "
                     f"({_n(c['write_once_cpu_ms'] / c['write_twice_cpu_ms'], 2)}x)"))  # fmt: skip
    rows.append(("cache", "read (whole shard, warm)", c["read_fps"],
                 f"{_n(c['read_mb_s'])} MB/s; cosine cached vs fp32 median {c['cosine_median']:.5f}, "
                 f"min {c['cosine_min']:.5f}"))  # fmt: skip
    for name, t in f["temporal"].items():
        rows.append(("temporal", f"{name} train step", t["train_fps"], ""))
        rows.append(("temporal", f"{name} predict", t["predict_fps"], ""))
    e, eff = f["extract"], f["efficiency"]
    rows.append(("extract", "end to end (Ray, actors started inside)", e["fps"],
                 f"{e['frames']:.0f} frames in {_n(e['seconds'])} s (+{_n(e['ray_start_s'])} s Ray start: "
                 f"{_n(e['fps_with_ray_start'])} frames/s); first result after {_n(e['first_result_s'])} s; "
                 f"{_found(e)}"))  # fmt: skip
    c = e["command"]
    rows.append(("extract", "the command, launch to exit", c["fps"],
                 f"`python -m jobs extract`: {c['frames']:.0f} frames in {_n(c['seconds'])} s, every start-up "
                 f"cost included; {_n(e['speedup_vs_naive_command'])}x the naive loop"
                 + (f" (median of {len(c['runs_s'])} runs: {', '.join(_n(s) for s in c['runs_s'])} s)"
                    if len(c.get("runs_s", ())) > 1 else "")
                 + (f"; each run over the naive passes just before and after it: "
                    f"{', '.join(_n(r, 2) + 'x' for r in c['paired_speedups'])} (median shown), over the "
                    f"block of naive passes {_n(e['speedup_vs_naive_command_block'], 2)}x"
                    if "paired_speedups" in c else "")
                 + (f"; its Ray processes ended {_n(c['outlived_s'], 2)} s after its exit, waited for before "
                    "the next run" if "outlived_s" in c else "")))  # fmt: skip
    if "command_first" in e:
        c = e["command_first"]
        rows.append(("extract", "the command, a machine's first run", c["fps"],
                     "the same, the backbone's spec not yet remembered (the backbone workers describe it): "
                     f"{_n(c['seconds'])} s, {_n(e['speedup_vs_naive_command_first'])}x the naive loop"
                     + (" (the passes just before and after it)" if "naive_fps" in c else "")))  # fmt: skip
    if "write_assemble_ms" in e:
        rows.append(("extract", "write + assemble (worker time)", None,
                     f"{_n(e['write_assemble_ms'], 2)} ms per decoded frame"))  # fmt: skip
    if "steady_fps" in e:
        rows.append(("extract", "steady (long - short memory run)", e["steady_fps"],
                     f"extract speed-up over naive {_n(e.get('speedup_vs_naive_steady'))}x"))  # fmt: skip
    rows.append(("extract", "ideal: stages alone", eff["ideal_fps"],
                 f"efficiency {eff['value']:.2f} (end to end), {_n(eff.get('steady'), 2)} (steady); "
                 f"slowest stage {eff['slowest_stage']}"))  # fmt: skip
    n = f["naive"]
    rows.append(("naive", "per-frame loop", n["fps"],
                 f"{n['frames']:.0f} frames (first of each video); extract speed-up {_n(e['speedup_vs_naive_all'])}x "
                 f"with Ray start, {_n(e['speedup_vs_naive'])}x without"
                 + (f" (median of {len(n['runs_fps'])} passes: {', '.join(_n(r) for r in n['runs_fps'])} frames/s)"
                    if len(n.get("runs_fps", ())) > 1 else "")))  # fmt: skip
    if "memory" in f:
        mem = f["memory"]
        for key in ("short", "long"):
            x = mem[key]
            rows.append(("memory", f"extract, {x['seconds_of_video']:g} s video ({x['frames']:.0f} frames)", None,
                         f"peak PSS {_n(x['peak_pss_mb'])} MB (summed RSS {_n(x['peak_rss_mb'])} MB), "
                         f"{x['processes']:.0f} processes, {_n(x['wall_s'])} s"))  # fmt: skip
    lines = [
        f"lwaffect bench: {s['videos']} x {s['width']}x{s['height']} {_n(s['seconds'])} s at {s['fps']} fps "
        f"({s['frames']} frames), device {s['device']} (face detector: {s['face_device']}), "
        f"{s['threads']} torch threads, {s['cpus']} CPUs "
        f"({s['cpu']}), medians of {s['repeats']} runs",
        "",
        "| stage | variant | frames/s | other figures |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {a} | {b} | {_n(v)} | {d} |" for a, b, v, d in rows]
    lines.append("")
    lines.append(f"Efficiency: {eff['definition']}.")
    if f.get("face_methods", {}).get("methods"):
        lines += ["", *face_tables(f["face_methods"])]
    lines.append("")
    lines.append("| goal | value | target | met |")
    lines.append("|---|---:|---:|---|")
    for name, g in f.get("goals", {}).items():
        sign = g.get("sign", ">=" if name.startswith(("faces", "extract")) else "<=")
        lines.append(
            f"| {name}: {g['what']} | {_n(g['value'], 2)} | {sign} {_n(g['goal'], 1)} | {g['met']} |"
        )
    return "\n".join(lines)
