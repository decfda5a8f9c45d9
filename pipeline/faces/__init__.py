"""The face stage: MTCNN detection (detect), tracking the subjects' faces (track), 5-point alignment (align).

May import model; not pipeline.video: the tracker takes any chunk with `start` and `frames`.
"""
