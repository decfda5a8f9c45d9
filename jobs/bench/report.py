"""The benchmark's goals and its Markdown table, from the figures `jobs.bench.suite.run_bench` measured."""

from __future__ import annotations

from typing import Any

FACE_SPEEDUP_GOAL = 5.0  # face stage vs MTCNN on every full-resolution frame
E2E_SPEEDUP_GOAL = 8.0  # extract vs the naive per-frame loop
MEMORY_RATIO_GOAL = 1.2  # peak memory of a 10x longer video / the short one
MEMORY_LIMIT_MB = 4000.0  # peak memory of extraction


def _goal(value: float, goal: float, higher: bool, what: str) -> dict[str, Any]:
    met = value >= goal if higher else value <= goal
    return {"value": value, "goal": goal, "met": "yes" if met else "no", "what": what}


def goals(f: dict[str, Any]) -> dict[str, Any]:
    """Each goal with its measured value and whether it is met."""
    out = {
        "faces_vs_mtcnn_full": _goal(
            f["faces"]["speedup"], FACE_SPEEDUP_GOAL, True, "face stage fps / MTCNN on full frames fps"
        ),
        "extract_vs_naive": _goal(
            f["extract"]["speedup_vs_naive"],
            E2E_SPEEDUP_GOAL,
            True,
            "extract fps (actor start and model loading included) / naive loop fps",
        ),
    }
    if "speedup_vs_naive_steady" in f["extract"]:
        out["extract_vs_naive_steady"] = _goal(
            f["extract"]["speedup_vs_naive_steady"],
            E2E_SPEEDUP_GOAL,
            True,
            "extract steady fps (memory runs: extra frames / extra seconds) / naive loop fps",
        )
    if "memory" in f:
        m = f["memory"]
        # PSS: the physical memory the process tree holds, each shared page counted once (summed RSS
        # counts torch's libraries and the object store once per process that maps them)
        out["memory_ratio"] = _goal(m["pss_ratio"], MEMORY_RATIO_GOAL, False, "peak PSS long / short video")
        peak = max(m["short"]["peak_pss_mb"], m["long"]["peak_pss_mb"])
        out["memory_peak_mb"] = _goal(peak, MEMORY_LIMIT_MB, False, "largest peak PSS of extract (MB)")
    return out


def _n(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


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
                 f"IoU {_n(p.get('median_iou'), 3)}, found {_n(p.get('found_pct'))}%"))  # fmt: skip
    if m:
        rows.append(("faces", "MTCNN every full-res frame", m["fps"],
                     f"IoU {_n(m.get('median_iou'), 3)}, found {_n(m.get('found_pct'))}%; "
                     f"stage speed-up {_n(faces.get('speedup'))}x"))  # fmt: skip
    rows.append(("align", f"5-point, {f['align'].get('crop_size', 224)} px", f["align"]["fps"], ""))
    bb = f["backbone"]
    for name in ("fp32_nchw", "fp32_channels_last", "bf16_channels_last"):
        if name in bb:
            used = " (pipeline)" if name == bb["pipeline"] else ""
            rows.append(("backbone", f"{name}{used}", bb[name]["fps"], f"batch {bb.get('batch_size', '-')}"))
    c = f["cache"]
    rows.append(("cache", "write (streamed shard)", c["write_fps"],
                 f"{_n(c['write_mb_s'])} MB/s, {_n(c['bytes_per_frame'] / 1000)} kB/frame "
                 f"(raw {_n(c['raw_bytes_per_frame'] / 1000)} kB)"))  # fmt: skip
    rows.append(("cache", "read (whole shard, warm)", c["read_fps"],
                 f"{_n(c['read_mb_s'])} MB/s; cosine cached vs fp32 median {c['cosine_median']:.5f}, "
                 f"min {c['cosine_min']:.5f}"))  # fmt: skip
    for name, t in f["temporal"].items():
        rows.append(("temporal", f"{name} train step", t["train_fps"], ""))
        rows.append(("temporal", f"{name} predict", t["predict_fps"], ""))
    e, eff = f["extract"], f["efficiency"]
    rows.append(("extract", "end to end (Ray, actors started inside)", e["fps"],
                 f"{e['frames']:.0f} frames in {_n(e['seconds'])} s (+{_n(e['ray_start_s'])} s Ray start); "
                 f"IoU {_n(e.get('median_iou'), 3)}, found {_n(e.get('found_pct'))}%"))  # fmt: skip
    if "steady_fps" in e:
        rows.append(("extract", "steady (long - short memory run)", e["steady_fps"],
                     f"extract speed-up over naive {_n(e.get('speedup_vs_naive_steady'))}x"))  # fmt: skip
    rows.append(("extract", "ideal: stages alone", eff["ideal_fps"],
                 f"efficiency {eff['value']:.2f} (end to end), {_n(eff.get('steady'), 2)} (steady); "
                 f"slowest stage {eff['slowest_stage']}"))  # fmt: skip
    n = f["naive"]
    rows.append(("naive", "per-frame loop", n["fps"],
                 f"{n['frames']:.0f} frames (first of each video); extract speed-up {_n(e['speedup_vs_naive'])}x"))  # fmt: skip
    if "memory" in f:
        mem = f["memory"]
        for key in ("short", "long"):
            x = mem[key]
            rows.append(("memory", f"extract, {x['seconds_of_video']:g} s video ({x['frames']:.0f} frames)", None,
                         f"peak PSS {_n(x['peak_pss_mb'])} MB (summed RSS {_n(x['peak_rss_mb'])} MB), "
                         f"{x['processes']:.0f} processes, {_n(x['wall_s'])} s"))  # fmt: skip
    lines = [
        f"lwaffect bench: {s['videos']} x {s['width']}x{s['height']} {_n(s['seconds'])} s at {s['fps']} fps "
        f"({s['frames']} frames), device {s['device']}, {s['threads']} torch threads, {s['cpus']} CPUs "
        f"({s['cpu']}), medians of {s['repeats']} runs",
        "",
        "| stage | variant | frames/s | other figures |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {a} | {b} | {_n(v)} | {d} |" for a, b, v, d in rows]
    lines.append("")
    lines.append(f"Efficiency: {eff['definition']}.")
    lines.append("")
    lines.append("| goal | value | target | met |")
    lines.append("|---|---:|---:|---|")
    for name, g in f.get("goals", {}).items():
        sign = ">=" if name.startswith(("faces", "extract")) else "<="
        lines.append(
            f"| {name}: {g['what']} | {_n(g['value'], 2)} | {sign} {_n(g['goal'], 1)} | {g['met']} |"
        )
    return "\n".join(lines)
