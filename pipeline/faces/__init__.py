"""The face stage: its settings (config, which imports no torch), MTCNN detection (detect), refinement of a
face near its expected box (refine), tracking the subjects' faces (track, with records and, for
`FaceConfig.follow` "refine", follow and whole), 5-point alignment (align).

May import model; not pipeline.video: the tracker takes any chunk with `start` and `frames`.
"""
