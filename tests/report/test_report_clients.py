"""The report's "TLS clients" section, on real Zeek logs of the client scenarios, in a real browser too.

Zeek with the nk-sensor package runs over five scenario pcaps whose NK hosts open TLS
connections: the Chromium-like, Tor-like, old (TLS 1.0 offering RC4, export, DES) and
SNI-less hellos, and the legacy RC4 client of ``tls10-rc4-kp-star-jv-out``. A site table
names the SNI-less client with a hostile ``<script>`` name, which must stay inert text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report_browser import CHART_BOXES, Browser, chromium  # noqa: F401  (chromium is a fixture)

from sensor_plugins.cli import main
from sensor_plugins.scenarios import pcaps

pytestmark = pytest.mark.zeek

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("client-browser-kp-star-jv-out", "client-tor-kp-china-netcom-out", "client-old-kp-satgate-out",
             "client-no-sni-kp-star-jv-out", "tls10-rc4-kp-star-jv-out")
HOSTILE_NAME = '<script>window.pwned=1;console.error("xss")</script>'


@pytest.fixture(scope="module")
def logs(scenario_runs) -> list[Path]:
    # Zeek's runs of every scenario, made once per session (tests/conftest.py).
    return [scenario_runs[name].log_dir for name in SCENARIOS]


@pytest.fixture(scope="module")
def outputs(logs, tmp_path_factory) -> tuple[dict, str, Path]:
    out = tmp_path_factory.mktemp("client-report")
    no_sni_ja4 = json.loads((Path(__file__).parents[1] / "sensors" / "fixtures" / "ja4" / "reference-scenarios.json")
                            .read_text())["pcaps"]["client-no-sni-kp-star-jv-out.pcap"][0]["ja4"][0]
    table = out / "clients.tsv"
    table.write_text(f"{no_sni_ja4}\t{HOSTILE_NAME}\tthis test\n")
    html, data = out / "report.html", out / "report.json"
    common = [*map(str, logs), "--clients", str(table)]
    assert main(["report", *common, "--html", str(html)]) == 0
    assert main(["report", *common, "--format", "json", "--json", str(data)]) == 0
    return json.loads(data.read_text()), html.read_text(), html


def test_every_nk_client_host_gets_its_fingerprints_with_first_and_last_seen(outputs):
    clients = outputs[0]["clients"]
    assert clients["available"] is True
    rows = {(f["host"], f["range"], f["ja4"][:10], f["connections"], f["weak_offer"]) for f in clients["fingerprints"]}
    assert rows == {
        (pcaps.KP_STAR_JV_HOST, "kp-star-jv", "t13d1516h2", 1, False),
        (pcaps.KP_STAR_JV_HOST, "kp-star-jv", "t12i080500", 1, False),
        (pcaps.KP_STAR_JV_HOST, "kp-star-jv", "t10d050200", 1, True),
        (pcaps.KP_CHINA_NETCOM_HOST, "kp-china-netcom", "t13d311000", 1, False),
        (pcaps.KP_SATGATE_HOST, "kp-satgate", "t10d130200", 1, True),
    }
    assert all(f["first_seen"] and f["first_seen"] == f["last_seen"] for f in clients["fingerprints"])


def test_known_clients_are_named_from_the_bundled_and_the_site_table(outputs):
    names = {f["ja4"][:10]: f["client"] for f in outputs[0]["clients"]["fingerprints"]}
    assert names["t13d1516h2"] == "Chromium Browser"
    assert names["t12i080500"] == HOSTILE_NAME
    assert names["t10d130200"] == ""


def test_two_of_five_nk_tls_client_connections_come_from_clients_offering_weak_suites(outputs):
    clients = outputs[0]["clients"]
    assert (clients["connections"], clients["weak_offer_connections"]) == (5, 2)
    html = outputs[1]
    assert "40.00% of\n5 NK TLS client connections" in html


def test_the_section_escapes_the_site_tables_names(outputs):
    html = outputs[1]
    assert HOSTILE_NAME not in html
    assert "&lt;script&gt;window.pwned=1;" in html
    assert 'id="chart-clients"' in html


def test_the_browser_shows_the_section_and_its_chart_and_runs_nothing(outputs, chromium, tmp_path):  # noqa: F811
    with Browser(chromium, tmp_path / "profile") as browser:
        browser.open(outputs[2].as_uri())
        assert browser.errors() == []
        boxes = {b["id"]: b for b in browser.evaluate(CHART_BOXES)}
        chart = boxes["chart-clients"]
        assert min(chart["width"], chart["height"], chart["shownWidth"], chart["shownHeight"]) > 0
        state = browser.evaluate(
            "JSON.stringify([typeof window.pwned, document.querySelectorAll('script').length,"
            " document.querySelector('#clients h2').innerText,"
            " document.querySelector('#clients').innerText.includes(" + json.dumps(HOSTILE_NAME) + ")])"
        )
        assert json.loads(state) == ["undefined", 0, "7. TLS clients", True]
        assert browser.evaluate("document.documentElement.scrollWidth") <= 1366


def test_stock_logs_say_the_section_needs_the_package(tmp_path):
    out = tmp_path / "report.html"
    stock = Path(__file__).parent / "fixtures" / "zeek7" / "tls__ssl.v3"
    assert main(["report", str(stock), "--html", str(out)]) == 0
    assert "client fingerprints need the nk-sensor Zeek package" in out.read_text()
