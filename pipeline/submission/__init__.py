"""ABAW submission files: format and writer (write), checker (check), reading predictions (read).

May import model and pipeline.datasets (test lists, organiser example files).
"""
