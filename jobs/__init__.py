"""Composition and the command line: `lwaffect` (cli, options), run, predict, evaluate, info, demo,
learnability; the extract, train and bench jobs in their folders.

May import pipeline and model. Nothing below jobs imports it.
"""
