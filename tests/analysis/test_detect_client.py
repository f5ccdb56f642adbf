"""Client findings: what the ClientHello offered, from the package's ``ja4`` and ``nk_client_ciphers``.

The logs are real Zeek 7.0.11 output with the nk-sensor package over Zeek's own TLS test
traces (tests/FIXTURES.md); none of those hosts is catalogued, so the tests use scope all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from sensor_plugins.analysis.detect import detect
from sensor_plugins.analysis.logs import load_logset
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.clients import ClientTableError, load_client_table, parse_table
from sensor_plugins.inputs.feeds import load_tor_list

LOGS = Path(__file__).parent / "fixtures" / "logs"
JA4_LOGS = LOGS / "ja4"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inputs():
    return load_catalogue(), load_tor_list(None)


def client_findings(paths: list[Path], inputs, clients=None) -> pl.DataFrame:
    catalogue, tor = inputs
    found = detect(load_logset(paths), catalogue, tor, scope="all", clients=clients)
    return found.filter(pl.col("category") == "client")


def by_reason(found: pl.DataFrame) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in found.iter_rows(named=True):
        out.setdefault(row["reason"], []).append({**row, "evidence": json.loads(row["evidence"])})
    return out


def test_an_old_client_that_offers_rc4_gives_weak_offer_and_old_max_version(inputs):
    found = by_reason(client_findings([JA4_LOGS / "tls1_1"], inputs))
    assert set(found) == {"weak-offer", "old-max-version"}
    (weak,) = found["weak-offer"]
    assert weak["evidence"]["ja4"] == "t11i500400_59a6c70126c8_282f11336259"
    assert weak["evidence"]["offered"] == 50
    assert weak["evidence"]["weak_suites"] == [
        "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "TLS_ECDH_RSA_WITH_RC4_128_SHA",
        "TLS_ECDH_ECDSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_RC4_128_MD5",
    ]
    # RC4 is broken but not free: medium. Export, NULL or anonymous suites make it high.
    assert weak["severity"] == "medium"
    (old,) = found["old-max-version"]
    assert old["evidence"]["max_version"] == "TLS 1.1" and old["severity"] == "medium"
    assert (old["orig_h"], old["orig_p"], old["resp_p"]) == ("192.168.17.58", 62987, 443)


def test_an_sslv2_client_offering_export_suites_is_high_on_both_reasons(inputs):
    found = by_reason(client_findings([JA4_LOGS / "ssl-v2"], inputs))
    assert {r: [f["severity"] for f in fs] for r, fs in found.items()} == {
        "weak-offer": ["high"], "old-max-version": ["high"]}
    weak = found["weak-offer"][0]["evidence"]["weak_suites"]
    assert "SSLv20_CK_RC4_128_EXPORT40_WITH_MD5" in weak
    # The SSLv2 name of triple DES is not single DES.
    assert "SSLv20_CK_DES_192_EDE3_CBC_WITH_MD5" not in weak
    assert found["old-max-version"][0]["evidence"]["max_version"] == "SSL 2.0"


def test_a_tls10_client_is_old_and_its_rc4_offer_weak(inputs):
    found = by_reason(client_findings([JA4_LOGS / "signed_certificate_timestamp_tls1_0"], inputs))
    assert set(found) == {"old-max-version", "weak-offer"}
    assert found["old-max-version"][0]["evidence"]["max_version"] == "TLS 1.0"
    assert found["weak-offer"][0]["evidence"]["offered"] == 50


def test_modern_browsers_are_named_from_the_bundled_table_and_nothing_else(inputs):
    found = by_reason(client_findings([JA4_LOGS / "chrome-1250-tls-x25519-kyber", JA4_LOGS / "tls13-ech",
                                       JA4_LOGS / "dhe"], inputs))
    assert set(found) == {"known-client"}
    names = sorted((f["evidence"]["ja4"], f["evidence"]["client"]) for f in found["known-client"])
    assert names == [
        ("t13d1516h2_8daaf6152771_02713d6af862", "Chromium Browser"),
        ("t13d1517h2_8daaf6152771_b1ff8ab2d16f", "Chromium Browser"),
        ("t13d1517h2_8daaf6152771_b1ff8ab2d16f", "Chromium Browser"),
    ]
    assert {f["evidence"]["source"] for f in found["known-client"]} == {"FoxIO ja4plus-mapping.csv 2025-09-05"}
    assert {f["severity"] for f in found["known-client"]} == {"low"}


def test_a_site_table_adds_names_and_keeps_the_bundled_ones(inputs, tmp_path):
    site = tmp_path / "clients.tsv"
    site.write_text("# our own\nt12i020300_ea1f27bcdcc2_15cf763851c4\tKoryo Link updater\tsite, 2026-12\n"
                    "t13d1516h2_8daaf6152771_02713d6af862\tNaenara Browser\tsite, 2026-12\n")
    table = load_client_table([site])
    found = by_reason(client_findings([JA4_LOGS / "dhe", JA4_LOGS / "chrome-1250-tls-x25519-kyber"],
                                      inputs, clients=table))
    assert sorted(f["evidence"]["client"] for f in found["known-client"]) == [
        "Chromium Browser / Naenara Browser", "Koryo Link updater"]


def test_json_and_tsv_logs_give_the_same_client_findings(inputs):
    tsv = client_findings([JA4_LOGS / "tls1_1"], inputs).drop("uid")
    js = client_findings([JA4_LOGS / "json__tls1_1"], inputs).drop("uid")
    assert tsv.height == 2
    assert js.to_dicts() == tsv.to_dicts()


def test_stock_logs_have_no_client_findings(inputs):
    assert client_findings([LOGS / "zeek7"], inputs).height == 0


@pytest.mark.parametrize(("line", "message"), [
    ("t13d1516h2_8daaf6152771_02713d6af862\tChrome", "expected 3 tab-separated fields"),
    ("t13d1516h2_8daaf6152771\tChrome\tme", "not a JA4 fingerprint"),
    ("T13d1516h2_8daaf6152771_02713d6af862\tChrome\tme", "not a JA4 fingerprint"),
    ("t13d1516h2_8daaf6152771_02713d6af862\tChr\x1bome\tme", "printable"),
    ("t13d1516h2_8daaf6152771_02713d6af862\t\tme", "printable"),
    ("t13d1516h2_8daaf6152771_02713d6af862\t" + "x" * 81 + "\tme", "printable"),
])
def test_a_bad_table_line_is_refused_with_its_file_and_line(line, message):
    with pytest.raises(ClientTableError, match=rf"^clients\.tsv:2: .*{message}"):
        parse_table("# header\n" + line + "\n", "clients.tsv")


def test_the_bundled_table_parses_and_has_provenance_for_every_entry():
    table = load_client_table()
    assert len(table.names) >= 30
    assert all(table.sources[ja4] for ja4 in table.names)
    # Programs built on one TLS stack share a fingerprint; both names stay.
    assert table.label("t13d190900_9dc949149365_97f8aa674fd9") == "GoLang / Sliver Agent (GoLang)"


def run_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sensor_plugins", "analyze", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


def test_analyze_says_once_that_stock_logs_have_no_client_findings_and_goes_on():
    proc = run_analyze("--scope", "all", "--format", "jsonl", str(LOGS / "zeek7"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("no ja4 column") == 1
    assert "nk-sensor Zeek package" in proc.stderr
    assert '"category":"weak-tls"' in proc.stdout


def test_analyze_reads_a_site_table_and_refuses_a_bad_one_in_one_line(tmp_path):
    good = tmp_path / "ok.tsv"
    good.write_text("t12i020300_ea1f27bcdcc2_15cf763851c4\tKoryo Link updater\tsite\n")
    proc = run_analyze("--scope", "all", "--format", "jsonl", "--clients", str(good), str(JA4_LOGS / "dhe"))
    assert proc.returncode == 1 and "Koryo Link updater" in proc.stdout
    bad = tmp_path / "bad.tsv"
    bad.write_text("t12i020300_ea1f27bcdcc2_15cf763851c4 Koryo\n")
    proc = run_analyze("--scope", "all", "--clients", str(bad), str(JA4_LOGS / "dhe"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"sensor-plugins: error: {bad}:1: expected 3 tab-separated fields "
                                                "(ja4, name, source), found 1"]


def test_follow_mode_gives_the_client_findings_a_batch_run_gives(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    (live / "ssl.log").write_bytes((JA4_LOGS / "tls1_1" / "ssl.log").read_bytes())
    followed = run_analyze("--follow", str(live), "--once", "--scope", "all", "--format", "jsonl")
    batch = run_analyze("--scope", "all", "--format", "jsonl", str(live))
    assert followed.returncode == batch.returncode == 1, followed.stderr + batch.stderr

    def client(out: str) -> list[dict]:
        rows = [json.loads(line) for line in out.splitlines()]
        return sorted((r for r in rows if r["category"] == "client"), key=lambda r: r["reason"])

    assert [r["reason"] for r in client(followed.stdout)] == ["old-max-version", "weak-offer"]
    assert client(followed.stdout) == client(batch.stdout)


def test_follow_mode_names_clients_from_a_site_table_as_a_batch_run_does(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    (live / "ssl.log").write_bytes((JA4_LOGS / "dhe" / "ssl.log").read_bytes())
    site = tmp_path / "clients.tsv"
    site.write_text("t12i020300_ea1f27bcdcc2_15cf763851c4\tKoryo Link updater\tsite, 2026-12\n")
    common = ("--scope", "all", "--format", "jsonl", "--clients", str(site))
    followed = run_analyze("--follow", str(live), "--once", *common)
    batch = run_analyze(*common, str(live))
    assert followed.returncode == batch.returncode == 1, followed.stderr + batch.stderr

    def known(out: str) -> list[dict]:
        rows = [json.loads(line) for line in out.splitlines()]
        return sorted((r for r in rows if r["reason"] == "known-client"), key=lambda r: r["evidence"]["ja4"])

    assert [r["evidence"]["client"] for r in known(followed.stdout)] == ["Koryo Link updater"]
    assert known(followed.stdout) == known(batch.stdout)
