"""Stage 4, report: the study's figures recomputed from a site's own logs, as HTML.

The top stage: may import ``analysis`` (detections), ``inputs`` and the bottom layer.
"""
