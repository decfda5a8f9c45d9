"""The temporal model's data and steps: windows over the feature cache (windows), training and prediction
steps (training).

May import model, pipeline.cache and pipeline's shared modules (metrics, fill).
"""
