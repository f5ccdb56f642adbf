"""Stage 3, sensors: what runs on or against a sensor: replay, deploy, live reload, update sources.

May import ``generate`` (file names, escaping, validation), ``inputs`` and the bottom layer.
"""
