"""The extraction's three Ray Data stages, one module each: `face` (decode, detect/track, align -> crops),
`backbone` (crops -> maps), `write` (maps -> shards, written once, and summaries; imports no torch).
"""
