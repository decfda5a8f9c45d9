"""`lwaffect run`: one command from an input folder to checked submissions (config, checkpoints, report, driver).

May import `jobs.extract`, `jobs.train`, `jobs.predict`, `jobs.evaluate`, `pipeline` and `model`.
"""
