"""The report's HTML: one self-contained page (styles, script, library, figures and images inline).

Sections: the run (input, split, tasks, times), contents, overview (per task: videos, subjects, frames,
filled share, failures, metric; per-stage time and throughput with the extraction's parts; checkpoints;
submissions), failures with their reasons, one table of subjects per task sorted worst first (by the
per-subject metric where labels exist, else by the share of filled frames), a legend, and one section
per video: face thumbnails (the subjects of a two-subject video side by side at each time) and each
subject's timeline. A timeline is a `div.plot` whose figure (gzip + base64 JSON) sits in a script element
named by its `data-figure`; `page.js` draws it when it comes near the screen.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from importlib import resources
from typing import Any

from jobs.report.figures import EXPR_COLOURS, FILLED_SHADE, SOURCE_COLOURS
from jobs.report.gather import ReportData, SubjectData, metric_higher_is_better
from jobs.report.thumbs import Thumb
from model.tasks import EXPR_NAMES, get_task
from pipeline.faces.track import SOURCES


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def anchor(kind: str, name: str) -> str:
    """An id usable in a URL fragment for a subject or video name."""
    return f"{kind}-" + "".join(c if c.isalnum() or c in "-_" else f"_{ord(c):x}" for c in name)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    """An HTML table; cells are escaped unless they are `Raw`."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for k, cell in enumerate(row):
            text = cell.html if isinstance(cell, Raw) else esc("" if cell is None else cell)
            cells.append(f'<td class="num">{text}</td>' if k in numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw:
    """Markup that `table` keeps as it is."""

    def __init__(self, markup: str):
        self.html = markup


def link(kind: str, name: str) -> Raw:
    return Raw(f'<a href="#{anchor(kind, name)}">{esc(name)}</a>')


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def overview(data: ReportData) -> str:
    record = data.record
    rows = []
    for task in record.tasks:
        c = record.counts.get(task, {})
        failures = sum(1 for f in record.failures if f.get("task") in (task, ""))
        rows.append([task, c.get("videos"), c.get("subjects"), c.get("frames"), c.get("filled"),
                     _share(c.get("filled", 0), c.get("frames", 0)), failures,
                     record.metrics.get(task) or "no labels in this split"])  # fmt: skip
    parts = [table(["task", "videos", "subjects", "frames", "filled", "filled share", "failures", "metric"],
                   rows, numeric=(1, 2, 3, 4, 5, 6))]  # fmt: skip
    stages = []
    for s in record.stages:
        seconds, items = float(s.get("seconds", 0)), float(s.get("items", 0))
        rate = f"{items / seconds:,.1f} {s.get('unit', '')}/s" if seconds > 0 and items else "-"
        stages.append([s.get("name"), s.get("task") or "all", f"{seconds:.1f}", f"{items:,.0f} {s.get('unit', '')}",
                       rate, s.get("note", "")])  # fmt: skip
        for name, p in (s.get("parts") or {}).items():  # the extraction's own stages (worker seconds)
            pr, ps = float(p.get("items", 0)), float(p.get("seconds", 0))
            stages.append([f"  {s.get('name')}: {name}", s.get("task") or "all", f"{ps:.1f}", f"{pr:,.0f}",
                           f"{pr / ps:,.1f}/s" if ps > 0 else "-", "worker seconds, summed over workers"])  # fmt: skip
    parts.append("<h3>Stages</h3>" + table(["stage", "task", "seconds", "items", "throughput", "note"], stages,
                                            numeric=(2, 3, 4)))  # fmt: skip
    models = [[t, m.get("source"), m.get("epoch"), _value((m.get("metric") or {}).get("value")), m.get("path")]
              for t, m in record.checkpoints.items()]  # fmt: skip
    if models:
        parts.append(
            "<h3>Models</h3>" + table(["task", "source", "epoch", "validation metric", "checkpoint"], models)
        )
    subs = [[t, s.get("path"), "valid" if s.get("valid") else "; ".join(s.get("problems", []))]
            for t, s in record.submissions.items()]  # fmt: skip
    if subs:
        parts.append("<h3>Submissions</h3>" + table(["task", "file", "check"], subs))
    return "\n".join(parts)


def failures(data: ReportData) -> str:
    rows = [[f.get("task") or "all", f.get("video"), f.get("subject"), f.get("stage"), f.get("reason")]
            for f in data.record.failures]  # fmt: skip
    if not rows:
        return "<p>No input failed.</p>"
    return f'<p class="failure">{len(rows)} failures.</p>' + table(
        ["task", "video", "subject", "stage", "reason"], rows
    )


def subject_tables(data: ReportData) -> str:
    parts = []
    for task in data.record.tasks:
        subjects = [s for s in data.subjects.values() if task in s.tasks]
        if not subjects:
            continue
        better = 1 if metric_higher_is_better(task) else -1

        def worst_first(s: SubjectData, task: str = task, better: int = better) -> tuple:
            metric = s.tasks[task].metric
            return (metric is None, better * metric if metric is not None else -s.filled_share, s.name)

        rows = []
        for s in sorted(subjects, key=worst_first):
            track = s.tasks[task]
            metric = "-" if track.metric is None else f"{track.metric:.4f}"
            rows.append([link("subject", s.name), s.video, s.frames, f"{100 * s.filled_share:.1f}%", metric,
                         "video failed" if track.failed else track.metric_note])  # fmt: skip
        name = "mean absolute error of the clip" if get_task(task).unit == "clip" else get_task(task).metric
        parts.append(f'<div class="ranking" data-task="{esc(task)}"><h3>{esc(task)}: {len(rows)} subjects, worst '
                     f"first</h3><p>Metric: {esc(name)} of the subject alone.</p>"
                     + table(["subject", "video", "frames", "filled", "metric", "note"], rows, numeric=(2, 3, 4))
                     + "</div>")  # fmt: skip
    return "\n".join(parts)


def legend(tasks: Sequence[str]) -> str:
    items = [
        f'<span><i style="background:{FILLED_SHADE}"></i>filled frames (no face, or the video failed)</span>'
    ]
    items += [f'<span><i style="background:{SOURCE_COLOURS[s]}"></i>face record: {s}</span>' for s in SOURCES]
    if "expr" in tasks:
        items += [
            f'<span><i style="background:{c}"></i>{esc(n)}</span>'
            for n, c in zip(EXPR_NAMES, EXPR_COLOURS, strict=True)
        ]
    return '<div class="legend">' + "".join(items) + "</div>"


def thumb_strip(
    subjects: Sequence[SubjectData], thumbs: dict[str, list[Thumb]], fps: float | None, size: int
) -> str:
    """Thumbnails by time; at each time the subjects of the video side by side (left before right)."""
    lists = [thumbs.get(s.name, []) for s in subjects]
    if not lists or not lists[0]:
        return ""
    moments = []
    for k, first in enumerate(lists[0]):
        when = f"{first.frame / fps:.1f} s" if fps else f"frame {first.frame + 1}"
        pair = []
        for s, items in zip(subjects, lists, strict=True):
            t = items[k]
            who = f'<span class="who">{esc(s.position)}</span>' if len(subjects) > 1 else ""
            title = esc(
                f"{s.name}, frame {t.frame + 1}, face record: {t.source}{', ' + t.note if t.note else ''}"
            )
            attrs = f'data-subject="{esc(s.name)}" data-frame="{t.frame + 1}" data-source="{esc(t.source)}" title="{title}"'
            if t.uri:
                pair.append(
                    f'<div><img class="thumb" {attrs} src="{t.uri}" width="{size}" height="{size}" alt="{title}">{who}</div>'
                )
            else:
                pair.append(f'<div><div class="missing thumb-missing" {attrs}>{esc(t.note)}</div>{who}</div>')
        moments.append(f'<div class="moment"><div class="pair">{"".join(pair)}</div>{esc(when)}</div>')
    return '<div class="thumbs">' + "".join(moments) + "</div>"


def video_section(data: ReportData, video: str, figures: dict[str, list[tuple[str, str]]],
                  thumbs: dict[str, list[Thumb]], size: int) -> str:  # fmt: skip
    """One video: where it is, its thumbnails, and a timeline per subject."""
    v = data.videos[video]
    subjects = [data.subjects[s] for s in v.subjects]
    where = f"{esc(v.path)}" + (
        f", {v.fps:g} fps" if v.fps else ", frame rate unknown: timelines count frames"
    )
    parts = [f'<section class="video" id="{anchor("video", video)}"><h3>{esc(video)}</h3><p>{where}</p>']
    if v.missing:
        parts.append(f'<p class="note">No thumbnails: {esc(v.missing)}.</p>')
    parts.append(thumb_strip(subjects, thumbs, v.fps, size))
    for s in subjects:
        failed = [t for t in s.tasks.values() if t.failed]
        parts.append(f'<div class="subject" id="{anchor("subject", s.name)}" data-subject="{esc(s.name)}">'
                     f"<h4>{esc(s.name)} ({esc(s.position)}): {s.frames} frames, {100 * s.filled_share:.1f}% filled</h4>")  # fmt: skip
        if failed:
            parts.append('<p class="note failure">Its video failed: every frame holds the neutral value.</p>')
        parts += [f'<p class="note">{esc(n)}</p>' for n in s.notes]
        for k, (figure_id, payload) in enumerate(figures.get(s.name, [])):
            kind = "timeline" if k == 0 else "clip"
            parts.append(f'<div class="plot {kind}" data-subject="{esc(s.name)}" data-figure="{figure_id}"></div>'
                         f'<script type="application/octet-stream" id="{figure_id}">{payload}</script>')  # fmt: skip
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


def page(data: ReportData, figures: dict[str, list[tuple[str, str]]], thumbs: dict[str, list[Thumb]],
         library: str, size: int) -> str:  # fmt: skip
    """The whole HTML document. `figures`: subject -> [(element id, gzip + base64 figure JSON)];
    `library`: plotly.js, gzip + base64."""
    record = data.record
    raw = record.raw
    css = resources.files("jobs.report").joinpath("page.css").read_text()
    script = resources.files("jobs.report").joinpath("page.js").read_text()
    title = f"lwaffect report: {record.output}"
    contents = ['<a href="#overview">Overview</a>', '<a href="#failures">Failures</a>',
                '<a href="#subjects">Subjects, worst first</a>', '<a href="#videos">Videos</a>']  # fmt: skip
    contents += [f'<a href="#{anchor("video", v)}">&nbsp;&nbsp;{esc(v)}</a>' for v in data.videos]
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in data.notes)
    videos = "\n".join(video_section(data, v, figures, thumbs, size) for v in data.videos)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{css}</style></head>
<body>
<header><h1>{esc(title)}</h1>
<p>input {esc(record.input)} &middot; split {esc(record.split)} &middot; tasks {esc(", ".join(record.tasks))} &middot;
cache {esc(record.cache)}</p>
<p>started {esc(raw.get("started", "?"))}, finished {esc(raw.get("finished", "?"))} &middot; lwaffect {esc(raw.get("lwaffect", "?"))}
&middot; exit status {esc(raw.get("exit_code", "?"))} &middot; {len(data.videos)} videos, {len(data.subjects)} subjects</p></header>
<main>
{notes}
<h2>Contents</h2><nav class="contents">{"".join(contents)}</nav>
<h2 id="overview">Overview</h2>{overview(data)}
<h2 id="failures">Failures</h2>{failures(data)}
<h2 id="subjects">Subjects, worst first</h2>{subject_tables(data)}
<h2 id="videos">Videos</h2>
<p>Each timeline is drawn when it comes into view; drag to zoom, double-click to reset. Predictions are
solid, labels dotted (VA) or in their own rows; thumbnails are cut around the cached face box.</p>
{legend(record.tasks)}
{videos}
</main>
<script type="application/octet-stream" id="plotly-library">{library}</script>
<script>{script}</script>
</body></html>
"""
