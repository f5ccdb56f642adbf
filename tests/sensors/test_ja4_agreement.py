"""JA4: the Zeek package, Suricata and FoxIO's reference agree on real ClientHellos.

The captures are Zeek's own TLS test traces (tests/sensors/fixtures/ja4/, provenance in
tests/FIXTURES.md). ``reference.json`` is what FoxIO's python ``ja4.py`` printed for them,
run outside the repository (its commit and command are in the file). Every ClientHello
the reference fingerprints must get the same string from the package's ``ja4`` in
ssl.log; Suricata's ``tls.ja4`` must equal it too, except where Suricata 7.0 departs from
JA4.md, each case named below with the value Suricata gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO

from sensor_plugins.runners import run_name, suricata, zeek
from sensor_plugins.scenarios import pcaps

pytestmark = [pytest.mark.zeek, pytest.mark.suricata]

FIXTURES = Path(__file__).parent / "fixtures" / "ja4"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text(encoding="utf-8"))
PCAPS = sorted(FIXTURES.glob("*.pcap"))
ALL_TRAFFIC = "redef NKSensor::ja4_scope = NKSensor::ALL_TRAFFIC;"

# (pcap, client port) -> Suricata 7.0's tls.ja4 where it is not JA4.md's.
SURICATA_DEPARTS = {
    # No signature_algorithms extension: JA4.md hashes the extension list alone, Suricata
    # hashes it with a trailing "_".
    ("tls1_1.pcap", 62987): "t11i500400_59a6c70126c8_e190e6f68b9b",
    ("signed_certificate_timestamp_tls1_0.pcap", 55726): "t10i500500_59a6c70126c8_38bc07ebd7c6",
    # supported_versions tops out at TLS 1.3 draft 16 (0x7f10): JA4 has no code for it
    # ("00"), Suricata skips the unknown version and reports the next one, 1.2.
    ("tls13draft16-chrome55.0.2879.0-canary-aborted.pcap", 53226): "t12d1715h2_67e6df579eba_1c40c51c0bfd",
    ("tls13draft16-chrome55.0.2879.0-canary-aborted.pcap", 53227): "t12d2015h2_49212685c681_1c40c51c0bfd",
}

# Hellos the reference cannot fingerprint: its ja4.py knows TLS over TCP and QUIC only (no
# DTLS), and tshark hands it no handshake fields for an SSLv2 record. Suricata 7.0 makes
# no JA4 for either. No second implementation checks these values; they pin the package's
# reading of JA4.md (DTLS "d" and the DTLS version codes, SSL 2.0 as "s2", no extensions
# as twelve zeros).
ZEEK_ONLY = {
    ("dtls1_0.pcap", 63721): "dd1i550400_26d3f80692a9_282f11336259",
    ("dtls1_2.pcap", 60934): "dd2i800500_9cedc1f1428b_a1e935682795",
    ("ssl-v2.pcap", 59062): "ts2i070000_ac46794890f0_000000000000",
}


def reference_first_hellos() -> dict[tuple[str, int], str]:
    """(pcap, client port) -> the reference's JA4 of the stream's first ClientHello."""
    return {(name, hello["srcport"]): hello["ja4"][0]
            for name, hellos in REFERENCE["pcaps"].items() for hello in hellos}


@pytest.fixture(scope="module")
def zeek_ja4(tmp_path_factory) -> dict[tuple[str, int], dict[str, str]]:
    """(pcap, client port) -> the package's ssl.log row, every pcap with ja4_scope ALL_TRAFFIC."""
    root = tmp_path_factory.mktemp("zeek-ja4")
    rows = {}
    for i, pcap in enumerate(PCAPS):
        run = zeek.run_pcap(pcap, REPO / "zeek_scripts", root / run_name(i, pcap), redefs=[ALL_TRAFFIC])
        for row in zeek.read_zeek_log(run.log_dir / "ssl.log"):
            rows[(pcap.name, int(row["id.orig_p"]))] = row
    return rows


@pytest.fixture(scope="module")
def suricata_ja4(tmp_path_factory) -> dict[tuple[str, int], str]:
    """(pcap, client port) -> tls.ja4 of eve's tls records, with the yaml that deploy installs."""
    root = tmp_path_factory.mktemp("suricata-ja4")
    suricata.replay(PCAPS, REPO / "suricata_rules", root)
    found = {}
    for i, pcap in enumerate(PCAPS):
        for line in (root / run_name(i, pcap) / "eve.json").read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event.get("event_type") == "tls" and "ja4" in event["tls"]:
                found[(pcap.name, int(event["src_port"]))] = event["tls"]["ja4"]
    return found


def test_the_reference_covers_the_cases_the_fingerprint_turns_on():
    hellos = reference_first_hellos()
    assert len(hellos) == 16
    prints = set(hellos.values())
    assert any(p.startswith("t13d") for p in prints)          # TLS 1.3 with SNI (and GREASE, chrome)
    assert any(p[3] == "i" for p in prints)                   # no SNI
    assert any(p[8:10] == "00" for p in prints)               # no ALPN
    assert any(p[8:10] == "h2" for p in prints)               # ALPN h2
    assert any(p[1:3] == "00" for p in prints)                # a version JA4 has no code for
    assert any(p[1:3] in ("10", "11") for p in prints)        # an old client without sig algs


