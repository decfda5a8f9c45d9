"""The feature cache: per-subject Parquet shards of frozen-backbone maps (or of the aligned face crops) and
face records.

`layout` (where the files are), `spec` (the settings a cache is made with: hash, differences), `schema` (row
format, manifest and failures tables), `read`, `write`, `crops` (a crop cache's codec), `backbone_spec` (the
backbone's part of the spec, remembered per machine). May import: model, pipeline.io; no pipeline stage (the
cache stores what the stages make, it does not run them).
"""
