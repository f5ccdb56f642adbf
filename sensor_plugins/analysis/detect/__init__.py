"""Detections as polars expressions over lazy frames: weak TLS, Tor, BitTorrent, NK traffic.

Public interface:

- ``tag_nk(conn, catalogue) -> LazyFrame`` adds ``nk_range`` (catalogue name or null),
  ``nk_side`` (``orig`` | ``resp`` | ``both`` | null), ``nk_host`` and ``peer_h``. When the
  log already has ``nk_range``/``nk_side`` (a sensor running our Zeek package) their
  values are used; rows they leave unset fall back to the catalogue.
- ``detect(logset, catalogue, tor, scope="nk") -> pl.DataFrame``: the findings, with the
  schema ``sensor_plugins.analysis.findings.FINDING_SCHEMA`` (``evidence`` as JSON text), sorted by
  ts, category, reason. ``findings.iter_findings`` turns it into ``Finding`` objects.
- ``detection_plan(logset, catalogue, tor, scope)`` -> the same as one LazyFrame, uncollected.

Every detection is a small function from lazy frames to a lazy frame of findings, and
only polars expressions are used, so that a Spark backend built on zat's
``LogToSparkDF`` can mirror each one. Address membership is vectorised: IPv4 text is
turned into an integer and looked up with ``search_sorted`` in the catalogue's disjoint
segments, so a 10M-row conn.log never becomes Python objects.
"""

from sensor_plugins.analysis.detect.frames import CONN_KEYS, ensure
from sensor_plugins.analysis.detect.nk import tag_nk
from sensor_plugins.analysis.detect.pipeline import (
    CONN_COLUMNS,
    analysis,
    detect,
    detection_plan,
    finalise,
    materialise,
    nk_traffic_plan,
    prepare,
)
from sensor_plugins.analysis.detect.tls import TOR_ISSUER_RE, TOR_SUBJECT_RE, tls_sessions
from sensor_plugins.analysis.detect.tor import tor_matches
from sensor_plugins.analysis.detect.traffic import merge_nk_groups, nk_groups, nk_traffic_findings

__all__ = [
    "CONN_COLUMNS", "CONN_KEYS", "TOR_ISSUER_RE", "TOR_SUBJECT_RE",
    "analysis", "detect", "detection_plan", "ensure", "finalise", "materialise", "merge_nk_groups",
    "nk_groups", "nk_traffic_findings", "nk_traffic_plan", "prepare", "tag_nk", "tls_sessions", "tor_matches",
]
