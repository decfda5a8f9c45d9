"""The extraction job (`lwaffect extract`, `python -m jobs.extract`): the Ray Data driver (driver), the face
stage (stages), the cache-writing stage (write), where Ray runs and how stages are sized (runtime).

May import pipeline, model and jobs.cli (the `python -m jobs.extract` entry only).
"""
