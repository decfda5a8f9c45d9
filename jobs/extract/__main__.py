"""`python -m jobs.extract --input ... --cache ...`: the extraction as a `ray job submit` entry point.

Same flags as `lwaffect extract`.
"""

import sys

from jobs.cli import app

app(["extract", *sys.argv[1:]], prog_name="python -m jobs.extract")
