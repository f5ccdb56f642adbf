"""The benchmark log generator writes Zeek 7 TSV logs that real readers accept, deterministically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from zat.log_to_dataframe import LogToDataFrame

from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list

MAKE_LOGS = Path(__file__).resolve().parents[2] / "bench" / "make_logs.py"
LOGS = ("conn", "dns", "http", "ssl", "x509")
ROWS = 20_000


def make_logs(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(MAKE_LOGS), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-logs")
    done = make_logs(out, "--rows", str(ROWS), "--seed", "7")
    assert done.returncode == 0, done.stderr
    return out


def rows_of(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines() if not line.startswith("#")]


def fields_of(path: Path) -> list[str]:
    for line in path.read_text().splitlines():
        if line.startswith("#fields\t"):
            return line.split("\t")[1:]
    raise AssertionError(f"{path} has no #fields line")


def column(path: Path, name: str) -> list[str]:
    index = fields_of(path).index(name)
    return [row[index] for row in rows_of(path)]


def test_same_seed_writes_identical_logs(logs: Path, tmp_path: Path) -> None:
    assert make_logs(tmp_path, "--rows", str(ROWS), "--seed", "7").returncode == 0
    assert all((tmp_path / f"{n}.log").read_bytes() == (logs / f"{n}.log").read_bytes() for n in LOGS)


def test_another_seed_writes_other_connections(logs: Path, tmp_path: Path) -> None:
    assert make_logs(tmp_path, "--rows", "2000", "--seed", "8").returncode == 0
    assert set(column(tmp_path / "conn.log", "uid")).isdisjoint(column(logs / "conn.log", "uid"))


@pytest.mark.parametrize("name", LOGS)
def test_zat_reads_every_row_and_column(logs: Path, name: str) -> None:
    frame = LogToDataFrame().create_dataframe(str(logs / f"{name}.log"))
    # zat turns the ts column into the index, so it shows one column fewer than #fields.
    assert (len(frame), ["ts", *frame.columns]) == (len(rows_of(logs / f"{name}.log")), fields_of(logs / f"{name}.log"))


def test_rows_have_as_many_values_as_fields(logs: Path) -> None:
    widths = {name: {len(row) for row in rows_of(logs / f"{name}.log")} for name in LOGS}
    assert widths == {name: {len(fields_of(logs / f"{name}.log"))} for name in LOGS}


def test_manifest_counts_match_the_files(logs: Path) -> None:
    manifest = json.loads((logs / "manifest.json").read_text())
    assert manifest["logs"] == {name: len(rows_of(logs / f"{name}.log")) for name in LOGS}


def test_about_thirty_percent_of_connections_touch_the_catalogue(logs: Path) -> None:
    catalogue = load_catalogue()
    conn = logs / "conn.log"
    pairs = zip(column(conn, "id.orig_h"), column(conn, "id.resp_h"), strict=True)
    touching = sum(1 for a, b in pairs if catalogue.lookup(a) or catalogue.lookup(b))
    assert 0.27 <= touching / ROWS <= 0.33


def test_catalogue_share_is_a_choice(tmp_path: Path) -> None:
    """B1 is measured on a log set with another seed and mix than the one the code was tuned on."""
    done = make_logs(tmp_path, "--rows", "5000", "--seed", "2", "--catalogue-share", "0.1")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["catalogue_share"] == 0.1
    assert 0.07 <= manifest["catalogue_conn_rows"] / 5000 <= 0.13


def test_catalogue_count_in_manifest_is_exact(logs: Path) -> None:
    catalogue = load_catalogue()
    conn = logs / "conn.log"
    pairs = zip(column(conn, "id.orig_h"), column(conn, "id.resp_h"), strict=True)
    touching = sum(1 for a, b in pairs if catalogue.lookup(a) or catalogue.lookup(b))
    assert touching == json.loads((logs / "manifest.json").read_text())["catalogue_conn_rows"]


def test_tor_count_in_manifest_is_exact(logs: Path) -> None:
    tor = load_tor_list()
    conn = logs / "conn.log"
    pairs = zip(column(conn, "id.orig_h"), column(conn, "id.resp_h"), strict=True)
    on_list = sum(1 for a, b in pairs if a in tor.entries or b in tor.entries)
    assert on_list == json.loads((logs / "manifest.json").read_text())["tor_conn_rows"] > 0


def test_uris_and_subjects_carry_hash_characters(logs: Path) -> None:
    uris = [u for u in column(logs / "http.log", "uri") if "#" in u]
    subjects = [s for s in column(logs / "x509.log", "certificate.subject") if "#" in s]
    assert (len(uris) > 0, len(subjects) > 0) == (True, True)


def test_weak_and_strong_tls_both_appear(logs: Path) -> None:
    versions = set(column(logs / "ssl.log", "version"))
    assert {"TLSv10", "SSLv3", "TLSv12", "TLSv13"} <= versions


def test_every_protocol_row_belongs_to_a_connection(logs: Path) -> None:
    uids = set(column(logs / "conn.log", "uid"))
    assert all(set(column(logs / f"{name}.log", "uid")) <= uids for name in ("dns", "http", "ssl"))


def test_every_certificate_in_a_chain_is_in_x509_log(logs: Path) -> None:
    chained = {fp for chain in column(logs / "ssl.log", "cert_chain_fps") for fp in chain.split(",")}
    assert chained <= set(column(logs / "x509.log", "fingerprint"))


def test_unset_fields_are_written_as_dash(logs: Path) -> None:
    assert "-" in column(logs / "conn.log", "duration")


def test_bittorrent_tracker_announces_appear(logs: Path) -> None:
    assert any(u.startswith("/announce?info_hash=") for u in column(logs / "http.log", "uri"))


def test_zero_rows_is_refused_with_one_line(tmp_path: Path) -> None:
    done = make_logs(tmp_path / "out", "--rows", "0")
    assert (done.returncode, done.stderr.count("\n"), done.stderr.startswith("make_logs: error:")) == (2, 1, True)


def test_broken_catalogue_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ranges: [ {name: x, cidr: not-a-network} ]\n")
    done = make_logs(tmp_path / "out", "--rows", "100", "--catalogue", str(bad))
    assert (done.returncode, (tmp_path / "out").exists()) == (2, False)
