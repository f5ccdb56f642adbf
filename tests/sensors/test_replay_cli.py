"""`sensor-plugins replay` from the command line: the table, the JSON lines and its errors."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sensor_plugins.generate.content import SensorContent
from sensor_plugins.generate.suricata import SuricataRenderer
from sensor_plugins.inputs.catalogue import load_catalogue
from sensor_plugins.inputs.feeds import load_tor_list
from sensor_plugins.scenarios import pcaps

needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("replay-cli")
    rules = root / "rules"
    rules.mkdir()
    rendered = SuricataRenderer().render(SensorContent(load_catalogue(), load_tor_list()), None)
    for name, text in rendered.files.items():
        (rules / name).write_text(text, encoding="utf-8")
    pcaps.write_pcaps(root, ["sslv3-kp-star-jv-out", "http-ipv6-outside"])
    return root


def sensor_plugins(*args: str, env: dict[str, str] | None = None,
                   cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sensor_plugins", *args], capture_output=True, text=True,
                          check=False, env=env, timeout=300, cwd=cwd)


@needs_suricata
def test_suricata_json_lines_carry_the_common_keys_and_sid_and_rev(workdir):
    proc = sensor_plugins("replay", "--engine", "suricata", "--json", "--rules", str(workdir / "rules"),
                          str(workdir / "sslv3-kp-star-jv-out.pcap"))
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    keys = {tuple(sorted(line)) for line in lines}
    assert (proc.returncode, keys) == (0, {("dst", "engine", "id", "msg", "pcap", "rev", "sid", "src")})
    assert {(line["engine"], line["id"] == str(line["sid"])) for line in lines} == {("suricata", True)}


@needs_suricata
def test_the_table_lists_each_alert_and_marks_a_quiet_pcap(workdir):
    proc = sensor_plugins("replay", "--engine", "suricata", "--rules", str(workdir / "rules"),
                          str(workdir / "sslv3-kp-star-jv-out.pcap"), str(workdir / "http-ipv6-outside.pcap"))
    lines = proc.stdout.splitlines()
    assert (lines[0].split()[:5], "NKSENSOR TLS SSLv3 session opened by NK_NETS host" in proc.stdout,
            lines[-1].startswith("http-ipv6-outside.pcap") and lines[-1].endswith("(nothing reported)")) == (
        ["PCAP", "ENGINE", "ID", "REV", "COUNT"], True, True)


@needs_suricata
@pytest.mark.parametrize("content", [b"", b"\x00" * 64, bytes(range(256)) * 8, b"not a capture\n"])
def test_a_file_that_is_not_a_capture_is_refused_before_suricata_starts_and_the_others_still_run(
        workdir, tmp_path, content):
    bogus = tmp_path / "bogus.pcap"
    bogus.write_bytes(content)
    proc = sensor_plugins("replay", "--engine", "suricata", "--rules", str(workdir / "rules"),
                          str(bogus), str(workdir / "sslv3-kp-star-jv-out.pcap"))
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert (proc.returncode, proc.stderr.count("\n"), "not a pcap or pcapng capture" in rows["bogus.pcap"],
            "SSLv3" in rows["sslv3-kp-star-jv-out.pcap"]) == (2, 1, True, True)


@needs_suricata
def test_a_capture_suricata_cannot_read_fails_alone(workdir, tmp_path):
    # A valid pcap header with a link type Suricata does not decode (147, DLT_USER0).
    odd = tmp_path / "user0.pcap"
    odd.write_bytes(pcaps.PCAP_MAGIC_HEADER[:-4] + (147).to_bytes(4, "little")
                    + (1).to_bytes(4, "little") + (0).to_bytes(4, "little") + (4).to_bytes(4, "little") * 2
                    + b"\x00\x01\x02\x03")
    proc = sensor_plugins("replay", "--engine", "suricata", "--json", "--rules", str(workdir / "rules"),
                          str(odd), str(workdir / "sslv3-kp-star-jv-out.pcap"))
    pcaps_seen = {json.loads(line)["pcap"] for line in proc.stdout.splitlines()}
    assert (proc.returncode, pcaps_seen, proc.stderr.count("\n")) == (
        2, {str(workdir / "sslv3-kp-star-jv-out.pcap")}, 1)


def test_without_suricata_the_command_fails_in_one_line_naming_the_install_script(workdir, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}
    env.pop("SURICATA", None)
    proc = sensor_plugins("replay", "--rules", str(workdir / "rules"),
                          str(workdir / "sslv3-kp-star-jv-out.pcap"), env=env)
    named = "scripts/install-suricata.sh" in proc.stderr
    assert (proc.returncode, proc.stderr.count("\n"), named) == (2, 1, True)


def test_a_missing_rules_directory_is_one_line_and_exit_2(workdir):
    proc = sensor_plugins("replay", "--rules", str(workdir / "absent"),
                          str(workdir / "sslv3-kp-star-jv-out.pcap"))
    named = "sensor-plugins generate" in proc.stderr
    assert (proc.returncode, proc.stderr.count("\n"), named) == (2, 1, True)


@pytest.mark.zeek
def test_with_zeek_one_table_shows_suricata_alerts_and_zeek_tags_and_notices(workdir):
    pcaps.write_pcaps(workdir, ["tls10-rc4-kp-star-jv-out"])
    (workdir / pcaps.TRUST_CA_ZEEK).write_text(pcaps.trust_ca_zeek())
    zeek_package = Path(__file__).resolve().parents[2] / "zeek_scripts"
    args = ["replay", "--engine", "both", "--rules", str(workdir / "rules"), "--zeek-package", str(zeek_package),
            "--zeek-script", str(workdir / pcaps.TRUST_CA_ZEEK), str(workdir / "tls10-rc4-kp-star-jv-out.pcap")]
    table = sensor_plugins(*args)
    lines = [json.loads(line) for line in sensor_plugins(*args, "--json").stdout.splitlines()]
    zeek_ids = {line["id"] for line in lines if line["engine"] == "zeek"}
    assert (table.returncode, {line.split()[1] for line in table.stdout.splitlines()[1:]}) == (0, {"suricata", "zeek"})
    assert zeek_ids == {"conn", "NKSensor::Range_Traffic", "NKSensor::Weak_TLS"}
    assert {line["sub"] for line in lines if line["id"] == "NKSensor::Weak_TLS"} == {"unsafe cipher", "old version"}
    assert {(line["nk_range"], line["nk_side"]) for line in lines if line["id"] == "conn"} == {("kp-star-jv", "orig")}


@pytest.mark.zeek
def test_a_pcap_named_by_a_relative_path_gets_its_zeek_rows_in_the_table(workdir):
    # Zeek runs on the resolved path; its rows are still filed under the name as given.
    pcaps.write_pcaps(workdir, ["http-kp-satgate-out"])
    zeek_package = Path(__file__).resolve().parents[2] / "zeek_scripts"
    table = sensor_plugins("replay", "--engine", "zeek", "--zeek-package", str(zeek_package),
                           "http-kp-satgate-out.pcap", cwd=workdir)
    rows = {tuple(line.split()[:3]) for line in table.stdout.splitlines()[1:]}
    assert (table.returncode, rows) == (0, {("http-kp-satgate-out.pcap", "zeek", "conn"),
                                            ("http-kp-satgate-out.pcap", "zeek", "NKSensor::Range_Traffic")})


@needs_suricata
def test_a_fifo_named_as_a_pcap_is_refused_at_once_and_never_opened(workdir, tmp_path):
    fifo = tmp_path / "capture.pcap"
    os.mkfifo(fifo)
    proc = sensor_plugins("replay", "--engine", "suricata", "--rules", str(workdir / "rules"), str(fifo))
    assert (proc.returncode, "not a regular file" in proc.stdout, proc.stderr.count("\n")) == (2, True, 1)


# -- link types, read from the capture's header before any engine starts ------------------

def pcap_records(path: Path) -> list[tuple[int, int, bytes]]:
    """(seconds, microseconds, frame) of each packet of a little-endian classic pcap."""
    data, records, offset = path.read_bytes(), [], 24
    while offset < len(data):
        sec, usec, caplen, _origlen = struct.unpack("<IIII", data[offset:offset + 16])
        records.append((sec, usec, data[offset + 16:offset + 16 + caplen]))
        offset += 16 + caplen
    return records


def as_pcap(records: list[tuple[int, int, bytes]], link_type: int, strip: int = 0) -> bytes:
    """A classic pcap of ``link_type`` holding the frames without their first ``strip`` bytes."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link_type)
    for sec, usec, frame in records:
        out += struct.pack("<IIII", sec, usec, len(frame) - strip, len(frame) - strip) + frame[strip:]
    return out


