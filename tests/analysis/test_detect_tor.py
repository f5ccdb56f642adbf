"""tor detections: listed relays and exits (within their listed dates), the certificate
heuristic, our notice, and the per-host repeat pattern, on real zat logs."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from sensor_plugins.analysis.detect import TOR_ISSUER_RE, TOR_SUBJECT_RE, detect
from sensor_plugins.analysis.logs import load_logset
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list

FIX = Path(__file__).parent / "fixtures" / "logs"
ZAT = FIX / "zat"
# The two Tor-style responders of tor_ssl.log (2013-12-30) that are on the 2024 relay list.
LISTED = ("131.188.40.188", "193.11.164.243")


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def tor_list(tmp_path: Path, role: str, fetched: str, addresses: tuple[str, ...]) -> Path:
    path = tmp_path / f"{role}-{fetched}.lst"
    path.write_text(f"# role: {role}\n# fetched: {fetched}\n" + "".join(a + "\n" for a in addresses))
    return path


def header_and_rows(path: Path) -> tuple[list[str], list[str]]:
    lines = path.read_text().splitlines(keepends=True)
    return ([x for x in lines if x.startswith("#") and not x.startswith("#close")],
            [x for x in lines if not x.startswith("#")])


def set_field(row: str, header: list[str], name: str, value: str) -> str:
    names = next(h for h in header if h.startswith("#fields")).rstrip("\n").split("\t")[1:]
    cells = row.rstrip("\n").split("\t")
    cells[names.index(name)] = value
    return "\t".join(cells) + "\n"


def reason(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.filter(pl.col("reason") == name)


def run(paths: list[Path], catalogue, lists: list[Path] | None = None) -> pl.DataFrame:
    return detect(load_logset(paths), catalogue, load_tor_list(lists), scope="all")


def test_relay_listed_on_the_day_is_tor_relay(tmp_path, catalogue) -> None:
    lists = [tor_list(tmp_path, "relay", "2013-12-30", LISTED)]
    found = reason(run([ZAT / "tor_ssl.log"], catalogue, lists), "tor-relay")
    assert sorted(found["resp_h"]) == sorted(LISTED)


def test_relay_listed_years_later_is_not_tor_then(catalogue) -> None:
    # The bundled 2024 lists hold both addresses; a 2013 connection must not count.
    found = reason(run([ZAT / "tor_ssl.log"], catalogue), "tor-relay")
    assert found.height == 0


def test_exit_listed_on_the_day_is_tor_exit_with_list_evidence(tmp_path, catalogue) -> None:
    lists = [tor_list(tmp_path, "exit", "2013-12-31", LISTED[:1])]
    found = reason(run([ZAT / "tor_ssl.log"], catalogue, lists), "tor-exit")
    evidence = json.loads(found["evidence"][0])
    assert (evidence["list"], evidence["listed_last"]) == ("exit-2013-12-31.lst", "2013-12-31")


def test_unlisted_address_is_no_tor_exit(tmp_path, catalogue) -> None:
    lists = [tor_list(tmp_path, "exit", "2013-12-30", ("192.0.2.1",))]
    assert reason(run([ZAT / "tor_ssl.log"], catalogue, lists), "tor-exit").height == 0


def test_tor_certificate_heuristic_finds_every_tor_handshake(catalogue) -> None:
    # The shared data README counts 54 Tor-style handshakes in tor_ssl.log.
    assert reason(run([ZAT / "tor_ssl.log"], catalogue), "tor-cert").height == 54


def test_ordinary_certificates_are_not_tor(catalogue) -> None:
    assert reason(run([ZAT / "ssl.log"], catalogue), "tor-cert").height == 0


@pytest.mark.parametrize("subject", [
    "CN=www.n2nxkwod5.net.evil.example",     # suffix after the .net
    "O=x,CN=www.n2nxkwod5.net",              # not the whole subject
    "CN=www.n2nxkw.net",                     # 6 characters: below Tor's 8
    "CN=www.N2NXKWOD5.net",                  # Tor's names are lower-case base32
    "CN=www.n2nxkwod9.net",                  # 9 is not a base32 digit
])
def test_tor_certificate_regex_is_anchored_and_exact(subject) -> None:
    assert pl.Series([subject]).str.contains(TOR_SUBJECT_RE).to_list() == [False]


def test_tor_issuer_regex_takes_a_real_tor_issuer() -> None:
    assert pl.Series(["CN=www.4i6cko5t3khaax.com"]).str.contains(TOR_ISSUER_RE).to_list() == [True]


def test_hostile_subject_in_a_real_row_is_not_tor(tmp_path, catalogue) -> None:
    header, rows = header_and_rows(ZAT / "tor_ssl.log")
    row = next(r for r in rows if "131.188.40.188" in r)
    log = tmp_path / "ssl.log"
    log.write_text("".join(header) + set_field(row, header, "subject", "CN=www.n2nxkwod5.net.evil.example"))
    assert reason(run([log], catalogue), "tor-cert").height == 0


def test_our_tor_notice_is_tor_notice(tmp_path, catalogue) -> None:
    header, rows = header_and_rows(ZAT / "notice.log")
    row = set_field(rows[0], header, "note", "NKSensor::Tor_Traffic")
    log = tmp_path / "notice.log"
    log.write_text("".join(header) + row)
    assert reason(run([log], catalogue), "tor-notice").height == 1


def test_other_notices_are_not_tor_notice(catalogue) -> None:
    assert reason(run([ZAT / "notice.log"], catalogue), "tor-notice").height == 0


def repeat_log(tmp_path: Path, days: int) -> Path:
    # Real conn.log rows of 192.168.33.10 -> 54.230.86.87:443, spread over ``days`` days.
    header, rows = header_and_rows(ZAT / "conn.log")
    names = next(h for h in header if h.startswith("#fields")).rstrip("\n").split("\t")[1:]
    picked = [r for r in rows if r.split("\t")[names.index("id.resp_h")] == "54.230.86.87"][:4]
    shifted = []
    for i, row in enumerate(picked):
        ts = float(row.split("\t")[0]) + 86400 * (i % days)
        shifted.append(set_field(row, header, "ts", f"{ts:.6f}"))
    log = tmp_path / "conn.log"
    log.write_text("".join(header) + "".join(shifted))
    return log


def test_same_relay_on_several_days_is_tor_repeat(tmp_path, catalogue) -> None:
    lists = [tor_list(tmp_path, "relay", "2013-09-16", ("54.230.86.87",))]
    found = reason(run([repeat_log(tmp_path, 2)], catalogue, lists), "tor-repeat")
    evidence = json.loads(found["evidence"][0])
    assert (found["orig_h"][0], evidence["day_count"]) == ("192.168.33.10", 2)


def test_same_relay_on_one_day_is_no_tor_repeat(tmp_path, catalogue) -> None:
    lists = [tor_list(tmp_path, "relay", "2013-09-16", ("54.230.86.87",))]
    assert reason(run([repeat_log(tmp_path, 1)], catalogue, lists), "tor-repeat").height == 0
