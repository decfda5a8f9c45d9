"""The extraction's three Ray Data stages, one module each: `face` (decode, detect/track, align -> crops),
`backbone` (crops -> maps; `crops` instead for a crop cache: crops -> images), `write` (maps -> shards, written once, and summaries; imports no torch).
"""
