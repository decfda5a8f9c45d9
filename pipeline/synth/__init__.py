"""Synthetic data sets of real H.264 videos of a real face: config, labels and manifest (common), the
Aff-Wild2 (affwild2), EMI / AH (layouts) and AffectNet (affectnet, still images) layouts, one video (video), the face (faces), the hard cases
(hard), the entry (dataset).

May import model and pipeline.colour (the luma weights); not the stages it makes data for.
"""
