"""`lwaffect report`: the self-contained HTML report of a run (`jobs.report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs.cli.app import _fails_with_1, _say, app


@app.command()
def report(
    run: Annotated[Path, typer.Option("--run", help="Output folder of `lwaffect run` (holds run.json).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML file to write (default: RUN/report.html).")
    ] = None,
    thumbnails: Annotated[
        int, typer.Option(min=0, help="Face thumbnails per video, at regular intervals (0: none).")
    ] = 8,
    points: Annotated[
        int, typer.Option(min=50, help="Points per timeline; longer subjects are binned to this many.")
    ] = 1200,
) -> None:
    """One self-contained HTML file of a run: overview, failures, subjects worst first, timelines, faces.

    Reads RUN/run.json and the files it names (predictions, cache, videos, labels); what can no longer
    be found is said in the page. Open the file in any browser: it needs no network and no server.
    """
    from jobs.report import ReportConfig, ReportError, write_report

    cfg = ReportConfig(run=run, output=output, thumbnails=thumbnails, most_points=points)
    with _fails_with_1("report", ReportError, OSError):
        result = write_report(cfg, say=_say)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"{result.path} ({result.bytes / 2**20:.1f} MiB, {result.videos} videos, {result.subjects} "
               f"subjects); open it in a browser")  # fmt: skip
