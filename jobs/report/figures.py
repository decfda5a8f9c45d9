"""The Plotly figure of one subject, as a plain dict (`{"data": [...], "layout": {...}}`, plotly.js's JSON).

Panels share one time axis in seconds (frames where the frame rate is unknown), top to bottom, one per
task of the run: VA two lines (valence, arousal); AU a 12-row raster of decisions; EXPR a coloured band of
the class; AH a band of the decision; each with the labels beside it where the input has them (VA dotted
lines, AU a second raster, EXPR and AH a second row). Under them the face-record strip: one row per
source the cache records (detected, refined, tracked, interpolated, none). Filled frames are shaded grey across
all panels (layout shapes named "filled"). A clip task (EMI) draws six bars per clip, predicted and label.

Series longer than `most` points are binned (`jobs.report.series`): means, shares of decisions, the most
frequent class; the layout's `meta` says how many frames a point stands for. Points are laid out with
`x0` and `dx` (no x arrays): point j is at `x0 + j * dx`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jobs.report.gather import SubjectData, TaskTrack
from jobs.report.series import bin_mean, bin_mode, bin_size, merge_runs, runs
from model.tasks import EXPR_NAMES, get_task
from pipeline.faces.track import SOURCES

LINE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
EXPR_COLOURS = ("#bbbbbb", "#d62728", "#8c564b", "#9467bd", "#2ca02c", "#1f77b4", "#ff7f0e", "#e377c2")
SOURCE_COLOURS = {"detected": "#2ca02c", "refined": "#17becf", "tracked": "#1f77b4", "interpolated": "#ff7f0e",
                  "none": "#7f7f7f"}  # fmt: skip
FILLED_SHADE = "rgba(110, 110, 110, 0.22)"  # shade of filled frames
MOST_SHAPES = 300  # filled runs drawn; more are joined across their smallest gaps
PANEL_PX = {"va": 170, "au": 150, "expr": 46, "ah": 46, "labels_au": 150}  # panel heights
SOURCES_PX, GAP_PX, MARGIN = 90, 16, {"l": 110, "r": 20, "t": 30, "b": 40}


def numbers(values: np.ndarray, digits: int = 4) -> list[float | None]:
    """A JSON-ready list: rounded, None where NaN."""
    rounded = np.round(np.asarray(values, np.float64), digits)
    return [None if v != v else v for v in rounded.tolist()]


def _ramp(colour: str) -> list[list[Any]]:
    return [[0.0, "rgba(255,255,255,0)"], [1.0, colour]]


def _classes(colours: tuple[str, ...]) -> list[list[Any]]:
    """A stepped colour scale: code c of len(colours) classes gets colours[c] (zmin -0.5, zmax C - 0.5)."""
    n = len(colours)
    return [step for c, colour in enumerate(colours) for step in ([c / n, colour], [(c + 1) / n, colour])]


class Panels:
    """Builds the panels of one figure: traces on y axes stacked from the top, one shared x axis."""

    def __init__(self, x0: float, dx: float):
        self.x0, self.dx = x0, dx
        self.data: list[dict[str, Any]] = []
        self.axes: list[tuple[float, dict[str, Any]]] = []  # (height px, y axis settings)

    def add(self, height: float, axis: dict[str, Any], traces: list[dict[str, Any]]) -> None:
        ref = "y" if not self.axes else f"y{len(self.axes) + 1}"
        self.axes.append((height, axis))
        for trace in traces:
            self.data.append({"x0": self.x0, "dx": self.dx, **trace, "xaxis": "x", "yaxis": ref})

    def layout(self, seconds: bool) -> dict[str, Any]:
        total = sum(h for h, _ in self.axes) + GAP_PX * max(len(self.axes) - 1, 0)
        layout: dict[str, Any] = {
            "height": total + MARGIN["t"] + MARGIN["b"], "margin": MARGIN, "showlegend": True,
            "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
            "hovermode": "closest", "plot_bgcolor": "white",
        }  # fmt: skip
        top = float(total)
        for k, (height, axis) in enumerate(self.axes):
            name = "yaxis" if k == 0 else f"yaxis{k + 1}"
            layout[name] = {
                **axis,
                "domain": [max((top - height) / total, 0.0), top / total],
                "fixedrange": True,
            }
            top -= height + GAP_PX
        bottom = "y" if len(self.axes) == 1 else f"y{len(self.axes)}"
        layout["xaxis"] = {"anchor": bottom, "title": {"text": "seconds" if seconds else "frame"},
                           "showgrid": True, "gridcolor": "#eee", "zeroline": False}  # fmt: skip
        return layout


def _band(track: TaskTrack, k: int, colourscale: list, zmin: float, zmax: float, values: np.ndarray,
          labels: np.ndarray | None, name: str) -> list[dict[str, Any]]:  # fmt: skip
    rows, names = [values], ["predicted"]
    if labels is not None:
        rows, names = [labels, values], ["label", "predicted"]
    return [{"type": "heatmap", "name": f"{track.task} {name}", "z": [numbers(r, 2) for r in rows], "y": names,
             "colorscale": colourscale, "zmin": zmin, "zmax": zmax, "showscale": False, "hoverongaps": False,
             "showlegend": False}]  # fmt: skip


def task_panels(panels: Panels, track: TaskTrack, k: int) -> None:
    """The panel(s) of one frame task."""
    spec = get_task(track.task)
    if spec.name == "va":
        traces = []
        for j, column in enumerate(spec.label_columns):
            colour = LINE_COLOURS[j]
            traces.append({"type": "scatter", "mode": "lines", "name": column, "y": numbers(bin_mean(track.values[:, j], k)),
                           "line": {"color": colour, "width": 1.5}})  # fmt: skip
            if track.labels is not None:
                traces.append({"type": "scatter", "mode": "lines", "name": f"{column} (label)",
                               "y": numbers(bin_mean(track.labels[:, j], k)),
                               "line": {"color": colour, "width": 1.2, "dash": "dot"}})  # fmt: skip
        panels.add(
            PANEL_PX["va"], {"title": {"text": "VA"}, "range": [-1.05, 1.05], "zeroline": True}, traces
        )
    elif spec.kind == "multilabel":  # AU: rows of decisions (shares of frames on, where binned)
        for name, values in (("predicted", track.values), ("label", track.labels)):
            if values is None:
                continue
            z = [numbers(row, 2) for row in bin_mean(values, k).T]  # (M, 12) -> 12 rows of M
            trace = {"type": "heatmap", "name": f"AU {name}", "z": z, "y": list(spec.label_columns),
                     "colorscale": _ramp("#1f77b4" if name == "predicted" else "#2ca02c"), "zmin": 0, "zmax": 1,
                     "showscale": False, "hoverongaps": False, "showlegend": False}  # fmt: skip
            axis = {"title": {"text": f"AU {name}"}, "autorange": "reversed", "tickfont": {"size": 9}}
            panels.add(PANEL_PX["au"], axis, [trace])
    elif spec.kind == "multiclass":  # EXPR: one class per frame
        labels = None if track.labels is None else bin_mode(track.labels[:, 0], k, len(EXPR_NAMES))
        values = bin_mode(track.values[:, 0], k, len(EXPR_NAMES))
        band = _band(track, k, _classes(EXPR_COLOURS), -0.5, len(EXPR_NAMES) - 0.5, values, labels, "class")
        panels.add(PANEL_PX["expr"] * (2 if labels is not None else 1), {"title": {"text": "EXPR"}}, band)
    else:  # AH: the decision (share of frames on, where binned)
        labels = None if track.labels is None else bin_mean(track.labels[:, 0], k)
        band = _band(track, k, _ramp("#d62728"), 0, 1, bin_mean(track.values[:, 0], k), labels, "decision")
        panels.add(PANEL_PX["ah"] * (2 if labels is not None else 1), {"title": {"text": "AH"}}, band)


def source_traces(source: np.ndarray, k: int) -> list[dict[str, Any]]:
    """The face-record strip: per source a row with the share of frames (of each bin) it recorded."""
    traces = []
    for row, name in enumerate(SOURCES):
        share = bin_mean((source == name).astype(np.float64), k)
        traces.append({"type": "heatmap", "name": f"face {name}", "z": [numbers(share, 2)], "y": [row],
                       "colorscale": _ramp(SOURCE_COLOURS[name]), "zmin": 0, "zmax": 1, "showscale": False,
                       "showlegend": False, "hovertemplate": f"%{{x:.2f}}: {name} %{{z}}<extra></extra>"})  # fmt: skip
    return traces


def filled_shapes(filled: np.ndarray, fps: float) -> list[dict[str, Any]]:
    """Grey rectangles over the filled frames: frame i (0-based) at i / fps, each covering half a frame
    either side."""
    return [
        {"type": "rect", "name": "filled", "xref": "x", "yref": "paper", "x0": round((a - 0.5) / fps, 5),
         "x1": round((b - 0.5) / fps, 5), "y0": 0, "y1": 1, "fillcolor": FILLED_SHADE, "line": {"width": 0},
         "layer": "below"}
        for a, b in merge_runs(runs(filled), MOST_SHAPES)
    ]  # fmt: skip


def subject_figure(subject: SubjectData, fps: float | None, most: int) -> dict[str, Any]:
    """The timeline of a subject's frame tasks, face-record strip and filled shading."""
    k = bin_size(subject.frames, most)
    rate = fps or 1.0
    panels = Panels(x0=(k - 1) / 2 / rate, dx=k / rate)
    frame_tracks = [t for t in subject.tasks.values() if get_task(t.task).unit == "frame"]
    for track in frame_tracks:
        task_panels(panels, track, k)
    if subject.faces is not None:
        # rows by number (a category order on the axis breaks plotly.js heatmaps), named by the ticks
        axis = {"title": {"text": "face record"}, "tickvals": list(range(len(SOURCES))), "ticktext": list(SOURCES),
                "range": [len(SOURCES) - 0.5, -0.5], "tickfont": {"size": 9}}  # fmt: skip
        panels.add(SOURCES_PX, axis, source_traces(subject.faces.source, k))
    layout = panels.layout(seconds=fps is not None)
    filled = np.zeros(subject.frames, bool)
    for track in frame_tracks:
        filled |= track.filled
    layout["shapes"] = filled_shapes(filled, rate)
    layout["meta"] = {"subject": subject.name, "frames": subject.frames, "frames_per_point": k, "fps": fps}
    return {"data": panels.data, "layout": layout}


