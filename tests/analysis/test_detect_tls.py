"""weak-tls detections on real Zeek 7 and zat ssl.log/x509.log rows, one reason a test."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from sensor_plugins.analysis.detect import detect, tls_sessions
from sensor_plugins.analysis.logs import load_logset
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list

FIX = Path(__file__).parent / "fixtures" / "logs"
ZAT = FIX / "zat"
ZEEK7 = FIX / "zeek7"


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture(scope="module")
def tor():
    return load_tor_list()


def findings(paths: list[Path], catalogue, tor, reason: str) -> pl.DataFrame:
    frame = detect(load_logset(paths), catalogue, tor, scope="all")
    return frame.filter(pl.col("reason") == reason)


def trace(name: str) -> list[Path]:
    return [ZEEK7 / name]


CASES = [
    # reason, a trace that has it, a trace that does not
    ("old-version", "tls__tls1_1", "tls__signed_certificate_timestamp"),
    ("weak-cipher", "tls__ssl.v3", "tls__tls1_1"),
    ("weak-key", "tls__ssl.v3", "tls__signed_certificate_timestamp"),
    ("weak-signature", "tls__ssl.v3", "tls__signed_certificate_timestamp"),
    ("invalid-cert", "tls__ssl.v3", "tls__signed_certificate_timestamp"),
    ("expired-cert", "tls__tls-expired-cert", "tls__ssl.v3"),
    ("self-signed", "tls__x509-generalizedtime", "tls__ssl.v3"),
    ("sni-mismatch", "tls__certificate-with-sct", "tls__signed_certificate_timestamp"),
    ("no-sni", "tls__ssl.v3", "tls__certificate-with-sct"),
]


@pytest.mark.parametrize(("reason", "positive", "negative"), CASES, ids=[c[0] for c in CASES])
def test_reason_found_on_the_trace_that_has_it(reason, positive, negative, catalogue, tor) -> None:
    assert findings(trace(positive), catalogue, tor, reason).height >= 1


@pytest.mark.parametrize(("reason", "positive", "negative"), CASES, ids=[c[0] for c in CASES])
def test_reason_absent_on_the_trace_without_it(reason, positive, negative, catalogue, tor) -> None:
    assert findings(trace(negative), catalogue, tor, reason).height == 0


def test_sslv2_export_era_suite_is_weak_and_high_severity(catalogue, tor) -> None:
    found = findings(trace("tls__ssl-v2"), catalogue, tor, "old-version")
    assert found["severity"].to_list() == ["high"]


def test_weak_key_evidence_names_the_key_length(catalogue, tor) -> None:
    found = findings(trace("tls__ssl.v3"), catalogue, tor, "weak-key")
    assert json.loads(found["evidence"][0])["key_length"] == 1024


def test_small_dh_parameters_are_a_weak_key(catalogue, tor) -> None:
    found = findings(trace("tls__dhe"), catalogue, tor, "weak-key")
    assert json.loads(found["evidence"][0])["dh_param_size"] == 1024


def test_expired_cert_evidence_has_the_validity_end(catalogue, tor) -> None:
    found = findings(trace("tls__tls-expired-cert"), catalogue, tor, "expired-cert")
    assert json.loads(found["evidence"][0])["not_valid_after"].startswith("2014-03-04")


def test_old_ssl_log_with_inline_certificate_fields_is_analysed(catalogue, tor) -> None:
    # zat's 2014 ssl.log predates x509.log; 36 of its 37 sessions use RC4-MD5, one RC4-SHA.
    found = findings([ZAT / "ssl.log"], catalogue, tor, "weak-cipher")
    assert found.height == 37


def test_valid_sessions_of_old_ssl_log_are_not_invalid_cert(catalogue, tor) -> None:
    assert findings([ZAT / "ssl.log"], catalogue, tor, "invalid-cert").height == 0


def test_x509_join_through_file_ids() -> None:
    # zat's JSON ssl/x509 logs link certificates by cert_chain_fuids -> x509 id; the key
    # length exists only in x509.log, so it shows whether the join worked.
    logs = load_logset([ZAT / "json" / "ssl.log", ZAT / "json" / "x509.log"])
    sessions = tls_sessions(logs.ssl, logs.x509).collect()
    first = sessions.filter(pl.col("uid") == "CjcxdU3eOVeFManjLb")
    assert first["c_key_len"].to_list() == [256]


def test_x509_join_through_fingerprints() -> None:
    logs = load_logset(trace("tls__ssl.v3"))
    sessions = tls_sessions(logs.ssl, logs.x509).collect()
    assert sessions["c_key_len"].to_list() == [1024, 1024, 1024]


def test_wildcard_certificate_matches_its_sni(catalogue, tor) -> None:
    # mail.aol.com against CN=*.ycpi.mail.aol.com / SAN *.mail.aol.com: computed, no mismatch.
    frame = detect(load_logset([ZAT / "json" / "ssl.log", ZAT / "json" / "x509.log"]), catalogue, tor, "all")
    first = frame.filter((pl.col("uid") == "CjcxdU3eOVeFManjLb") & (pl.col("reason") == "sni-mismatch"))
    assert first.height == 0


def test_computed_sni_mismatch_on_tor_handshakes(catalogue, tor) -> None:
    # tor_ssl.log has no sni_matches_cert; Tor's SNI www.X.com never names its cert www.Y.net.
    found = findings([ZAT / "tor_ssl.log"], catalogue, tor, "sni-mismatch")
    assert set(found["confidence"]) == {"medium"} and found.height >= 54


def test_scope_nk_hides_sessions_outside_the_catalogue(catalogue, tor) -> None:
    frame = detect(load_logset(trace("tls__ssl.v3")), catalogue, tor, scope="nk")
    assert frame.height == 0


def test_scope_nk_keeps_sessions_with_a_catalogued_endpoint(tmp_path, tor) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(
        "ranges:\n  - name: test-dresdner\n    cidr: 194.127.84.0/24\n    country: DE\n"
        "    owner: test\n    source: test catalogue covering a real log\n    confidence: low\n"
    )
    frame = detect(load_logset(trace("tls__ssl.v3")), load_catalogue(path), tor, scope="nk")
    assert set(frame.filter(pl.col("category") == "weak-tls")["range"]) == {"test-dresdner"}
