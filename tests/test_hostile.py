"""Hostile input, table-driven, across every command this suite owns the inputs of.

Each case builds a small world in a temporary directory (a catalogue, Tor lists, Zeek
logs, output and sensor directories), runs one command in-process through
``sensor_plugins.cli.main``, and states what must happen:

- ``error``: exit 2 and exactly one stderr line, ``sensor-plugins ...: error: ...``,
  naming what is at fault (``match``); and nothing in the world changed at all;
- ``handled``: exit 0 or 1 (the command did its job), no traceback, and nothing outside
  the command's own outputs (``outputs``) changed; ``check`` states what the result is.

The world is hashed, file by file, before and after each run. A few cases also run as a
subprocess, to prove the exit code and the single stderr line of the real program.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensor_plugins.cli import main

REPO = Path(__file__).parent.parent
ZAT = REPO / "tests" / "analysis" / "fixtures" / "logs" / "zat"
ZEEK7 = REPO / "tests" / "analysis" / "fixtures" / "logs" / "zeek7"
CATALOGUE = (REPO / "sensor_plugins" / "data" / "catalogue.yaml").read_text()
TOR = "# role: exit\n# fetched: 2024-02-27\n185.220.101.1\n"
RANGE = ("  - name: {name}\n    cidr: {cidr}\n    country: KP\n    owner: Owner\n    source: Source\n"
         "    confidence: high\n")
CONN_HEADER, *CONN_ROWS = [line for line in (ZAT / "conn.log").read_text().splitlines(keepends=True)
                           if not line.startswith("#close")]
CONN_HEAD = "".join(x for x in [CONN_HEADER, *CONN_ROWS] if x.startswith("#"))
CONN_BODY = [x for x in CONN_ROWS if not x.startswith("#")][:60]


def cat(*ranges: tuple[str, str], head: str = "version: 1\n") -> str:
    return head + "ranges:\n" + "".join(RANGE.format(name=n, cidr=c) for n, c in ranges)


OK_CAT = cat(("kp-star-jv", "175.45.176.0/22"))


@dataclass
class World:
    root: Path

    def path(self, rel: str) -> Path:
        return self.root / rel

    def write(self, rel: str, data: str | bytes) -> Path:
        path = self.path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        return path

    def fifo(self, rel: str) -> Path:
        path = self.path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        return path

    def logs(self, rows: list[str] | None = None, head: str = CONN_HEAD, name: str = "logs/conn.log") -> Path:
        return self.write(name, head + "".join(CONN_BODY if rows is None else rows))

    # The commands, with the world's paths filled in.
    def generate(self, *extra: str, check: bool = True) -> list[str]:
        return ["generate", *(["--check"] if check else ["--no-validate"]), "--zeek-out", str(self.path("out/zeek")),
                "--suricata-out", str(self.path("out/suricata")), *extra]

    def analyze(self, *extra: str, logs: list[Path] | None = None) -> list[str]:
        paths = [str(p) for p in (logs if logs is not None else [self.logs()])]
        return ["analyze", *paths, "--format", "jsonl", "--out", str(self.path("out/findings.jsonl")), *extra]

    def report(self, *extra: str, logs: list[Path] | None = None) -> list[str]:
        paths = [str(p) for p in (logs if logs is not None else [self.logs()])]
        return ["report", *paths, "--html", str(self.path("out/report.html")), *extra]

    def follow(self, *extra: str) -> list[str]:
        self.path("live").mkdir(exist_ok=True)
        return ["analyze", "--follow", str(self.path("live")), "--once", "--out", str(self.path("out/follow.jsonl")),
                "--checkpoint", str(self.path("out/cp.json")), *extra]


Setup = Callable[[World], list[str]]


@dataclass
class Case:
    id: str
    setup: Setup
    expect: str  # "error" or "handled"
    match: str = ""
    outputs: tuple[str, ...] = ("out",)
    check: Callable[[World, str, str], None] | None = None
    needs: str = ""  # a binary the case needs


CASES: list[Case] = []


def error(id: str, setup: Setup, match: str = "", needs: str = "") -> None:
    CASES.append(Case(id, setup, "error", match, needs=needs))


def handled(id: str, setup: Setup, check: Callable[[World, str, str], None] | None = None,
            outputs: tuple[str, ...] = ("out",), needs: str = "") -> None:
    CASES.append(Case(id, setup, "handled", outputs=outputs, check=check, needs=needs))


# -- the catalogue, through generate, analyze and report in turn -------------------------

CATALOGUE_CASES: list[tuple[str, str | bytes, str]] = [
    ("cat-repeated-cidr-in-a-range",
     CATALOGUE.replace("cidr: 175.45.176.0/22", "cidr: 175.45.176.0/22\n    cidr: 1.2.3.0/24"),
     "key 'cidr' repeated"),
    ("cat-second-ranges-key", CATALOGUE + "ranges:\n" + RANGE.format(name="x", cidr="1.2.3.0/24"),
     "key 'ranges' repeated"),
    ("cat-repeated-name-key", OK_CAT.replace("    confidence: high\n", "    confidence: high\n    name: other\n"),
     "key 'name' repeated"),
    ("cat-repeated-version", "version: 1\n" + OK_CAT, "key 'version' repeated"),
    ("cat-repeated-sid-block", "sid_block: [1650000, 1659999]\nsid_block: [1650000, 1650001]\n" + OK_CAT,
     "key 'sid_block' repeated"),
    ("cat-date-feb-30", OK_CAT + "    first_seen: 2017-02-30\n", "not a valid date"),
    ("cat-date-month-13", OK_CAT + "    last_seen: 2017-13-01\n", "not a valid date"),
    ("cat-date-no-leap-day", OK_CAT + "    first_seen: 2019-02-29\n", "not a valid date"),
    ("cat-date-quoted-feb-30", OK_CAT + "    first_seen: '2017-02-30'\n", "must be a date"),
    ("cat-date-words", OK_CAT + "    first_seen: last spring\n", "must be a date"),
    ("cat-last-before-first", OK_CAT + "    first_seen: 2018-01-01\n    last_seen: 2017-01-01\n", "before"),
    ("cat-alias", "base: &a {x: 1}\n" + OK_CAT, "anchors and aliases"),
    ("cat-billion-laughs", "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n" + OK_CAT, "anchors and aliases"),
    ("cat-empty-file", "", "must be a mapping"),
    ("cat-a-list", "- 1\n- 2\n", "must be a mapping"),
    ("cat-ranges-empty", "ranges: []\n", "non-empty list"),
    ("cat-ranges-a-mapping", "ranges: {a: 1}\n", "non-empty list"),
    ("cat-unknown-top-key", "colour: red\n" + OK_CAT, "unknown top-level key"),
    ("cat-unknown-range-key", OK_CAT + "    colour: red\n", "unknown key"),
    ("cat-missing-owner", OK_CAT.replace("    owner: Owner\n", ""), "'owner' is required"),
    ("cat-bad-name", cat(("KP Star", "175.45.176.0/22")), "field 'name'"),
    ("cat-name-too-long", cat(("k" * 41, "175.45.176.0/22")), "field 'name'"),
    ("cat-host-bits", cat(("kp", "175.45.176.1/22")), "host bits"),
    ("cat-not-a-cidr", cat(("kp", "175.45.300.0/22")), "invalid CIDR"),
    ("cat-cidr-a-number", cat(("kp", "12")), "must be a CIDR string"),
    ("cat-v6-host-bits", cat(("kp", "2001:db8::1/32")), "host bits"),
    ("cat-country-lowercase", OK_CAT.replace("country: KP", "country: kp"), "ISO 3166"),
    ("cat-bad-confidence", OK_CAT.replace("confidence: high", "confidence: sure"), "confidence"),
    ("cat-bad-asn", OK_CAT + "    asn: ASX\n", "AS number"),
    ("cat-asn-a-bool", OK_CAT + "    asn: true\n", "AS number"),
    ("cat-overlap-flag-a-string", OK_CAT + "    allow_overlap: 'yes'\n", "allow_overlap"),
    ("cat-newline-in-owner", OK_CAT.replace("owner: Owner", 'owner: "a\\nb"'), "control character"),
    ("cat-bidi-in-source", OK_CAT.replace("source: Source", 'source: "a\\u202eb"'), "control character"),
    ("cat-owner-too-long", OK_CAT.replace("owner: Owner", "owner: " + "o" * 401), "longer than"),
    ("cat-overlapping-ranges", cat(("wide", "175.45.0.0/16"), ("inner", "175.45.176.0/22")), "overlaps"),
    ("cat-same-name-twice", cat(("kp", "175.45.176.0/22"), ("kp", "210.52.109.0/24")), "duplicates"),
    ("cat-same-cidr-twice", cat(("a", "175.45.176.0/22"), ("b", "175.45.176.0/22")), "duplicates"),
    ("cat-sid-block-outside", "sid_block: [1, 2]\n" + OK_CAT, "sid_block"),
    ("cat-sid-block-reversed", "sid_block: [1659999, 1650000]\n" + OK_CAT, "sid_block"),
    ("cat-tab-indent", OK_CAT.replace("    owner", "\towner"), "invalid YAML"),
    ("cat-not-utf8", b"ranges:\n  - name: \xff\xfe\n", "not UTF-8"),
    ("cat-binary", bytes(range(256)) * 4, "not UTF-8"),
]
RUNNERS = ("generate", "analyze", "report")


def _catalogue_case(text: str | bytes, runner: str) -> Setup:
    def setup(w: World) -> list[str]:
        path = w.write("in/catalogue.yaml", text)
        return getattr(w, runner)("--catalogue", str(path))
    return setup


for i, (cid, text, match) in enumerate(CATALOGUE_CASES):
    error(f"{cid}[{RUNNERS[i % 3]}]", _catalogue_case(text, RUNNERS[i % 3]), match)

error("cat-fifo[generate]", lambda w: w.generate("--catalogue", str(w.fifo("in/catalogue.yaml"))), "not a regular file")
error("cat-fifo[analyze]", lambda w: w.analyze("--catalogue", str(w.fifo("in/catalogue.yaml"))), "not a regular file")
error("cat-directory[report]", lambda w: w.report("--catalogue", str(w.path("in"))) if w.path("in").mkdir() is None
      else [], "is a directory")
error("cat-missing[generate]", lambda w: w.generate("--catalogue", str(w.path("in/none.yaml"))), "cannot read")
error("cat-device[analyze]", lambda w: w.analyze("--catalogue", "/dev/zero"), "not a regular file")


# -- Tor lists ---------------------------------------------------------------------------

def plain(*lines: str) -> str:
    return "# role: exit\n# fetched: 2024-02-27\n" + "".join(f"{x}\n" for x in lines)


FEED_CASES: list[tuple[str, str | bytes, str]] = [
    ("tor-zero-address", plain("0.0.0.0"), "'this network'"),
    ("tor-loopback", plain("185.220.101.1", "127.0.0.1"), ":4: 127.0.0.1 is a loopback"),
    ("tor-private-10", plain("10.1.2.3"), "private"),
    ("tor-private-172", plain("172.16.5.4"), "private"),
    ("tor-private-192", plain("192.168.1.1"), "private"),
    ("tor-cgnat", plain("100.64.0.1"), "carrier-grade"),
    ("tor-link-local", plain("169.254.10.10"), "link-local"),
    ("tor-multicast", plain("224.0.0.1"), "multicast"),
    ("tor-ssdp-multicast", plain("239.255.255.250"), "multicast"),
    ("tor-broadcast", plain("255.255.255.255"), "broadcast"),
    ("tor-reserved-240", plain("240.0.0.1"), "reserved"),
    ("tor-v6-loopback", plain("::1"), "loopback"),
    ("tor-v6-unspecified", plain("::"), "unspecified"),
    ("tor-v6-link-local", plain("fe80::1"), "link-local"),
    ("tor-v6-ula", plain("fd00::1"), "unique-local"),
    ("tor-v6-multicast", plain("ff02::1"), "multicast"),
    ("tor-v4-mapped", plain("::ffff:185.220.101.1"), "IPv4-mapped"),
    ("tor-catalogue-address", plain("185.220.101.1", "175.45.176.9"), "in the catalogue's range kp-star-jv"),
    ("tor-empty", "# role: exit\n# fetched: 2024-02-27\n", "--allow-empty"),
    ("tor-zero-bytes", "", "--allow-empty"),
    ("tor-not-an-address", plain("exit.example.org"), "not an IP address"),
    ("tor-address-with-port", plain("185.220.101.1:9001"), "not an IP address"),
    ("tor-cidr", plain("185.220.101.0/24"), "not an IP address"),
    ("tor-bad-role", "# role: bridge\n# fetched: 2024-02-27\n185.220.101.1\n", "role"),
    ("tor-bad-fetched-date", "# role: exit\n# fetched: 2024-02-30\n185.220.101.1\n", "not a date"),
    ("tor-nul-byte", plain("185.220.101.1\x00"), "not an IP address"),
    ("tor-not-utf8", b"# role: exit\n\xff\n", "not UTF-8"),
    ("tor-onionoo-broken", '{"relays": [', "invalid Onionoo JSON"),
    ("tor-onionoo-no-relays", '{"relays_published": "2024-02-27 00:00:00"}', "no 'relays' list"),
    ("tor-onionoo-bad-nickname", json.dumps({"relays_published": "2024-02-27 00:00:00", "relays": [
        {"nickname": "bad name!", "or_addresses": ["185.220.101.1:9001"]}]}), "nickname"),
    ("tor-onionoo-private", json.dumps({"relays_published": "2024-02-27 00:00:00", "relays": [
        {"nickname": "r", "or_addresses": ["10.0.0.1:9001"], "flags": ["Exit"]}]}), "relays[0]: 10.0.0.1 is a private"),
    ("tor-onionoo-empty", json.dumps({"relays_published": "2024-02-27 00:00:00", "relays": []}), "--allow-empty"),
    ("tor-exit-addresses-bad-fingerprint", "ExitNode XYZ\nExitAddress 185.220.101.1 2024-02-27 00:00:00\n",
     "fingerprint"),
    ("tor-exit-addresses-orphan", "ExitAddress 185.220.101.1 2024-02-27 00:00:00\nExitNode " + "A" * 40 + "\n",
     "outside an ExitNode"),
    ("tor-exit-addresses-multicast", "ExitNode " + "A" * 40 + "\nExitAddress 224.1.1.1 2024-02-27 00:00:00\n",
     ":2: 224.1.1.1 is a multicast"),
]


def _feed_case(text: str | bytes, runner: str) -> Setup:
    def setup(w: World) -> list[str]:
        return getattr(w, runner)("--tor-list", str(w.write("in/tor.lst", text)), "--catalogue",
                                  str(w.write("in/catalogue.yaml", OK_CAT)))
    return setup


for i, (cid, text, match) in enumerate(FEED_CASES):
    error(f"{cid}[{RUNNERS[i % 3]}]", _feed_case(text, RUNNERS[i % 3]), match)

error("tor-fifo[report]", lambda w: w.report("--tor-list", str(w.fifo("in/tor.lst"))), "not a regular file")
error("tor-directory[generate]", lambda w: w.generate("--tor-list", str(w.path("in"))) if w.path("in").mkdir() is None
      else [], "is a directory")

# -- the known-client table (--clients), through analyze and report ---------------------------
JA4 = "t13d1516h2_8daaf6152771_02713d6af862"
error("clients-fifo[analyze]", lambda w: w.analyze("--clients", str(w.fifo("in/clients.tsv"))), "not a regular file")
error("clients-directory[report]", lambda w: w.report("--clients", str(w.path("in"))) if w.path("in").mkdir() is None
      else [], "is a directory")
error("clients-binary[analyze]", lambda w: w.analyze("--clients", str(w.write("in/clients.tsv", b"\xff\xfe\x00"))),
      "not UTF-8")
error("clients-two-fields[report]", lambda w: w.report("--clients", str(w.write("in/clients.tsv", f"{JA4}\tChrome\n"))),
      "clients.tsv:1: expected 3 tab-separated fields")
error("clients-control-name[analyze]", lambda w: w.analyze("--clients", str(w.write(
    "in/clients.tsv", f"# ok\n{JA4}\tChr\x1bome\tsite\n"))), "clients.tsv:2: the name must be")
error("clients-not-ja4[analyze]", lambda w: w.analyze("--clients", str(w.write(
    "in/clients.tsv", "t13d1516h2_8daaf6152771\tChrome\tsite\n"))), "not a JA4 fingerprint")
error("clients-as-out[analyze]", lambda w: ["analyze", str(w.logs()), "--clients", str(w.write("in/clients.tsv",
      f"{JA4}\tChrome\tsite\n")), "--out", str(w.path("in/clients.tsv"))], "is one of the inputs")
error("clients-two-fields[follow]", lambda w: w.follow("--clients", str(w.write("in/clients.tsv", f"{JA4}\tChrome\n"))),
      "clients.tsv:1: expected 3 tab-separated fields")
error("clients-as-out[follow]", lambda w: [*w.follow("--clients", str(w.write(
    "in/clients.tsv", f"{JA4}\tChrome\tsite\n"))), "--out", str(w.path("in/clients.tsv"))], "is one of the inputs")


def _empty_allowed(w: World) -> list[str]:
    return w.analyze("--tor-list", str(w.write("in/tor.lst", "# role: exit\n# fetched: 2024-02-27\n")), "--allow-empty")


handled("tor-empty-with-allow-empty[analyze]", _empty_allowed)
handled("tor-documentation-address[analyze]", lambda w: w.analyze("--tor-list", str(w.write("in/tor.lst",
                                                                                          plain("192.0.2.7")))))


# -- Zeek logs ---------------------------------------------------------------------------

def drop_column(name: str) -> str:
    lines = CONN_HEAD.splitlines(keepends=True)
    out = []
    for line in lines:
        if line.startswith(("#fields", "#types")):
            cells = line.rstrip("\n").split("\t")
            fields = CONN_HEAD.split("#fields\t", 1)[1].split("\n", 1)[0].split("\t")
            idx = fields.index(name) + 1
            out.append("\t".join(cells[:idx] + cells[idx + 1:]) + "\n")
        else:
            out.append(line)
    return "".join(out)


def rows_without(name: str) -> list[str]:
    fields = CONN_HEAD.split("#fields\t", 1)[1].split("\n", 1)[0].split("\t")
    idx = fields.index(name)
    return ["\t".join(c for j, c in enumerate(r.rstrip("\n").split("\t")) if j != idx) + "\n" for r in CONN_BODY]


def _missing_column(name: str, runner: str) -> Setup:
    def setup(w: World) -> list[str]:
        log = w.logs(rows_without(name), head=drop_column(name))
        return getattr(w, runner)(logs=[log])
    return setup


for runner in ("analyze", "report"):
    for column in ("id.resp_h", "id.orig_h", "ts"):
        error(f"log-missing-{column}[{runner}]", _missing_column(column, runner), f"column '{column}' is missing")


def warned(text: str) -> Callable[[World, str, str], None]:
    def check(w: World, out: str, err: str) -> None:
        assert text in err
    return check


handled("log-missing-service-warns[analyze]", _missing_column("service", "analyze"), warned("no column 'service'"))
handled("log-missing-bytes-warns[report]", _missing_column("orig_bytes", "report"), warned("no column 'orig_bytes'"))


def _plain_and_gz(runner: str) -> Setup:
    def setup(w: World) -> list[str]:
        log = w.logs()
        w.write("logs/conn.log.gz", gzip.compress(log.read_bytes()))
        return getattr(w, runner)(logs=[w.path("logs")])
    return setup


error("log-plain-and-gz[analyze]", _plain_and_gz("analyze"), "holds the same log as")
error("log-plain-and-gz[report]", _plain_and_gz("report"), "holds the same log as")


def one_shot_lines(w: World) -> list[str]:
    ref = w.root.parent / f"{w.root.name}-ref.jsonl"
    if not ref.exists():
        main(["analyze", str(w.path("logs/conn.log")), "--format", "jsonl", "--scope", "all", "--out", str(ref)])
    return sorted(ref.read_text().splitlines())


def same_as_once(w: World, out: str, err: str) -> None:
    assert sorted(w.path("out/findings.jsonl").read_text().splitlines()) == one_shot_lines(w)


def _symlinked(w: World) -> list[str]:
    log = w.logs()
    (w.path("logs") / "conn.link.log").symlink_to(log)
    return w.analyze("--scope", "all", logs=[w.path("logs")])


handled("log-same-file-through-symlink[analyze]", _symlinked, same_as_once)
handled("log-same-file-twice[analyze]", lambda w: w.analyze("--scope", "all", logs=[w.logs(), w.logs()]), same_as_once)
handled("log-dir-and-file-in-it[analyze]", lambda w: w.analyze("--scope", "all", logs=[w.logs(), w.path("logs")]),
        same_as_once)


def _broken(data: bytes | str, name: str = "logs/conn.log") -> Setup:
    return lambda w: w.analyze(logs=[w.write(name, data)])


error("log-binary-garbage[analyze]", _broken(bytes(range(1, 256)) * 8), "not a Zeek log")
error("log-truncated-gzip[analyze]", _broken(gzip.compress(CONN_HEAD.encode() * 50)[:200], "logs/conn.log.gz"),
      "conn.log.gz")
error("log-gzip-of-garbage[analyze]", _broken(gzip.compress(b"\x00\x01garbage" * 100), "logs/conn.log.gz"),
      "not a Zeek log")
error("log-types-count-mismatch[analyze]", _broken(CONN_HEAD.replace("#types\t", "#types\tstring\t")), "#types has")
error("log-field-twice[analyze]", _broken(CONN_HEAD.replace("#fields\tts\t", "#fields\tts\tts\t")
                                          .replace("#types\ttime\t", "#types\ttime\ttime\t")), "column twice")
error("log-long-separator[analyze]", _broken(CONN_HEAD.replace("#separator \\x09", "#separator ab")), "not a Zeek log")
error("log-json-broken-line[analyze]", _broken('{"ts": 1, "id.orig_h": "1.2.3.4", "id.resp_h": "5.6.7.8"}\n{"ts": \n'
                                               '{"x": 1}\n'), "invalid JSON")
JSON_ROW = ('{"ts": 1.5, "uid": "C1", "id.orig_h": "10.1.1.1", "id.orig_p": 1, "id.resp_h": "175.45.176.1", '
            '"id.resp_p": 443}\n')
# The file is scanned, not read whole: a bad line is still refused before any detection, naming the file.
error("log-json-line-not-an-object[analyze]", _broken(JSON_ROW + "5\n" + JSON_ROW, "logs/conn.log"),
      "conn.log: invalid JSON log line")
error("log-json-ts-an-object[analyze]", _broken(JSON_ROW + '{"ts": {"a": 1}, "uid": "C2"}\n', "logs/conn.log"),
      "conn.log: invalid JSON log line")
error("log-json-ts-overflow[analyze]", _broken(JSON_ROW + JSON_ROW.replace("1.5", "1e300"), "logs/conn.log"),
      "conn.log: line 2: ts '1e+300' is neither epoch seconds nor ISO 8601 time")
error("log-json-missing-resp-h[analyze]", _broken('{"ts": 1.0, "id.orig_h": "1.2.3.4", "uid": "C1"}\n'),
      "column 'id.resp_h' is missing")
error("log-path-missing[analyze]", lambda w: w.analyze(logs=[w.path("nothing")]), "no such log file")
error("log-dir-without-logs[analyze]", lambda w: w.analyze(logs=[w.write("logs/readme.txt", "x").parent]),
      "no Zeek logs found")
error("log-fifo-given[analyze]", lambda w: w.analyze(logs=[w.fifo("logs/conn.log")]), "not a regular file")
error("log-device-given[report]", lambda w: w.report(logs=[Path("/dev/null")]), "not a regular file")
handled("log-fifo-in-a-log-dir[analyze]", lambda w: w.fifo("logs/dns.log") and w.analyze(logs=[w.logs().parent]),
        warned("dns.log is not a regular file; skipped"))
handled("log-empty-file[analyze]", _broken(""))
handled("log-header-only[analyze]", _broken(CONN_HEAD))
handled("log-partial-last-line[analyze]", _broken(CONN_HEAD + "".join(CONN_BODY) + CONN_BODY[0][:40]),
        warned("last line is incomplete"))
handled("log-crlf-rows[analyze]", _broken(CONN_HEAD + "".join(r.replace("\n", "\r\n") for r in CONN_BODY)))
handled("log-nul-in-row[analyze]", _broken(CONN_HEAD + CONN_BODY[0].replace("\t", "\t\x00", 1) + "".join(CONN_BODY)))
handled("log-huge-line[analyze]", _broken(CONN_HEAD + "x" * 200_000 + "\n" + "".join(CONN_BODY)))
handled("log-ragged-rows[analyze]", _broken(CONN_HEAD + "".join(r.split("\t", 5)[0] + "\n" for r in CONN_BODY)))
handled("log-zeek7-tree[report]", lambda w: w.report(logs=[ZEEK7]))


# -- outputs -----------------------------------------------------------------------------

error("out-is-the-input[analyze]", lambda w: ["analyze", str(w.logs()), "--out", str(w.path("logs/conn.log"))],
      "is one of the inputs")
error("out-is-the-catalogue[analyze]", lambda w: ["analyze", str(w.logs()), "--catalogue",
                                                   str(w.write("in/c.yaml", OK_CAT)), "--out",
                                                   str(w.path("in/c.yaml"))],
      "is one of the inputs")
error("out-is-a-directory[analyze]", lambda w: ["analyze", str(w.logs()), "--out", str(w.path("logs"))],
      "is a directory")
error("out-is-dev-null[analyze]", lambda w: ["analyze", str(w.logs()), "--out", "/dev/null"], "not a regular file")
error("out-is-a-fifo[analyze]", lambda w: ["analyze", str(w.logs()), "--out", str(w.fifo("out/fifo"))],
      "not a regular file")
error("out-is-a-symlink[analyze]", lambda w: ["analyze", str(w.logs()), "--out",
                                               str(_link(w, "out/link.jsonl", "in/target.jsonl"))], "symbolic link")
error("out-under-a-file[analyze]", lambda w: ["analyze", str(w.logs()), "--out",
                                               str(w.write("in/file", "x") / "f.jsonl")], "is not a directory")
error("html-is-the-input[report]", lambda w: ["report", str(w.logs()), "--html", str(w.path("logs/conn.log"))],
      "is one of the inputs")
error("html-is-a-directory[report]", lambda w: ["report", str(w.logs()), "--html", str(w.path("logs"))],
      "is a directory")
error("html-is-a-fifo[report]", lambda w: ["report", str(w.logs()), "--html", str(w.fifo("out/r.html"))],
      "not a regular file")
error("html-and-json-same[report]", lambda w: ["report", str(w.logs()), "--format", "json", "--html",
                                                str(w.path("out/r")), "--json", str(w.path("out/r"))], "same file")
error("json-is-events[report]", lambda w: ["report", str(w.logs()), "--format", "json", "--events",
                                            str(w.write("in/ev.csv", "date,label\n2017-07-04,test\n")), "--json",
                                            str(w.path("in/ev.csv"))], "is one of the inputs")
handled("out-table-format-to-file[analyze]", lambda w: w.analyze("--format", "table"))
handled("out-replaces-its-own-earlier-file[analyze]",
        lambda w: w.write("out/findings.jsonl", "old\n") and w.analyze())


def _link(w: World, rel: str, target: str) -> Path:
    dest = w.write(target, "x")
    link = w.path(rel)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(dest)
    return link


# -- numeric and other options -----------------------------------------------------------

for value in ("nan", "inf", "-inf", "NaN", "1e999"):
    error(f"z-threshold-{value}[report]", lambda w, v=value: w.report(f"--z-threshold={v}"), "finite number")
error("z-threshold-zero[report]", lambda w: w.report("--z-threshold", "0"), "greater than 0")
error("z-threshold-words[report]", lambda w: w.report("--z-threshold", "high"), "not a number")
error("window-days-one[report]", lambda w: w.report("--window-days", "1"), "at least 2")
error("baseline-days-zero[report]", lambda w: w.report("--baseline-days", "0"), "at least 1")
error("json-without-format[report]", lambda w: w.report("--json", str(w.path("out/r.json"))), "--json needs")
error("events-feb-30[report]", lambda w: w.report("--events", str(w.write("in/ev.csv", "date,label\n2017-02-30,x\n"))),
      "ev.csv")
error("events-fifo[report]", lambda w: w.report("--events", str(w.fifo("in/ev.csv"))), "not a regular file")
error("geoip-fifo[report]", lambda w: w.report("--geoip", str(w.fifo("in/db.mmdb"))), "not a regular file")
error("categories-fifo[report]", lambda w: w.report("--categories", str(w.fifo("in/c.yaml"))), "not a regular file")
error("geoip-garbage[report]", lambda w: w.report("--geoip", str(w.write("in/db.mmdb", b"\x00" * 100))), "db.mmdb")
error("scope-unknown[analyze]", lambda w: w.analyze("--scope", "world"), "invalid choice")
error("poll-nan[follow]", lambda w: w.follow("--poll", "nan"), "finite number")
error("poll-negative[follow]", lambda w: w.follow("--poll", "-1"), "--poll must be")
error("follow-a-file[follow]", lambda w: ["analyze", "--follow", str(w.logs()), "--once"], "needs a directory")
error("follow-with-paths[follow]", lambda w: [*w.follow(), str(w.logs())], "takes no other log paths")
error("follow-table-format[follow]", lambda w: w.follow("--format", "table"), "not table")
error("follow-checkpoint-is-a-dir[follow]", lambda w: ["analyze", "--follow", str(w.write("live/ssl.log", "").parent),
                                                       "--once", "--checkpoint", str(w.path("live"))], "is a directory")
error("follow-out-is-checkpoint[follow]", lambda w: ["analyze", "--follow", str(w.write("live/x", "").parent), "--once",
                                                     "--out", str(w.path("o")), "--checkpoint", str(w.path("o"))],
      "same file")
error("follow-out-is-a-live-log[follow]", lambda w: ["analyze", "--follow", str(w.write("live/ssl.log", "").parent),
                                                     "--once", "--out", str(w.path("live/ssl.log"))],
      "is one of the inputs")
error("follow-corrupt-checkpoint[follow]", lambda w: w.write("out/cp.json", "{nope") and w.follow(),
      "unreadable checkpoint")
error("follow-checkpoint-types[follow]", lambda w: w.write("out/cp.json", json.dumps(
    {"version": 1, "directory": str(w.path("live")), "files": {}, "out_size": "7"})) and w.follow(), "malformed")
error("follow-existing-out-no-checkpoint[follow]", lambda w: w.write("out/follow.jsonl", "{}\n") and w.follow(),
      "already holds findings")
error("follow-binary-checkpoint[follow]", lambda w: w.write("out/cp.json", b"\xff\xfe") and w.follow(),
      "unreadable checkpoint")


# -- generate ----------------------------------------------------------------------------

def gen_ok(w: World) -> None:
    assert main(w.generate(check=False)) == 0


error("gen-zeek-out-is-a-file", lambda w: w.write("out/zeek", "x") and w.generate(check=False), "is not a directory")
error("gen-suricata-out-is-a-file", lambda w: w.write("out/suricata", "x") and w.generate(check=False),
      "is not a directory")
error("gen-outputs-nested", lambda w: ["generate", "--no-validate", "--zeek-out", str(w.path("x/zeek")),
                                       "--suricata-out", str(w.path("x"))], "overlap")
error("gen-outputs-same", lambda w: ["generate", "--no-validate", "--zeek-out", str(w.path("x")),
                                     "--suricata-out", str(w.path("x"))], "overlap")
error("gen-out-under-a-file", lambda w: ["generate", "--no-validate", "--zeek-out", str(w.write("f", "x") / "z"),
                                         "--suricata-out", str(w.path("s"))], "not a directory")
error("gen-foreign-file-with-our-name", lambda w: w.write("out/zeek/main.zeek", "# the site's own\n")
      and w.generate(check=False), "was not written by sensor-plugins")
error("gen-our-name-is-a-directory", lambda w: w.write("out/zeek/main.zeek/x", "") and w.generate(check=False),
      "is not a regular file")
error("gen-manifest-escapes", lambda w: w.write("out/zeek/.sensor-plugins.manifest", "../../victim\n")
      and w.generate(check=False), "is not a path inside")
error("gen-manifest-binary", lambda w: w.write("out/zeek/.sensor-plugins.manifest", b"\xff\xfe")
      and w.generate(check=False), "not UTF-8")
error("gen-sid-map-is-a-fifo", lambda w: w.fifo("out/suricata/sid-map.json") and w.generate(check=False),
      "not a regular file")
error("gen-sid-map-broken", lambda w: w.write("out/suricata/sid-map.json", "{") and w.generate(check=False),
      "invalid sid registry JSON")
error("gen-lock-wait-nan", lambda w: w.generate("--lock-wait", "nan", check=False), "finite number")
error("gen-empty-tor-list", lambda w: w.generate("--tor-list", str(w.write("in/t.lst", "# fetched: 2024-01-01\n")),
                                                 check=False), "--allow-empty")


def _narrowed_block(w: World) -> list[str]:
    catalogue = w.write("in/catalogue.yaml", OK_CAT)
    assert main(w.generate("--catalogue", str(catalogue), check=False)) == 0
    w.write("in/catalogue.yaml", "sid_block: [1655000, 1659999]\n" + OK_CAT)
    return w.generate("--catalogue", str(catalogue), check=False)


error("gen-sid-block-drops-live-sids", _narrowed_block, "no longer holds")


def _edited_by_hand(w: World) -> list[str]:
    catalogue = w.write("in/catalogue.yaml", OK_CAT)
    assert main(w.generate("--catalogue", str(catalogue), check=False)) == 0
    with w.path("out/zeek/main.zeek").open("a") as handle:
        handle.write("redef NKSensor::tor_suppress = 2 days;\n")
    return w.generate(check=False)


error("gen-our-file-edited-by-hand", _edited_by_hand, "changed since sensor-plugins wrote it")


def site_files_kept(w: World, out: str, err: str) -> None:
    assert (w.path("out/zeek/local.zeek").read_text(), w.path("out/zeek/site/x.zeek").read_text()) == ("@load x\n",
                                                                                                       "# x\n")
    assert w.path("out/zeek/main.zeek").is_file()


handled("gen-keeps-the-sites-files", lambda w: w.write("out/zeek/local.zeek", "@load x\n")
        and w.write("out/zeek/site/x.zeek", "# x\n") and w.generate(check=False), site_files_kept)
handled("gen-allow-empty-tor-list", lambda w: w.generate("--allow-empty", "--tor-list",
                                                         str(w.write("in/t.lst", "# fetched: 2024-01-01\n")),
                                                         check=False))


def _regenerate(w: World) -> list[str]:
    gen_ok(w)
    return w.generate(check=False)


handled("gen-twice-in-place", _regenerate)


# -- deploy ------------------------------------------------------------------------------

def zeek_source(w: World) -> Path:
    for rel, text in {"__load__.zeek": "@load ./main\n", "main.zeek": "module SPTest;\n",
                      "nk-ranges.tsv": "#fields\tcidr\n175.45.176.0/22\n"}.items():
        w.write(f"gen/zeek/{rel}", text)
    return w.path("gen/zeek")


def deploy_zeek(w: World, *extra: str) -> list[str]:
    site = w.path("site")
    site.mkdir(exist_ok=True)
    return ["deploy", "--zeek-out", str(zeek_source(w)), "--zeek-site", str(site), *extra]


def deploy_suricata(w: World, config: str | bytes) -> list[str]:
    w.write("gen/suricata/nksensor.rules", 'alert ip any any -> any any (msg:"x"; sid:1650001; rev:1;)\n')
    return ["deploy", "--suricata-out", str(w.path("gen/suricata")), "--suricata-config",
            str(w.write("sensor/suricata.yaml", config)), "--suricata-rules-dir", str(w.path("sensor/rules"))]


error("deploy-binary-local-zeek", lambda w: w.write("site/local.zeek", b"\xff\xfe\x00") and deploy_zeek(w),
      "not UTF-8")
error("deploy-fifo-local-zeek", lambda w: w.fifo("site/local.zeek") and deploy_zeek(w), "not a regular file")
error("deploy-binary-suricata-yaml", lambda w: deploy_suricata(w, b"\xff\xfe\x00\x01"), "not UTF-8")
error("deploy-suricata-yaml-a-list", lambda w: deploy_suricata(w, "- a\n- b\n"), "not a YAML mapping")
error("deploy-suricata-yaml-broken", lambda w: deploy_suricata(w, "a: [\n"), "not valid YAML")
error("deploy-suricata-yaml-fifo", lambda w: ["deploy", "--suricata-config", str(w.fifo("sensor/s.yaml")),
                                              "--suricata-rules-dir", str(w.path("r"))], "not a regular file")
error("deploy-nothing-to-do", lambda w: ["deploy"], "nothing to deploy to")
error("deploy-source-missing", lambda w: ["deploy", "--zeek-out", str(w.path("none")), "--zeek-site",
                                          str(w.write("site/x", "").parent)], "not found")
error("deploy-site-missing", lambda w: ["deploy", "--zeek-out", str(zeek_source(w)), "--zeek-site",
                                        str(w.path("nosite"))], "not found")
error("deploy-source-symlink", lambda w: _link(w, "gen/zeek/evil.zeek", "in/secret") and deploy_zeek(w),
      "symbolic link")
error("deploy-foreign-file-in-package-dir", lambda w: w.write("site/nk-sensor/main.zeek", "# site's\n")
      and deploy_zeek(w), "was not written by sensor-plugins")
error("deploy-manifest-escapes", lambda w: w.write("site/nk-sensor/.sensor-plugins.manifest", "../local.zeek\n")
      and deploy_zeek(w), "not a path inside")
error("deploy-lock-wait-words", lambda w: deploy_zeek(w, "--lock-wait", "soon"), "not a number")
error("deploy-lock-wait-nan", lambda w: deploy_zeek(w, "--lock-wait", "nan"), "finite number")


# -- feeds update and update-source ------------------------------------------------------

error("feeds-update-bad-scheme", lambda w: ["feeds", "update", "--url", "gopher://x", "--out", str(w.path("o.lst"))],
      "unsupported URL scheme")
error("feeds-update-private-address", lambda w: ["feeds", "update", "--url",
                                                 w.write("in/t.lst", plain("10.0.0.1")).as_uri(),
                                                 "--out", str(w.path("out/t.lst"))], "private")
error("feeds-update-out-is-a-directory", lambda w: ["feeds", "update", "--url", w.write("in/t.lst", TOR).as_uri(),
                                                    "--out", str(w.write("out/d/x", "").parent)], "out/d")
error("feeds-update-out-is-a-fifo", lambda w: ["feeds", "update", "--url", w.write("in/t.lst", TOR).as_uri(),
                                               "--out", str(w.fifo("out/t.lst"))], "not a regular file")
error("feeds-update-empty-list", lambda w: ["feeds", "update", "--url", w.write("in/t.lst", "# fetched: 2024-01-01\n")
                                            .as_uri(), "--out", str(w.path("out/t.lst"))], "holds no addresses")
error("update-source-missing-rules", lambda w: ["update-source", "--suricata-out", str(w.path("none")), "--out",
                                                str(w.path("out/x.tar.gz"))], "none")


def _rejected_rules(w: World) -> list[str]:
    assert main(w.generate(check=False)) == 0
    rules = w.path("out/suricata/nksensor.rules")
    rules.write_text(rules.read_text() + 'alert ip any any -> any any (msg:"broken"; nosuchkeyword; sid:1659999;)\n')
    return ["update-source", "--suricata-out", str(w.path("out/suricata")), "--out", str(w.path("dist/x.tar.gz"))]


error("update-source-rules-suricata-rejects", _rejected_rules, "the archive was not written", needs="suricata")
error("update-source-out-is-the-rules", lambda w: main(w.generate(check=False)) == 0 and [
    "update-source", "--suricata-out", str(w.path("out/suricata")), "--no-validate", "--out",
    str(w.path("out/suricata/nksensor.rules"))], "is one of the inputs")


# == issue 24 (inputs): poisoned registry data, future dates, implausible catalogue ranges ==
# catalogue update reads the last step of the synthetic registry history with one record
# poisoned; generate reads a catalogue holding the same kind of range.

HISTORY = REPO / "tests" / "inputs" / "fixtures" / "registry" / "history"
DELEGATED_1201 = (HISTORY / "delegated-apnic-extended-20261201").read_text()
PFX2AS_1201 = (HISTORY / "routeviews-rv2-20261201-1200.pfx2as").read_text()


def delegated_with(*records: str, enddate: str = "20261201") -> str:
    """The 2026-12-01 delegated file with ``records`` appended and its counts kept true."""
    lines = DELEGATED_1201.splitlines(keepends=True)
    v4 = sum(r.split("|")[2] == "ipv4" for r in records)
    v6 = len(records) - v4
    lines[0] = f"2.3|apnic|{enddate}|{8 + len(records)}|19830613|{enddate}|+1000\n"
    lines = [line.replace("ipv4|*|6|", f"ipv4|*|{6 + v4}|").replace("ipv6|*|1|", f"ipv6|*|{1 + v6}|")
             for line in lines]
    return "".join(lines) + "".join(f"{r}\n" for r in records)


def registry_update(delegated: str | None = None, pfx2as: str | None = None, geoip: dict | None = None,
                    pfx2as_name: str = "routeviews-rv2-20261201-1200.pfx2as", *extra: str) -> Setup:
    """`catalogue update --write` over the 2026-12-01 sources, with one of them replaced."""
    def setup(w: World) -> list[str]:
        from registry_history import write_geoip

        catalogue = w.write("in/catalogue.yaml", CATALOGUE)
        # --write's lock file, left beside the catalogue by any earlier update: made beforehand,
        # so that "nothing changed" compares the catalogue itself.
        w.write("in/.catalogue.yaml.lock", "")
        spec = json.loads((HISTORY / "geoip-20261201.json").read_text())
        if geoip is not None:
            spec["networks"].update(geoip)
        w.write("src/geoip.json", json.dumps(spec))
        mmdb = write_geoip(w.path("src/geoip.json"), w.path("src/geoip-20261201.mmdb"))
        return ["catalogue", "update", "--catalogue", str(catalogue),
                "--delegated", str(w.write("src/delegated-apnic-extended-20261201", delegated or DELEGATED_1201)),
                "--pfx2as", str(w.write(f"src/{pfx2as_name}", pfx2as or PFX2AS_1201)), "--asn", "AS131279",
                "--geoip", str(mmdb), "--write", *extra]
    return setup


error("registry-delegated-slash-8[update]",
      registry_update(delegated_with("apnic|KP|ipv4|8.0.0.0|16777216|20261130|allocated|EVIL")),
      "delegated-apnic-extended-20261201: line 14: apnic record placing 8.0.0.0/8 in KP: refused: 8.0.0.0/8 is "
      "wider than /16")
error("registry-delegated-v6-default-route[update]",
      registry_update(delegated_with("apnic|KP|ipv6|::|0|20261130|allocated|EVIL")),
      "line 14: apnic record placing ::/0 in KP: refused: ::/0 is the default route")
error("registry-delegated-v6-slash-16[update]",
      registry_update(delegated_with("apnic|KP|ipv6|2400::|16|20261130|allocated|EVIL")),
      "2400::/16 is wider than /32")
error("registry-delegated-private[update]",
      registry_update(delegated_with("apnic|KP|ipv4|10.1.2.0|256|20261130|allocated|EVIL")),
      "line 14: apnic record placing 10.1.2.0/24 in KP: refused: 10.1.2.0/24 overlaps 10.0.0.0/8, private")
error("registry-delegated-multicast[update]",
      registry_update(delegated_with("apnic|KP|ipv4|224.1.0.0|256|20261130|allocated|EVIL")), "multicast")
error("registry-delegated-record-dated-2099[update]",
      registry_update(delegated_with("apnic|KP|ipv4|175.45.190.0|256|20990101|allocated|EVIL")),
      "line 14: record date: refused: 2099-01-01 is in the future")
error("registry-delegated-file-dated-2099[update]", registry_update(delegated_with(enddate="20990101")),
      "version line: enddate: refused: 2099-01-01 is in the future")
error("registry-pfx2as-default-route[update]", registry_update(pfx2as=PFX2AS_1201 + "0.0.0.0\t0\t131279\n"),
      "routeviews-rv2-20261201-1200.pfx2as: line 12: AS131279 announcing 0.0.0.0/0: refused: 0.0.0.0/0 is the "
      "default route")
error("registry-pfx2as-slash-9-in-an-as-set[update]",
      registry_update(pfx2as=PFX2AS_1201 + "12.0.0.0\t9\t64500,131279\n"), "line 12: {AS64500,AS131279} announcing "
      "12.0.0.0/9: refused: 12.0.0.0/9 is wider than /16")
error("registry-pfx2as-dated-2099[update]",
      registry_update(None, None, None, "routeviews-rv2-20990101-1200.pfx2as"),
      "the date in its name: refused: 2099-01-01 is in the future")
KP_RECORD = {"country": {"iso_code": "KP"}}
error("registry-geoip-half-the-internet[update]", registry_update(geoip={"128.0.0.0/1": KP_RECORD}),
      "geoip-20261201.mmdb: network 128.0.0.0/1 placed in KP: refused: 128.0.0.0/1 is wider than /16")
error("registry-geoip-slash-1-from-zero[update]", registry_update(geoip={"0.0.0.0/1": KP_RECORD}),
      "network 0.0.0.0/1 placed in KP: refused")
error("registry-floor-option-not-a-length[update]", registry_update(None, None, None,
                                                                  "routeviews-rv2-20261201-1200.pfx2as",
                                                                  "--min-prefix-v4", "33"),
      "must be a prefix length from 1 to 32")
error("registry-large-change-held[update]",
      registry_update(delegated_with(*(f"apnic|KP|ipv4|175.46.{i}.0|256|20261130|allocated|NEW" for i in range(11)))),
      "a large change was held: 15 ranges added or retired (more than --max-changes 10)")
error("registry-large-by-addresses-held[update]",
      registry_update(delegated_with("apnic|KP|ipv4|175.46.0.0|131072|20261130|allocated|NEW"), None, None,
                      "routeviews-rv2-20261201-1200.pfx2as", "--min-prefix-v4", "15"),
      "132,352 addresses added (more than --max-addresses 65,536")


def wrote_range(cidr: str) -> Callable[[World, str, str], None]:
    def check(w: World, out: str, err: str) -> None:
        assert f"cidr: {cidr}" in w.path("in/catalogue.yaml").read_text() and "warning: large change" in err
    return check


handled("registry-large-change-accepted[update]",
        registry_update(delegated_with(*(f"apnic|KP|ipv4|175.46.{i}.0|256|20261130|allocated|NEW" for i in range(11))),
                        None, None, "routeviews-rv2-20261201-1200.pfx2as", "--accept-large"),
        wrote_range("175.46.10.0/24"), outputs=("in",))
handled("registry-floor-lowered-and-large-accepted[update]",
        registry_update(delegated_with("apnic|KP|ipv4|175.46.0.0|131072|20261130|allocated|NEW"), None, None,
                        "routeviews-rv2-20261201-1200.pfx2as", "--min-prefix-v4", "15", "--accept-large"),
        wrote_range("175.46.0.0/15"), outputs=("in",))

LIMIT_CASES: list[tuple[str, str, str]] = [
    ("cat-limit-slash-8", cat(("kp-star-jv", "175.45.176.0/22"), ("kp-wide", "8.0.0.0/8")),
     "ranges[1] (kp-wide): field 'cidr': 8.0.0.0/8 is wider than /16"),
    ("cat-limit-v4-default-route", cat(("kp-all", "0.0.0.0/0")), "0.0.0.0/0 is the default route"),
    ("cat-limit-v6-default-route", cat(("kp-all", "::/0")), "::/0 is the default route"),
    ("cat-limit-v6-slash-20", cat(("kp-v6", "2400::/20")), "2400::/20 is wider than /32"),
    ("cat-limit-private", cat(("kp-lab", "192.168.4.0/24")), "overlaps 192.168.0.0/16, private"),
    ("cat-limit-cgnat", cat(("kp-lab", "100.64.1.0/24")), "carrier-grade NAT"),
    ("cat-limit-loopback-v6", cat(("kp-lo", "::1/128")), "loopback"),
    ("cat-limit-multicast", cat(("kp-mc", "239.1.0.0/16")), "multicast"),
    ("cat-limit-first-seen-2099", OK_CAT + "    first_seen: 2099-01-01\n",
     "field 'first_seen': 2099-01-01 is in the future"),
    ("cat-limit-last-seen-2099", OK_CAT + "    last_seen: 2099-01-01\n", "field 'last_seen': 2099-01-01 is in the"),
]
for cid, text, match in LIMIT_CASES:
    error(f"{cid}[generate]", _catalogue_case(text, "generate"), match)
error("cat-limit-floor-not-a-length[generate]", lambda w: w.generate("--min-prefix-v6", "0"),
      "must be a prefix length from 1 to 128")
handled("cat-limit-floor-lowered[generate]",
        lambda w: w.generate("--catalogue", str(w.write("in/catalogue.yaml", cat(("kp-wide", "175.44.0.0/15")))),
                             "--min-prefix-v4", "15", check=False))
handled("cat-limit-documentation-network-allowed[generate]",
        lambda w: w.generate("--catalogue", str(w.write("in/catalogue.yaml", cat(("kp-doc", "192.0.2.0/24")))),
                             check=False))



# == issue 24 (inputs): logs whose header changes inside the file, mixed JSON times, gzip bombs ==

def concatenated_without(name: str) -> str:
    """Two conn logs in one file, the second written without column ``name``."""
    return CONN_HEAD + "".join(CONN_BODY[:30]) + "#close\t2013-09-16-00-00-00\n" + drop_column(name) + "".join(
        rows_without(name)[30:])


SECOND_FIELDS_LINE = CONN_HEAD.count("\n") + 30 + 1 + CONN_HEAD.split("#fields")[0].count("\n") + 1
JSON_ROW = '{{"ts": {ts}, "uid": "C{i}", "id.orig_h": "192.0.2.1", "id.resp_h": "175.45.176.{i}"}}\n'


def gzip_bomb(expanded: int = 48 << 20) -> bytes:
    """A conn.log.gz with one row, then blank lines deflating about 1000 to 1."""
    return gzip.compress((CONN_HEAD + CONN_BODY[0]).encode()) + gzip.compress(b"\n" * expanded, compresslevel=9)


handled("log-concatenated-second-header-drops-service[analyze]", _broken(concatenated_without("service")),
        warned(f"conn.log: line {SECOND_FIELDS_LINE}: no column 'service'"))
error("log-concatenated-second-header-drops-resp-h[analyze]", _broken(concatenated_without("id.resp_h")),
      f"conn.log: line {SECOND_FIELDS_LINE}: column 'id.resp_h' is missing")
error("log-concatenated-gz-second-header-drops-ts[report]",
      lambda w: w.report(logs=[w.write("logs/conn.log.gz", gzip.compress(concatenated_without("ts").encode()))]),
      f"conn.log.gz: line {SECOND_FIELDS_LINE}: column 'ts' is missing")
error("log-json-ts-neither-form[analyze]",
      _broken(JSON_ROW.format(ts=1700000000, i=1) + JSON_ROW.format(ts='"2023-11-14T22:13:20Z"', i=2)
              + "\n" + JSON_ROW.format(ts='"last tuesday"', i=3)), "conn.log: line 4: ts 'last tuesday' is neither")
error("log-gzip-bomb[analyze]", _broken(gzip_bomb(), "logs/conn.log.gz"), "refused as a decompression bomb")
error("log-gzip-bomb[report]", lambda w: w.report(logs=[w.write("logs/conn.log.gz", gzip_bomb())]),
      "refused as a decompression bomb")
error("log-json-gzip-bomb[analyze]", _broken(gzip.compress(JSON_ROW.format(ts=1, i=1).encode())
                                             + gzip.compress(b"\n" * (48 << 20), compresslevel=9),
                                             "logs/conn.log.gz"), "refused as a decompression bomb")
error("log-over-max-log-bytes[analyze]", lambda w: w.analyze("--max-log-bytes", "2048"),
      "expands beyond 2,048 bytes (--max-log-bytes)")
error("log-gzip-ratio-not-positive[analyze]", lambda w: w.analyze("--max-gzip-ratio", "0"), "must be above zero")

# -- issue 24: leftovers of a killed run, symlinked local.zeek, capture link types ----------
# (signals and full disks need a real process and a real filesystem: tests/test_signals.py
# and tests/test_full_disk.py)

def dead_pid() -> int:
    """The pid of a process that has ended: what a run killed with kill -9 leaves in its temp names."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _killed_runs_temp(rel: str, name: str) -> Callable[[World], list[str]]:
    def setup(w: World) -> list[str]:
        argv = w.generate(check=False) if rel.startswith("out/zeek") else w.analyze()
        assert main(argv) in (0, 1)
        w.write(f"{rel}/.{name}.{dead_pid()}.abcdefgh.tmp", "half a file\n")
        return argv
    return setup