def pcapng_block(kind: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def as_pcapng(records: list[tuple[int, int, bytes]], link_type: int) -> bytes:
    """A pcapng (section header, one interface, enhanced packet blocks) of the frames as they are."""
    out = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += pcapng_block(1, struct.pack("<HHI", link_type, 0, 65535))
    for sec, usec, frame in records:
        ts = sec * 1_000_000 + usec
        out += pcapng_block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + frame)
    return out


@needs_suricata
@pytest.mark.parametrize(("name", "build", "link_type"), [
    ("user0.pcap", lambda r: as_pcap(r, 147), 147),
    ("sll2.pcap", lambda r: as_pcap(r, 276), 276),
    ("user0.pcapng", lambda r: as_pcapng(r, 147), 147),
    ("radiotap.pcapng", lambda r: as_pcapng(r, 127), 127),
])
def test_a_link_type_suricata_cannot_read_is_refused_from_the_header_and_suricata_never_starts(
        workdir, tmp_path, name, build, link_type):
    odd = tmp_path / name
    odd.write_bytes(build(pcap_records(workdir / "sslv3-kp-star-jv-out.pcap")))
    logs = tmp_path / "logs"
    proc = sensor_plugins("replay", "--engine", "suricata", "--rules", str(workdir / "rules"), "--log-dir", str(logs),
                          str(odd), str(workdir / "sslv3-kp-star-jv-out.pcap"))
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    # Suricata ran for the second capture alone: the first never got a run folder.
    runs = sorted(p.name for p in (logs / "suricata").iterdir())
    assert (proc.returncode, proc.stderr.count("\n"), runs) == (2, 1, ["001-sslv3-kp-star-jv-out"]), proc.stderr
    assert f"link type {link_type} cannot be read by Suricata" in rows[name], rows
    assert "SSLv3" in rows["sslv3-kp-star-jv-out.pcap"]


