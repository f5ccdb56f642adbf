"""A real engine parses the scenario pcaps: Suricata 7 logs the TLS and HTTP each one claims."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sensor_plugins.scenarios import pcaps

pytestmark = [
    pytest.mark.suricata,
    pytest.mark.skipif(shutil.which("suricata") is None, reason="the suricata binary is not installed"),
]

# Only the loggers are needed: no rules, no unix socket. TLS on 9001 is found by probing.
MINIMAL_YAML = """%YAML 1.1
---
default-log-dir: {logdir}
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types:
        - tls:
            extended: yes
        - http:
            extended: yes
        - flow
        - anomaly:
            enabled: yes
            types:
              decode: yes
              stream: yes
              applayer: yes
app-layer:
  protocols:
    tls:
      enabled: yes
    http:
      enabled: yes
    bittorrent-dht:
      enabled: yes
unix-command:
  enabled: no
# As the shipped yaml: the midstream scenarios' sessions are parsed like the others.
stream:
  midstream: true
"""


def run_suricata(pcap: Path, workdir: Path) -> list[dict]:
    logdir = workdir / pcap.stem
    logdir.mkdir()
    config = workdir / f"{pcap.stem}.yaml"
    config.write_text(MINIMAL_YAML.format(logdir=logdir))
    subprocess.run(
        ["suricata", "-c", str(config), "-l", str(logdir), "-r", str(pcap), "--runmode", "single", "-k", "none"],
        check=True, capture_output=True, timeout=120,
    )
    return [json.loads(line) for line in (logdir / "eve.json").read_text().splitlines()]


@pytest.fixture(scope="module")
def eve(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    pcap_dir = tmp_path_factory.mktemp("engine-pcaps")
    workdir = tmp_path_factory.mktemp("engine-logs")
    return {path.stem: run_suricata(path, workdir) for path in pcaps.write_pcaps(pcap_dir)}


def events(eve: dict[str, list[dict]], name: str, kind: str) -> list[dict]:
    return [e for e in eve[name] if e["event_type"] == kind]


def suricata_dn(rfc4514: str) -> str:
    # Suricata prints the DN in certificate order ("C=US, O=..., CN=..."); RFC 4514 reverses it.
    return ", ".join(reversed(rfc4514.split(",")))


TLS_SCENARIOS = [n for n, s in pcaps.SCENARIOS.items() if s.tls]
CERT_SCENARIOS = [n for n, s in pcaps.SCENARIOS.items() if s.tls and s.tls.certificate]
HTTP_SCENARIOS = [n for n, s in pcaps.SCENARIOS.items() if s.http_uris]


@pytest.mark.parametrize("name", list(pcaps.SCENARIOS))
def test_suricata_reports_no_decoder_stream_or_parser_anomaly(eve, name):
    assert events(eve, name, "anomaly") == []


def test_suricata_calls_tls_1_0_tlsv1_and_sslv3_sslv3(eve):
    versions = [events(eve, n, "tls")[0]["tls"]["version"] for n in ("tls10-rc4-outside", "sslv3-outside")]
    assert versions == ["TLSv1", "SSLv3"]


@pytest.mark.parametrize("name", TLS_SCENARIOS)
def test_suricata_logs_the_tls_version_and_sni(eve, name):
    facts = pcaps.SCENARIOS[name].tls
    logged = [(e["tls"]["version"], e["tls"].get("sni")) for e in events(eve, name, "tls")]
    assert logged == [(facts.suricata_version, facts.server_name)]


@pytest.mark.parametrize("name", CERT_SCENARIOS)
def test_suricata_logs_the_certificate_subject_issuer_and_validity(eve, name):
    facts = pcaps.SCENARIOS[name].tls
    (tls,) = [e["tls"] for e in events(eve, name, "tls")]
    stamp = "%Y-%m-%dT%H:%M:%S"
    assert (tls["subject"], tls["issuerdn"], tls["notbefore"], tls["notafter"]) == (
        suricata_dn(facts.subject),
        suricata_dn(facts.issuer),
        facts.certificate.not_before.strftime(stamp),
        facts.certificate.not_after.strftime(stamp),
    )


def test_suricata_sees_no_certificate_in_the_tls13_scenario(eve):
    (tls,) = [e["tls"] for e in events(eve, "tls13-kp-star-jv-out", "tls")]
    assert "subject" not in tls and "issuerdn" not in tls


@pytest.mark.parametrize("name", HTTP_SCENARIOS)
def test_suricata_logs_the_http_uri_and_status(eve, name):
    logged = [(e["http"]["url"], e["http"]["status"]) for e in events(eve, name, "http")]
    assert logged == [(uri, 200) for uri in pcaps.SCENARIOS[name].http_uris]


def test_suricata_logs_the_torrent_download_content_type(eve):
    (http,) = [e["http"] for e in events(eve, "bittorrent-torrent-file-kp-star-jv-out", "http")]
    assert http["http_content_type"] == "application/x-bittorrent"


@pytest.mark.parametrize("name", ["bittorrent-dht-kp-china-netcom-out", "bittorrent-dht-outside"])
def test_suricata_identifies_the_dht_scenarios_as_bittorrent_dht(eve, name):
    assert [e["app_proto"] for e in events(eve, name, "flow")] == ["bittorrent-dht"]


@pytest.mark.parametrize("name", list(pcaps.SCENARIOS))
def test_suricata_sees_every_tcp_flow_closed_cleanly(eve, name):
    states = {e["flow"]["state"] for e in events(eve, name, "flow") if e["proto"] == "TCP"}
    assert states <= {"closed"}
