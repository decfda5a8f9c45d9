"""The extraction's three Ray Data stages, one module each: `face` (decode, detect/track, align -> crops),
`backbone` (crops -> maps), `write` (maps -> part files and summaries; imports no torch).
"""
