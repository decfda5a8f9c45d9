"""The temporal model's data and steps: windows over the feature cache (windows), training and prediction
steps (training); from a crop cache, the maps made on the fly (crops) and the windows' image augmentation
(augment).

May import model, pipeline.cache and pipeline's shared modules (metrics, fill, features, colour).
"""