@needs_suricata
@pytest.mark.parametrize(("name", "build"), [
    ("raw.pcap", lambda r: as_pcap(r, 101, strip=14)),
    ("ipv4.pcap", lambda r: as_pcap(r, 228, strip=14)),
    ("ethernet.pcapng", lambda r: as_pcapng(r, 1)),
])
def test_captures_of_a_link_type_suricata_reads_still_run(workdir, tmp_path, name, build):
    capture = tmp_path / name
    capture.write_bytes(build(pcap_records(workdir / "sslv3-kp-star-jv-out.pcap")))
    proc = sensor_plugins("replay", "--engine", "suricata", "--rules", str(workdir / "rules"), str(capture))
    assert (proc.returncode, "NKSENSOR TLS SSLv3 session" in proc.stdout) == (0, True), proc.stderr


@needs_suricata
@pytest.mark.parametrize(("head", "match"), [
    (struct.pack("<IHHiI", 0xA1B2C3D4, 2, 4, 0, 0), "cut short (16 of 24 bytes)"),
    (pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)), "describes no interface"),
    (pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x11223344, 1, 0, -1)), "no byte-order magic"),
    (pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + struct.pack("<II", 1, 7) + b"\0" * 8,
     "impossible length 7"),
])
def test_a_capture_header_that_does_not_say_its_link_type_is_refused_in_one_line(workdir, tmp_path, head, match):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(head)
    proc = sensor_plugins("replay", "--engine", "suricata", "--rules", str(workdir / "rules"), str(bad))
    assert (proc.returncode, proc.stderr.count("\n"), match in proc.stdout) == (2, 1, True), proc.stdout


@pytest.mark.zeek
def test_a_link_type_zeek_would_read_as_garbage_is_refused_before_zeek_starts(workdir, tmp_path):
    # Zeek reads an unknown link type as raw IP and exits 0; the loopback header (108) it
    # has no analyser for would come out as nonsense connections.
    odd = tmp_path / "loop.pcap"
    odd.write_bytes(as_pcap(pcap_records(workdir / "sslv3-kp-star-jv-out.pcap"), 108))
    logs = tmp_path / "logs"
    zeek_package = Path(__file__).resolve().parents[2] / "zeek_scripts"
    proc = sensor_plugins("replay", "--engine", "zeek", "--zeek-package", str(zeek_package), "--log-dir", str(logs),
                          str(odd))
    assert (proc.returncode, proc.stderr.count("\n"), "link type 108 cannot be read by Zeek" in proc.stdout,
            (logs / "zeek").exists()) == (2, 1, True, False), proc.stdout