def temp_gone(rel: str) -> Callable[[World, str, str], None]:
    def check(w: World, out: str, err: str) -> None:
        assert [p.name for p in w.path(rel).iterdir() if p.name.endswith(".tmp")] == []
    return check


def temp_kept(rel: str, name: str) -> Callable[[World, str, str], None]:
    def check(w: World, out: str, err: str) -> None:
        assert [p.name.split(".")[1] for p in w.path(rel).iterdir() if p.name.endswith(".tmp")] == [name]
    return check


handled("gen-removes-a-killed-runs-temp-file", _killed_runs_temp("out/zeek", "main.zeek"), temp_gone("out/zeek"))
handled("gen-keeps-a-lookalike-temp-of-a-file-not-ours", _killed_runs_temp("out/zeek", "notes"),
        temp_kept("out/zeek", "notes"))
handled("analyze-removes-a-killed-runs-temp-file", _killed_runs_temp("out", "findings.jsonl"), temp_gone("out"))


def _linked_local_zeek(w: World) -> list[str]:
    managed = w.write("cm/local.zeek", "@load misc/loaded-scripts\n")
    w.path("site").mkdir()
    w.path("site/local.zeek").symlink_to(managed)
    return deploy_zeek(w, "--add-load")


def load_went_through_the_link(w: World, out: str, err: str) -> None:
    link = w.path("site/local.zeek")
    assert (link.is_symlink(), "@load nk-sensor" in w.path("cm/local.zeek").read_text()) == (True, True)


