"""A user's own multimodal env package (issue 21): ``my_sensors`` registers ``user_env/ReacherSensors-v0``."""
