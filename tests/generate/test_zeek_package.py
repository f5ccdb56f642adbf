"""The generated Zeek package: layout, data files, scripts and the interface they promise."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from pathlib import Path

import pytest
import zeekscript
from conftest import catalogue_yaml

from sensor_plugins.generate.content import SensorContent
from sensor_plugins.generate.zeek import (
    INTEL_FILE,
    OPT_IN_SCRIPTS,
    RANGES_TSV,
    TOR_TSV,
    ZeekRenderer,
    render,
    tsv_unescape,
)
from sensor_plugins.inputs.catalogue import load_catalogue, parse_catalogue
from sensor_plugins.inputs.feeds import TorEntry, TorFeed, TorList, load_tor_list


@pytest.fixture(scope="module")
def bundled_content() -> SensorContent:
    return SensorContent(load_catalogue(), load_tor_list())


@pytest.fixture(scope="module")
def bundled_files(bundled_content: SensorContent) -> dict[str, str]:
    return render(bundled_content).files


@pytest.fixture(scope="module")
def package_dir(bundled_files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zeek_scripts")
    for rel, text in bundled_files.items():
        (out / rel).write_text(text, encoding="utf-8")
    return out


def read_table(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """Read an Input-framework file the way Zeek's ASCII reader does."""
    fields: list[str] = []
    rows = []
    for line in text.splitlines():
        if line.startswith("#fields\t"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            values = line.split("\t")
            assert len(values) == len(fields), f"wrong field count: {line!r}"
            rows.append({f: tsv_unescape(v) for f, v in zip(fields, values, strict=True)})
    return fields, rows


def parse_error(path: Path) -> str | None:
    script = zeekscript.Script(path)
    if script.parse() and not script.has_error():
        return None
    _text, line, msg = script.get_error()
    return f"{path.name}:{(line or 0) + 1}: {msg}"


def zeek_files(package: Path) -> list[Path]:
    return sorted(package.glob("*.zeek"))


def test_every_zeek_file_parses_with_zeekscript(package_dir: Path) -> None:
    errors = [e for p in zeek_files(package_dir) if (e := parse_error(p))]
    assert errors == []


def test_package_has_zkg_meta_pointing_at_its_own_directory(bundled_files: dict[str, str]) -> None:
    meta = bundled_files["zkg.meta"]
    assert re.search(r"^\[package\]$", meta, re.M) and re.search(r"^script_dir = \.$", meta, re.M)


def test_load_file_loads_every_script_but_the_opt_in_ones_and_the_signatures(bundled_files: dict[str, str]) -> None:
    loads = set(re.findall(r"^@load \./(\S+)$", bundled_files["__load__.zeek"], re.M))
    scripts = {name.removesuffix(".zeek") for name in bundled_files
               if name.endswith(".zeek") and name not in OPT_IN_SCRIPTS} - {"__load__"}
    assert (loads, "@load-sigs ./bittorrent" in bundled_files["__load__.zeek"]) == (scripts, True)


def test_main_declares_module_and_the_four_notice_types(bundled_files: dict[str, str]) -> None:
    main = bundled_files["main.zeek"]
    block = re.search(r"redef enum Notice::Type \+= \{(.*?)\};", main, re.S)
    names = re.findall(r"^\t\t(\w+),$", block.group(1), re.M) if block else []
    assert ("module NKSensor;" in main, names) == (
        True, ["Range_Traffic", "Weak_TLS", "Tor_Traffic", "BitTorrent"]
    )


def test_conn_log_gains_optional_logged_range_and_side_fields(bundled_files: dict[str, str]) -> None:
    fields = re.findall(r"^\t\t(nk_\w+): string &log &optional;$", bundled_files["main.zeek"], re.M)
    assert fields == ["nk_range", "nk_side"]


def test_every_export_declaration_has_a_doc_comment(bundled_files: dict[str, str]) -> None:
    main = bundled_files["main.zeek"]
    export = main[main.index("export {"):]
    lines = export.splitlines()
    declaration = re.compile(r"^\t+(option |const |global |type |\w+: |\w+,$)")
    undocumented = [
        line.strip() for i, line in enumerate(lines)
        if declaration.match(line) and not lines[i - 1].strip().startswith("##")
    ]
    assert undocumented == []


def test_every_tunable_is_an_option(bundled_files: dict[str, str]) -> None:
    options = set(re.findall(r"^\toption (\w+) =", bundled_files["main.zeek"], re.M))
    assert {
        "ranges_file", "tor_file", "range_traffic_suppress", "weak_tls_scope", "tls_minimum_version",
        "unsafe_cipher_regex", "minimal_key_length", "weak_signature_regex", "weak_tls_suppress",
        "tor_cert_issuer_regex", "tor_cert_subject_regex", "tor_suppress", "bittorrent_suppress",
        "tracker_announce_regex", "intel_seen_catalogue", "tor_scope", "bittorrent_scope",
    } <= options


def notice_calls(files: dict[str, str]) -> list[str]:
    return [m.group(0) for text in files.values()
            for m in re.finditer(r"notice_once\(Notice::Info\(.*?\)\);", text, re.S)]


def test_every_notice_goes_through_notice_once(bundled_files: dict[str, str]) -> None:
    # In a cluster notice_once hands a worker's notice to the manager, the one place that
    # can suppress a pair seen by two workers at once; a bare NOTICE would bypass it.
    bare = {name: len(re.findall(r"\bNOTICE\(", text)) for name, text in bundled_files.items()
            if name.endswith(".zeek")}
    assert {name: n for name, n in bare.items() if n} == {"main.zeek": 2}
    main = bundled_files["main.zeek"]
    assert "Broker::publish(Cluster::manager_topic, cluster_notice, n);" in main
    assert re.search(r"event NKSensor::cluster_notice\(n: Notice::Info\) &priority=0\n\t\{.*?NOTICE\(n\);", main, re.S)


def test_every_notice_sets_identifier_and_suppress_for(bundled_files: dict[str, str]) -> None:
    calls = notice_calls(bundled_files)
    lacking = [c for c in calls if "$identifier=" not in c or "$suppress_for=" not in c]
    assert (len(calls) >= 4, lacking) == (True, [])


def test_conn_fields_are_set_between_set_conn_and_the_log_write(bundled_files: dict[str, str]) -> None:
    # base/protocols/conn/main.zeek fills c$conn at priority 5 and writes conn.log at -5.
    match = re.search(r"event connection_state_remove\(c: connection\) &priority=(-?\d+)\n\t\{(.*?)\n\t\}",
                      bundled_files["tagging.zeek"], re.S)
    assert match and -5 < int(match.group(1)) < 5 and "c$conn$nk_range" in match.group(2)


def test_ranges_are_loaded_with_input_reread_and_fall_back_with_a_warning(
    bundled_files: dict[str, str],
) -> None:
    live = bundled_files["live-data.zeek"]
    assert (
        live.count("$mode=Input::REREAD"), "file_size(ranges_file) < 0.0" in live, "Reporter::warning" in live
    ) == (2, True, True)


def test_tagging_starts_from_the_compiled_in_ranges_before_the_file_is_read(
    bundled_files: dict[str, str],
) -> None:
    # The Input framework reads asynchronously; under `zeek -r` early packets would
    # otherwise meet an empty table. The stream fills its own table, swapped in whole.
    live = bundled_files["live-data.zeek"]
    init = re.search(r"event zeek_init\(\) &priority=5\n\t\{(.*?)\n\t\}", live, re.S)
    assert (
        init is not None and "ranges = copy(default_ranges);" in init.group(1),
        "$destination=file_ranges" in live,
        "ranges = copy(file_ranges);" in live,
    ) == (True, True, True)


def test_no_script_loops_over_the_catalogue_per_connection(bundled_files: dict[str, str]) -> None:
    per_connection = ("tagging.zeek", "tls.zeek", "tor.zeek", "bittorrent.zeek", "intel.zeek", "intel-tor.zeek")
    # intel-tor's loops over the Tor table run once per (re)read of tor-relays.tsv, from
    # Input::end_of_data only, never for a connection.
    sync = re.compile(r"^function sync_intel_tor\(\)\n\t\{.*?^\t\}", re.S | re.M)
    texts = {name: sync.sub("", bundled_files[name]) for name in per_connection}
    loops = [name for name, text in texts.items() if re.search(r"\bfor \(", text)]
    assert loops == []
    calls = re.findall(r"event (\S+)\(.*?\n\t\{[^}]*?sync_intel_tor\(\);", texts["intel-tor.zeek"], re.S)
    assert (calls, texts["intel-tor.zeek"].count("sync_intel_tor();")) == (["Input::end_of_data"], 1)


def test_ranges_tsv_holds_exactly_the_catalogue(
    bundled_files: dict[str, str], bundled_content: SensorContent
) -> None:
    _fields, rows = read_table(bundled_files[RANGES_TSV])
    expected = [
        {
            "cidr": str(r.cidr), "name": r.name, "country": r.country, "owner": r.owner,
            "source": r.source, "confidence": r.confidence, "asn": str(r.asn) if r.asn else "",
            "first_seen": r.first_seen.isoformat() if r.first_seen else "",
            "last_seen": r.last_seen.isoformat() if r.last_seen else "", "notes": r.notes,
        }
        for r in bundled_content.catalogue.ranges
    ]
    assert rows == expected


def test_tor_tsv_holds_exactly_the_tor_list(
    bundled_files: dict[str, str], bundled_content: SensorContent
) -> None:
    _fields, rows = read_table(bundled_files[TOR_TSV])
    got = {row["address"]: row["role"] for row in rows}
    expected = {a: e.role for a, e in bundled_content.tor.entries.items()}
    assert (len(rows), got) == (len(expected), expected)


def test_intel_file_has_a_subnet_per_range_and_nothing_else(
    bundled_files: dict[str, str], bundled_content: SensorContent
) -> None:
    fields, rows = read_table(bundled_files[INTEL_FILE])
    got = sorted((row["indicator"], row["indicator_type"]) for row in rows)
    expected = sorted((str(r.cidr), "Intel::SUBNET") for r in bundled_content.catalogue.ranges)
    assert (fields, got) == (["indicator", "indicator_type", "meta.source", "meta.desc"], expected)


def test_the_package_leaves_the_tor_intel_to_sites_that_load_it(bundled_files: dict[str, str]) -> None:
    # Thousands of Tor items cost the Intel store about 12 MiB (docs/BENCHMARKS.md, B7).
    assert "intel-tor" not in bundled_files["__load__.zeek"]
    assert "intel-tor.zeek" in OPT_IN_SCRIPTS


def test_the_tor_intel_comes_from_the_gated_tor_table_not_a_file_of_its_own(bundled_files: dict[str, str]) -> None:
    # A second data file would be read by the Intel framework's own input stream, outside
    # the package's start-up gate: under zeek -r the first Tor connection could beat it.
    assert not [name for name in bundled_files if name.endswith(".dat") and name != INTEL_FILE]
    assert not any("Intel::read_files" in text for name, text in bundled_files.items()
                   if name.endswith(".zeek") and name != "intel.zeek")
    intel_tor = bundled_files["intel-tor.zeek"]
    assert "Intel::insert(" in intel_tor and "tor_nodes" in intel_tor
    assert "Cluster::local_node_type() == Cluster::MANAGER" in intel_tor


def test_intel_items_carry_source_and_description(bundled_files: dict[str, str]) -> None:
    _fields, rows = read_table(bundled_files[INTEL_FILE])
    assert all(row["meta.source"] and row["meta.desc"] for row in rows)


def test_intel_description_names_the_range_and_its_owner(bundled_files: dict[str, str]) -> None:
    _fields, rows = read_table(bundled_files[INTEL_FILE])
    star = next(row for row in rows if row["indicator"] == "175.45.176.0/22")
    assert star["meta.desc"].startswith("kp-star-jv: Star Joint Venture Co. Ltd.")


def test_defaults_compile_in_every_catalogue_range(
    bundled_files: dict[str, str], bundled_content: SensorContent
) -> None:
    entries = re.findall(r'^\t\[(\S+)\] = RangeInfo\(\n\t\t\$name="([^"]*)"', bundled_files["defaults.zeek"], re.M)
    assert entries == [(str(r.cidr), r.name) for r in bundled_content.catalogue.ranges]


def test_ipv6_range_is_written_as_a_bracketed_zeek_subnet(tmp_path: Path) -> None:
    catalogue = parse_catalogue(catalogue_yaml(("v6-net", "2001:db8:40::/48")))
    files = render(SensorContent(catalogue, TorList())).files
    (tmp_path / "defaults.zeek").write_text(files["defaults.zeek"])
    assert ("[[2001:db8:40::]/48] = RangeInfo(" in files["defaults.zeek"],
            parse_error(tmp_path / "defaults.zeek")) == (True, None)


def test_same_input_renders_byte_identical_files(bundled_content: SensorContent) -> None:
    first = ZeekRenderer().render(bundled_content, None).files
    again = ZeekRenderer().render(SensorContent(load_catalogue(), load_tor_list()), None).files
    assert first == again


def test_output_dates_come_only_from_the_inputs(bundled_files: dict[str, str]) -> None:
    today = dt.date.today().isoformat()
    assert [name for name, text in bundled_files.items() if today in text] == []


def test_summary_lists_changed_files_against_the_previous_package(
    bundled_content: SensorContent, package_dir: Path, tmp_path: Path
) -> None:
    previous = tmp_path / "previous"
    previous.mkdir()
    for f in package_dir.iterdir():
        (previous / f.name).write_bytes(f.read_bytes())
    (previous / TOR_TSV).write_text("#fields\taddress\trole\n")
    summary = ZeekRenderer().render(bundled_content, previous).summary
    assert summary[-1] == f"zeek: changed: {TOR_TSV}"


def test_tor_entry_role_and_dates_reach_the_tor_table() -> None:
    entry = TorEntry("2001:db8::7", "exit", None, dt.date(2024, 3, 12), "exit-addresses")
    feed = TorFeed("exit-addresses", "exit-addresses", dt.date(2024, 3, 12), (entry,))
    content = SensorContent(load_catalogue(), TorList((feed,), {entry.address: entry}))
    _fields, rows = read_table(render(content).files[TOR_TSV])
    assert rows == [{"address": "2001:db8::7", "role": "exit", "feed": "exit-addresses",
                     "last_seen": "2024-03-12"}]


def test_tor_table_lists_ipv4_before_ipv6_in_numeric_order(bundled_files: dict[str, str]) -> None:
    _fields, rows = read_table(bundled_files[TOR_TSV])
    keys = [ipaddress.ip_address(r["address"]) for r in rows]
    assert keys == sorted(keys, key=lambda a: (a.version, int(a)))