handled("deploy-symlinked-local-zeek", _linked_local_zeek, load_went_through_the_link, outputs=("site", "cm"))


def _dangling_local_zeek(w: World) -> list[str]:
    w.path("site").mkdir()
    w.path("site/local.zeek").symlink_to(w.path("cm/gone.zeek"))
    return deploy_zeek(w, "--add-load")


error("deploy-local-zeek-dangling-link", _dangling_local_zeek, "is a symbolic link to")


def _capture(header: bytes) -> Callable[[World], list[str]]:
    def setup(w: World) -> list[str]:
        gen_ok(w)
        return ["replay", "--engine", "suricata", "--rules", str(w.path("out/suricata")),
                str(w.write("in/capture", header))]
    return setup


PCAP_SLL2 = bytes.fromhex("d4c3b2a1020004000000000000000000ffff0000") + (276).to_bytes(4, "little")
PCAPNG_USER0 = (bytes.fromhex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000")
                + bytes.fromhex("0100000014000000") + (147).to_bytes(2, "little") + bytes(6)
                + bytes.fromhex("14000000"))
error("replay-link-type-sll2", _capture(PCAP_SLL2), "link type 276 cannot be read by Suricata", needs="suricata")
error("replay-pcapng-link-type-user0", _capture(PCAPNG_USER0), "link type 147 cannot be read by Suricata",
      needs="suricata")
