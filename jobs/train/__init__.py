"""The training job (`lwaffect train`): the trainer and its resume state.

May import pipeline and model.
"""