def test_the_package_gives_the_reference_string_for_every_hello(zeek_ja4):
    expected = reference_first_hellos()
    got = {key: zeek_ja4[key].get("ja4") for key in expected if key in zeek_ja4}
    assert got == expected


def test_suricata_agrees_with_the_reference_except_where_it_departs_from_the_spec(suricata_ja4):
    expected = {**reference_first_hellos(), **SURICATA_DEPARTS}
    assert {key: suricata_ja4.get(key) for key in expected} == expected
    assert not set(suricata_ja4) - set(expected), "a tls.ja4 on a hello the reference does not know"


def test_dtls_and_sslv2_hellos_get_the_packages_reading_of_the_spec_and_none_from_suricata(zeek_ja4, suricata_ja4):
    assert {key: zeek_ja4[key]["ja4"] for key in ZEEK_ONLY} == ZEEK_ONLY
    assert not set(ZEEK_ONLY) & set(suricata_ja4)


def test_every_hello_gets_a_fingerprint_and_its_offered_suites_without_grease(zeek_ja4):
    assert set(zeek_ja4) == set(reference_first_hellos()) | set(ZEEK_ONLY)
    for key, row in zeek_ja4.items():
        suites = row["nk_client_ciphers"].split(",")
        assert f"{min(len(suites), 99):02d}" == row["ja4"][4:6], key
    chrome = zeek_ja4[("chrome-1250-tls-x25519-kyber.pcap", 13783)]["nk_client_ciphers"].split(",")
    assert chrome[:3] == ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
    assert not any("GREASE" in s or s.endswith("a0a") for s in chrome)


def test_outside_the_catalogue_the_package_adds_nothing_to_ssl_log(tmp_path):
    # None of these captures touches a catalogued range: with the default scope no row
    # gets a fingerprint.
    pcap = FIXTURES / "chrome-1250-tls-x25519-kyber.pcap"
    run = zeek.run_pcap(pcap, REPO / "zeek_scripts", tmp_path / "logs")
    rows = list(zeek.read_zeek_log(run.log_dir / "ssl.log"))
    assert len(rows) == 1
    assert rows[0]["ja4"] == "-" and rows[0]["nk_client_ciphers"] == "-"


# -- the client scenarios -------------------------------------------------------------------

SCENARIO_REFERENCE = json.loads((FIXTURES / "reference-scenarios.json").read_text(encoding="utf-8"))
CLIENT_SCENARIOS = sorted(name.removesuffix(".pcap") for name in SCENARIO_REFERENCE["pcaps"])
# The old client offers no signature_algorithms: Suricata's trailing "_" again.
SURICATA_SCENARIO_DEPARTS = {"client-old-kp-satgate-out": "t10d130200_316f3845b158_d9e3b8975ee8"}


@pytest.fixture(scope="module")
def scenario_pcaps(tmp_path_factory) -> list[Path]:
    return pcaps.write_pcaps(tmp_path_factory.mktemp("client-pcaps"), CLIENT_SCENARIOS)


def test_the_client_scenarios_are_the_ones_the_reference_was_run_on():
    assert sorted(n for n in pcaps.SCENARIOS if n.startswith("client-")) == CLIENT_SCENARIOS


def test_on_the_client_scenarios_the_package_in_its_default_scope_equals_the_reference(scenario_pcaps, tmp_path):
    # Every client host is catalogued: the default scope fingerprints them all.
    expected = {p.name.removesuffix(".pcap"): hellos[0]["ja4"][0]
                for p, hellos in ((Path(n), h) for n, h in SCENARIO_REFERENCE["pcaps"].items())}
    got = {}
    for i, pcap in enumerate(scenario_pcaps):
        run = zeek.run_pcap(pcap, REPO / "zeek_scripts", tmp_path / run_name(i, pcap))
        (row,) = list(zeek.read_zeek_log(run.log_dir / "ssl.log"))
        got[pcap.stem] = row["ja4"]
    assert got == expected
    assert got["client-browser-kp-star-jv-out"] == "t13d1516h2_8daaf6152771_02713d6af862"  # Chromium's own
    assert got["client-no-sni-kp-star-jv-out"].startswith("t12i0805")
    assert got["client-old-kp-satgate-out"].startswith("t10d1302")
    assert got["client-tor-kp-china-netcom-out"][3:10] == "d311000"  # SNI, 31 suites, 10 extensions, no ALPN


def test_on_the_client_scenarios_suricata_equals_the_reference_but_for_the_missing_signature_algorithms(
        scenario_pcaps, tmp_path):
    expected = {Path(n).stem: h[0]["ja4"][0] for n, h in SCENARIO_REFERENCE["pcaps"].items()}
    expected.update(SURICATA_SCENARIO_DEPARTS)
    suricata.replay(scenario_pcaps, REPO / "suricata_rules", tmp_path)
    got = {}
    for i, pcap in enumerate(scenario_pcaps):
        for line in (tmp_path / run_name(i, pcap) / "eve.json").read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event.get("event_type") == "tls":
                got[pcap.stem] = event["tls"]["ja4"]
    assert got == expected