error("replay-pcap-header-cut-short", _capture(PCAP_SLL2[:16]), "cut short", needs="suricata")


IDS = [c.id for c in CASES]
assert len(IDS) == len(set(IDS)), "case ids must be unique"


def tree_hashes(root: Path) -> dict[str, str]:
    """Every entry under ``root``: files by content hash, links by target, FIFOs and dirs by kind."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_fifo():
            out[rel] = "fifo"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def outside(hashes: dict[str, str], outputs: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in hashes.items() if not any(k == o or k.startswith(o + "/") for o in outputs)}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hostile_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if case.needs and shutil.which(case.needs) is None:
        pytest.skip(f"needs {case.needs}")
    world = World(tmp_path / "world")
    world.root.mkdir()
    argv = case.setup(world)
    capsys.readouterr()
    before = tree_hashes(world.root)
    code = main(argv)
    out, err = capsys.readouterr()
    after = tree_hashes(world.root)
    assert "Traceback" not in err
    if case.expect == "error":
        lines = err.strip().splitlines()
        assert (code, len(lines)) == (2, 1), err
        assert lines[0].startswith("sensor-plugins") and ": error: " in lines[0], err
        assert case.match in lines[0], err
        assert after == before, "a refused command changed files"
    else:
        assert code in (0, 1), err
        assert outside(after, case.outputs) == outside(before, case.outputs), "files outside the outputs changed"
        if case.check is not None:
            case.check(world, out, err)


def test_the_suite_holds_at_least_150_cases_of_both_classes() -> None:
    errors = sum(c.expect == "error" for c in CASES)
    assert (len(CASES) >= 150, errors > 100, len(CASES) - errors >= 20) == (True, True, True)


SUBPROCESS = ["cat-repeated-cidr-in-a-range[generate]", "tor-loopback[analyze]", "log-missing-id.resp_h[analyze]",
              "out-is-the-input[analyze]", "z-threshold-nan[report]", "cat-fifo[generate]"]


@pytest.mark.parametrize("case_id", SUBPROCESS)
def test_the_real_program_exits_2_with_one_stderr_line(case_id: str, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.id == case_id)
    world = World(tmp_path / "world")
    world.root.mkdir()
    argv = case.setup(world)
    before = tree_hashes(world.root)
    proc = subprocess.run([sys.executable, "-m", "sensor_plugins", *argv], capture_output=True, text=True,
                          timeout=120, check=False)
    lines = proc.stderr.strip().splitlines()
    assert (proc.returncode, len(lines), case.match in proc.stderr, tree_hashes(world.root) == before) == (
        2, 1, True, True), proc.stderr


def bittorrent_rows(count: int) -> list[str]:
    """Real conn.log rows, each made a finding: given a fresh uid and a BitTorrent port."""
    fields = CONN_HEAD.split("#fields\t", 1)[1].split("\n", 1)[0].split("\t")
    port = fields.index("id.resp_p")
    rows = []
    for i in range(count):
        cells = CONN_BODY[i % len(CONN_BODY)].rstrip("\n").split("\t")
        cells[1], cells[port] = f"Cbt{i}", "6881"
        rows.append("\t".join(cells) + "\n")
    return rows


def test_stdout_on_a_full_disk_is_one_error_line_with_exit_2(tmp_path: Path) -> None:
    world = World(tmp_path / "world")
    argv = ["analyze", "--scope", "all", "--format", "jsonl", str(world.logs(bittorrent_rows(50)))]
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "sensor_plugins", *argv], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120, check=False)
    lines = proc.stderr.strip().splitlines()
    assert (proc.returncode, len(lines), "No space left on device" in proc.stderr) == (2, 1, True), proc.stderr


def test_a_reader_closing_the_pipe_early_is_said_with_exit_2(tmp_path: Path) -> None:
    world = World(tmp_path / "world")
    # Enough findings to fill the pipe.
    proc = subprocess.Popen([sys.executable, "-m", "sensor_plugins", "analyze", "--scope", "all", "--format", "jsonl",
                             str(world.logs(bittorrent_rows(4000)))], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.wait(timeout=120)
    assert (proc.returncode, len(err.strip().splitlines()), "pipe" in err.lower()) == (2, 1, True), err


def test_a_bug_of_ours_is_still_one_line_with_exit_2(monkeypatch, capsys) -> None:
    from sensor_plugins.inputs import options

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(options, "load_catalogue", broken)
    code = main(["generate", "--check"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert (code, len(lines), "internal error KeyError" in lines[0]) == (2, 1, True)
