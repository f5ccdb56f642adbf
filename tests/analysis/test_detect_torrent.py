"""torrent detections on real Zeek logs; rows our Zeek package would add are real rows
with the one field that package sets changed."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from sensor_plugins.analysis.detect import detect
from sensor_plugins.analysis.logs import load_logset
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list

FIX = Path(__file__).parent / "fixtures" / "logs"
ZAT = FIX / "zat"
TRACKER = FIX / "zeek7" / "bittorrent__tracker"


@pytest.fixture(scope="module")
def inputs():
    return load_catalogue(), load_tor_list()


def header_and_rows(path: Path) -> tuple[list[str], list[str]]:
    lines = path.read_text().splitlines(keepends=True)
    return ([x for x in lines if x.startswith("#") and not x.startswith("#close")],
            [x for x in lines if not x.startswith("#")])


def set_fields(row: str, header: list[str], **values: str) -> str:
    names = next(h for h in header if h.startswith("#fields")).rstrip("\n").split("\t")[1:]
    cells = row.rstrip("\n").split("\t")
    for name, value in values.items():
        cells[names.index(name.replace("__", "."))] = value
    return "\t".join(cells) + "\n"


def one_row_log(tmp_path: Path, source: Path, name: str, **values: str) -> Path:
    header, rows = header_and_rows(source)
    path = tmp_path / name
    path.write_text("".join(header) + set_fields(rows[0], header, **values))
    return path


def reason(paths: list[Path], inputs, name: str) -> pl.DataFrame:
    catalogue, tor = inputs
    frame = detect(load_logset(paths), catalogue, tor, scope="all")
    return frame.filter(pl.col("reason") == name)


def test_tracker_announce_in_real_http_log(inputs) -> None:
    found = reason([TRACKER], inputs, "tracker-announce")
    assert json.loads(found["evidence"][0])["user_agent"] == "Deluge 1.3.15"


def test_ordinary_http_is_no_tracker_announce(inputs) -> None:
    assert reason([ZAT / "http.log"], inputs, "tracker-announce").height == 0


def test_announce_without_info_hash_is_no_tracker_announce(tmp_path, inputs) -> None:
    log = one_row_log(tmp_path, TRACKER / "http.log", "http.log", uri="/announce?peer_id=x&port=6881")
    assert reason([log], inputs, "tracker-announce").height == 0


def test_our_tracker_notice_is_tracker_announce(tmp_path, inputs) -> None:
    log = one_row_log(tmp_path, ZAT / "notice.log", "notice.log", note="NKSensor::BitTorrent",
                      sub="BitTorrent UDP tracker connect")
    assert reason([log], inputs, "tracker-announce").height == 1


def test_handshake_notice_is_bittorrent_handshake(tmp_path, inputs) -> None:
    log = one_row_log(tmp_path, ZAT / "notice.log", "notice.log", note="NKSensor::BitTorrent",
                      sub="peer-wire handshake")
    assert reason([log], inputs, "bittorrent-handshake").height == 1


def test_bittorrent_service_in_conn_is_bittorrent_handshake(tmp_path, inputs) -> None:
    log = one_row_log(tmp_path, ZAT / "conn.log", "conn.log", service="bittorrent")
    assert reason([log], inputs, "bittorrent-handshake").height == 1


def test_real_conn_log_has_no_bittorrent_handshake(inputs) -> None:
    assert reason([ZAT / "conn.log"], inputs, "bittorrent-handshake").height == 0


def test_dht_notice_is_dht_not_handshake(tmp_path, inputs) -> None:
    log = one_row_log(tmp_path, ZAT / "notice.log", "notice.log", note="NKSensor::BitTorrent",
                      sub="BitTorrent DHT query")
    found = reason([log], inputs, "dht")
    assert found.height == 1 and reason([log], inputs, "bittorrent-handshake").height == 0


def test_stock_signature_notice_naming_dht_is_dht(tmp_path, inputs) -> None:
    log = one_row_log(tmp_path, ZAT / "notice.log", "notice.log", note="Signatures::Sensitive_Signature",
                      msg="BitTorrent DHT ping", sub="d1:ad2:id20:")
    assert reason([log], inputs, "dht").height == 1


def test_dht_shaped_udp_port_is_dht(tmp_path, inputs) -> None:
    # Real DNS rows turned into 12 KRPC-sized exchanges from one port to 12 peers.
    header, rows = header_and_rows(ZAT / "conn.log")
    udp = next(r for r in rows if "\tudp\tdns\t" in r)
    flows = [
        set_fields(udp, header, uid=f"CdhtTest{i:02d}", id__orig_p="51413", id__resp_h=f"198.51.100.{i + 1}",
                   id__resp_p=str(20000 + i * 7), service="-", orig_bytes="95", orig_pkts="1", resp_pkts="1")
        for i in range(12)
    ]
    log = tmp_path / "conn.log"
    log.write_text("".join(header) + "".join(flows))
    evidence = json.loads(reason([log], inputs, "dht")["evidence"][0])
    assert evidence["peers"] == 12


def test_botnet_p2p_on_one_fixed_port_is_not_dht(inputs) -> None:
    # zat's conn.log: ZeroAccess UDP 16464 from one port to 184 peers, 16-byte queries.
    assert reason([ZAT / "conn.log"], inputs, "dht").height == 0


def test_torrent_mime_type_in_files_log_is_torrent_file(tmp_path, inputs) -> None:
    log = one_row_log(tmp_path, TRACKER / "files.log", "files.log", mime_type="application/x-bittorrent")
    assert reason([log], inputs, "torrent-file")["uid"].to_list() == ["CrlFOo1BZrPPpXPLj5"]


def test_torrent_mime_type_in_http_log_is_torrent_file(tmp_path, inputs) -> None:
    log = one_row_log(tmp_path, ZAT / "http.log", "http.log", resp_mime_types="application/x-bittorrent")
    assert reason([log], inputs, "torrent-file").height == 1


def test_real_files_log_has_no_torrent_file(inputs) -> None:
    assert reason([ZAT / "files.log", TRACKER / "files.log"], inputs, "torrent-file").height == 0


def test_bittorrent_port_alone_is_low_confidence_bittorrent_port(tmp_path, inputs) -> None:
    log = one_row_log(tmp_path, ZAT / "conn.log", "conn.log", id__resp_p="6881", service="-")
    found = reason([log], inputs, "bittorrent-port")
    assert found["confidence"].to_list() == ["low"]


def test_bittorrent_port_with_better_evidence_is_not_repeated(tmp_path, inputs) -> None:
    log = one_row_log(tmp_path, ZAT / "conn.log", "conn.log", id__resp_p="6881", service="bittorrent")
    assert reason([log], inputs, "bittorrent-port").height == 0


def test_tracker_port_is_not_a_bittorrent_port(inputs) -> None:
    assert reason([TRACKER], inputs, "bittorrent-port").height == 0
