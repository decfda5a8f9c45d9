"""`lwaffect bench`: benchmark videos, per-stage and end-to-end figures, the naive loop, the report.

May import jobs.extract (the job it measures), pipeline and model.
"""
