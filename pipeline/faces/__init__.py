"""The face stage: its settings (config, which imports no torch), MTCNN detection (detect), refinement of a
face near its expected box (refine), carrying a face on by its appearance (carry), tracking the subjects'
faces (track, with records and, for `FaceConfig.follow` "refine", follow, look and whole), 5-point
alignment (align).

May import model and pipeline.colour (the luma weights); not pipeline.video: the tracker takes any chunk with
`start` and `frames`.
"""
