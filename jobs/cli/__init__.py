"""The `lwaffect` command line (`app`): each command turns flags into a config and makes one library call.

`app` (the typer app, exit-status rules, shared helpers), `options` (choice values and option types shared
by several commands), and the commands by what they make: `pipeline` (run, extract, train, predict),
`pretrain` (the backbone on AffectNet), `results` (submit, evaluate, check-submission), `report` (the HTML report of a run), `tools` (synth, bench,
info). Heavy imports (torch, ray, decord, plotly) happen inside the commands so that `lwaffect --help` stays
instant. May import every other part of `jobs`, `pipeline` and `model`.
"""

from jobs.cli import pipeline, pretrain, report, results, tools  # noqa: F401  (each module registers its commands on `app`)
from jobs.cli.app import app

__all__ = ["app"]
