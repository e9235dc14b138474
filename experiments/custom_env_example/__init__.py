"""Worked example: a user-defined 3-modality environment run through the whole gmc-rl pipeline.

See ``sensor_reach.py`` (the environment), ``config.yaml`` (the experiment) and ``run.py`` (the script).
"""
