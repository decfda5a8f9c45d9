"""The extraction job (`lwaffect extract`, `python -m jobs.extract`): input folder -> feature cache on Ray.

`config` (what the job is told), `rows` (the row protocol between the stages and back to the driver),
`stages` (the three Ray Data stages: face, backbone, write), `driver` (progress and `extract`), `runtime`
(where the stages run: Ray session, stage pools), `select` (the subjects covered, whether work is left; no
torch). May import `pipeline` and `model`; only `__main__` (the `ray job submit` entry) imports the CLI.
"""
