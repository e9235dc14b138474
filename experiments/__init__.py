"""Experiment configs (one YAML per environment) and runnable experiment scripts.

``quick.yaml`` is the embedded default that ``gmc-rl pipeline`` runs with no arguments.
"""