def clip_figure(subject: SubjectData) -> dict[str, Any] | None:
    """Bars of a clip task (EMI): the six intensities predicted, and labelled where known."""
    tracks = [t for t in subject.tasks.values() if get_task(t.task).unit == "clip"]
    if not tracks:
        return None
    track, names = tracks[0], list(get_task(tracks[0].task).label_columns)
    data = [{"type": "bar", "name": "predicted", "x": names, "y": numbers(track.values[0]),
             "marker": {"color": LINE_COLOURS[0]}}]  # fmt: skip
    if track.labels is not None:
        data.append({"type": "bar", "name": "label", "x": names, "y": numbers(track.labels[0]),
                     "marker": {"color": LINE_COLOURS[2]}})  # fmt: skip
    layout = {"height": 240, "barmode": "group", "margin": MARGIN, "yaxis": {"range": [0, 1], "title": {"text": track.task}},
              "meta": {"subject": subject.name}, "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom"}}  # fmt: skip
    if track.filled.any():
        layout["shapes"] = [{"type": "rect", "name": "filled", "xref": "paper", "yref": "paper", "x0": 0, "x1": 1,
                             "y0": 0, "y1": 1, "fillcolor": FILLED_SHADE, "line": {"width": 0}, "layer": "below"}]  # fmt: skip
    return {"data": data, "layout": layout}
