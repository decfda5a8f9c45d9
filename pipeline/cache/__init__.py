"""The feature cache: its schema and spec (schema), the shard writer (write) and the reader (read).

May import model; no pipeline stage (the cache stores what the stages make, it does not run them).
"""
