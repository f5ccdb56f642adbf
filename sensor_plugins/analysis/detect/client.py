"""What the TLS client offers, from the package's ``ja4`` and ``nk_client_ciphers`` in ssl.log.

A server-side check sees only what was negotiated; the ClientHello says what the client
would accept. ``weak-offer``: it offers RC4, export, NULL, anonymous or single-DES
suites (a downgrade away from being used). ``old-max-version``: the highest version it
offers is TLS 1.1 or lower (JA4's version characters: supported_versions if present,
else the hello's version). ``known-client``: the fingerprint is in the known-client
table (``sensor_plugins.inputs.clients``).

Stock Zeek logs have no ``ja4`` column; then there is nothing to read and no finding.
"""

from __future__ import annotations

import polars as pl

from sensor_plugins.analysis.detect.frames import LIST_UTF8, clip, finding
from sensor_plugins.inputs.clients import ClientTable

CLIENT_COLUMNS: dict[str, pl.DataType] = {"ja4": pl.Utf8(), "nk_client_ciphers": LIST_UTF8}
# Suites a client should no longer offer, by the names Zeek logs (SSL::cipher_desc).
# 3DES is left out: browsers offered it until 2023 and it is weak, not broken.
WEAK_OFFER_RE = r"(^|_)(EXPORT[0-9]*|RC4|NULL|anon|DES_CBC|DES40|DES_64)(_|$)"
# JA4 version characters (positions 1-2) at or below TLS 1.1; "d1" is DTLS 1.0, built on TLS 1.1.
OLD_MAX_VERSIONS = {"s2": "SSL 2.0", "s3": "SSL 3.0", "10": "TLS 1.0", "11": "TLS 1.1", "d1": "DTLS 1.0"}
MAX_EVIDENCE_SUITES = 20


NO_FINGERPRINTS_NOTE = ("sensor-plugins: warning: ssl.log has no ja4 column, so there are no client findings "
                        "(weak-offer, old-max-version, known-client): they need the nk-sensor Zeek package on "
                        "the sensor")


def has_fingerprints(columns: object) -> bool:
    """Whether an ssl.log with these columns was written with the package's JA4 script."""
    return "ja4" in columns  # type: ignore[operator]


def max_version_code() -> pl.Expr:
    return pl.col("ja4").str.slice(1, 2)


def weak_suites() -> pl.Expr:
    return pl.col("nk_client_ciphers").list.eval(pl.element().filter(pl.element().str.contains(WEAK_OFFER_RE)))


def client_conditions() -> dict[str, pl.Expr]:
    """reason -> the condition on a client row (never null); known-client is a join, not here."""
    return {
        "weak-offer": (weak_suites().list.len() > 0).fill_null(False),
        "old-max-version": max_version_code().is_in(list(OLD_MAX_VERSIONS)).fill_null(False),
    }


def _evidence(**extra: pl.Expr) -> dict[str, pl.Expr]:
    return {"ja4": pl.col("ja4"), "server_name": clip(pl.col("server_name")), **extra}


def known_clients_frame(table: ClientTable) -> pl.LazyFrame:
    rows = [(ja4, table.label(ja4), table.sources[ja4]) for ja4 in table.names]
    return pl.LazyFrame(rows, schema={"ja4": pl.Utf8(), "_client": pl.Utf8(), "_client_source": pl.Utf8()},
                        orient="row")


def client_findings(client: pl.LazyFrame, table: ClientTable) -> list[pl.LazyFrame]:
    """One finding per (session, reason) for the ssl.log rows that carry a ``ja4``."""
    cond = client_conditions()
    version_name = max_version_code().replace_strict(OLD_MAX_VERSIONS, default=None)
    very_old = max_version_code().is_in(["s2", "s3"])
    grave = pl.col("nk_client_ciphers").list.eval(
        pl.element().str.contains(r"(^|_)(EXPORT[0-9]*|NULL|anon)(_|$)")).list.any()
    known = client.join(known_clients_frame(table), on="ja4", how="inner")
    return [
        finding(client.filter(cond["weak-offer"]), "ssl", "weak-offer",
                _evidence(weak_suites=weak_suites().list.head(MAX_EVIDENCE_SUITES),
                          offered=pl.col("nk_client_ciphers").list.len()),
                severity=pl.when(grave.fill_null(False)).then(pl.lit("high")).otherwise(pl.lit("medium"))),
        finding(client.filter(cond["old-max-version"]), "ssl", "old-max-version",
                _evidence(max_version=version_name),
                severity=pl.when(very_old).then(pl.lit("high")).otherwise(pl.lit("medium"))),
        finding(known, "ssl", "known-client",
                _evidence(client=pl.col("_client"), source=pl.col("_client_source"))),
    ]
