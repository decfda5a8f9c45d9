"""`lwaffect report`: one self-contained HTML file that shows what a run did.

`record` (reading OUT/run.json), `gather` (predictions, labels, face records and per-subject metrics of
every subject, pure data), `series` (binning long timelines, runs of filled frames), `figures` (the
Plotly figure of each subject, plain dicts), `thumbs` (face thumbnails decoded from the videos with the
cached box drawn), `page` (HTML assembly: overview, tables, sections, the inlined Plotly library and
`page.js` / `page.css`), `build` (`write_report`, which ties them together), `scale` (a large run made
from a small one, to measure the report's size). May import `pipeline` and `model`, and `jobs.run.report`
for the names of the run's files.
"""

from jobs.report.build import ReportConfig, ReportError, ReportResult, write_report

__all__ = ["ReportConfig", "ReportError", "ReportResult", "write_report"]
