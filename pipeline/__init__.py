"""The stages and data of the pipeline: video, faces, features, the feature cache, data sets, temporal
windows and training steps, metrics, fill, the frames' luma weights (colour), submission files,
synthetic data sets.

May import model and its own modules; never jobs.
"""
