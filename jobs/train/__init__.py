"""The training job (`lwaffect train`): its settings (config.py), the checks before a run (checks.py),
the trainer and its resume state, the recipes.

May import pipeline and model.
"""
