"""Video: chunked decoding (decode), the decord and PyAV sources (sources), probing a file (probe).

May import model; no other pipeline folder (every stage reads video, video reads none of them).
"""
