"""`generate`: deterministic output, --check, atomic replacement, and sids across catalogue changes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, catalogue_yaml

from sensor_plugins import atomic
from sensor_plugins.atomic import MANIFEST
from sensor_plugins.cli import main as cli_main
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.generate.command import generate
from sensor_plugins.generate.suricata import SuricataRenderer
from sensor_plugins.generate.zeek import ZeekRenderer

needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed")

TWO_RANGES = (("kp-star-jv", "175.45.176.0/22"), ("kp-satgate", "77.94.35.0/24"))


def snapshot(*dirs: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for d in dirs for p in sorted(d.rglob("*")) if p.is_file()}


def gen(tmp_path: Path, catalogue: Path | None = None, **kwargs):
    return generate(catalogue, None, tmp_path / "zeek", tmp_path / "suricata", **kwargs)


def range_sids(tmp_path: Path, name: str) -> dict[str, tuple[int, int]]:
    rules = json.loads((tmp_path / "suricata" / "sid-map.json").read_text())["rules"]
    return {k: (v["sid"], v["rev"]) for k, v in rules.items() if k.startswith(f"range:{name}:")}


def test_the_committed_output_is_what_the_bundled_inputs_generate():
    result = generate(None, None, REPO / "zeek_scripts", REPO / "suricata_rules", check=True)
    assert result.stale == []


def test_generation_is_byte_identical_for_the_same_input(tmp_path):
    gen(tmp_path / "a", validate=False)
    gen(tmp_path / "b", validate=False)
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert {k.replace("/a/", "/b/", 1): v for k, v in a.items()} == b


def test_regenerating_in_place_changes_nothing(tmp_path):
    gen(tmp_path, validate=False)
    before = snapshot(tmp_path)
    gen(tmp_path, validate=False)
    assert snapshot(tmp_path) == before


def test_check_lists_an_edited_file_as_stale(tmp_path):
    gen(tmp_path, validate=False)
    (tmp_path / "zeek" / "main.zeek").write_text("# edited by hand\n")
    assert gen(tmp_path, check=True).stale == [f"{tmp_path / 'zeek' / 'main.zeek'} (differs)"]


def test_check_lists_a_file_we_wrote_that_is_no_longer_generated(tmp_path):
    gen(tmp_path, validate=False)
    (tmp_path / "suricata" / "leftover.rules").write_text("")
    with (tmp_path / "suricata" / MANIFEST).open("a") as manifest:
        manifest.write("leftover.rules\n")
    assert gen(tmp_path, check=True).stale == [
        f"{tmp_path / 'suricata' / 'leftover.rules'} (no longer generated)",
        f"{tmp_path / 'suricata' / MANIFEST} (differs)",
    ]


def test_a_file_of_the_sites_own_is_neither_stale_nor_touched(tmp_path):
    gen(tmp_path, validate=False)
    (tmp_path / "zeek" / "local.zeek").write_text("@load site-policy\n")
    (tmp_path / "zeek" / "site").mkdir()
    (tmp_path / "zeek" / "site" / "x.zeek").write_text("# ours\n")
    assert gen(tmp_path, check=True).stale == []
    gen(tmp_path, validate=False)
    assert ((tmp_path / "zeek" / "local.zeek").read_text(), (tmp_path / "zeek" / "site" / "x.zeek").read_text()) == (
        "@load site-policy\n", "# ours\n")


def test_check_exits_1_from_the_command_line(tmp_path):
    gen(tmp_path, validate=False)
    (tmp_path / "zeek" / "main.zeek").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "sensor_plugins", "generate", "--check",
         "--zeek-out", str(tmp_path / "zeek"), "--suricata-out", str(tmp_path / "suricata")],
        capture_output=True, text=True, check=False,
    )
    assert (proc.returncode, "main.zeek (missing)" in proc.stderr) == (1, True)


@needs_suricata
def test_a_rule_that_fails_suricata_T_replaces_nothing(tmp_path, monkeypatch):
    gen(tmp_path)
    before = snapshot(tmp_path)
    real_render = SuricataRenderer.render

    def render_with_a_bad_rule(self, content, previous):
        rendered = real_render(self, content, previous)
        name = next(n for n in rendered.files if n.endswith(".rules"))
        rendered.files[name] += 'alert tcp any any -> any any (msg:"broken"; content:; sid:1659999; rev:1;)\n'
        return rendered

    monkeypatch.setattr(SuricataRenderer, "render", render_with_a_bad_rule)
    with pytest.raises(SensorPluginsError, match=r"\.rules.*line|line.*\.rules"):
        gen(tmp_path)
    assert snapshot(tmp_path) == before


def test_a_zeek_script_that_does_not_parse_replaces_nothing(tmp_path, monkeypatch):
    gen(tmp_path, validate=False)
    before = snapshot(tmp_path)
    real_render = ZeekRenderer.render

    def render_broken(self, content, previous):
        rendered = real_render(self, content, previous)
        rendered.files["main.zeek"] += "\nevent zeek_init( {\n"
        return rendered

    monkeypatch.setattr(ZeekRenderer, "render", render_broken)
    monkeypatch.setattr("sensor_plugins.generate.command.validate_suricata_dir", lambda d: True)
    with pytest.raises(SensorPluginsError, match=r"main\.zeek:\d+: zeekscript parse error.*nothing was replaced"):
        gen(tmp_path)
    assert snapshot(tmp_path) == before


def test_adding_a_range_adds_its_rules_and_keeps_every_existing_sid(tmp_path, write_catalogue):
    gen(tmp_path, write_catalogue(catalogue_yaml(TWO_RANGES[0])), validate=False)
    before = range_sids(tmp_path, "kp-star-jv")
    gen(tmp_path, write_catalogue(catalogue_yaml(*TWO_RANGES)), validate=False)
    assert (range_sids(tmp_path, "kp-star-jv"), bool(range_sids(tmp_path, "kp-satgate"))) == (before, True)


def test_changing_a_ranges_cidr_keeps_its_sids_and_raises_rev(tmp_path, write_catalogue):
    gen(tmp_path, write_catalogue(catalogue_yaml(*TWO_RANGES)), validate=False)
    before = range_sids(tmp_path, "kp-satgate")
    moved = catalogue_yaml(TWO_RANGES[0], ("kp-satgate", "77.94.36.0/24"))
    gen(tmp_path, write_catalogue(moved), validate=False)
    assert range_sids(tmp_path, "kp-satgate") == {k: (sid, rev + 1) for k, (sid, rev) in before.items()}


def test_removing_a_range_retires_its_sids(tmp_path, write_catalogue):
    gen(tmp_path, write_catalogue(catalogue_yaml(*TWO_RANGES)), validate=False)
    gone = range_sids(tmp_path, "kp-satgate")
    gen(tmp_path, write_catalogue(catalogue_yaml(TWO_RANGES[0])), validate=False)
    retired = json.loads((tmp_path / "suricata" / "sid-map.json").read_text())["retired"]
    assert {k: retired.get(k) for k in gone} == {k: sid for k, (sid, _rev) in gone.items()}


def test_a_broken_catalogue_is_one_line_on_stderr_and_exit_2(tmp_path, write_catalogue):
    bad = write_catalogue(catalogue_yaml(("bad", "175.45.176.1/22")))
    proc = subprocess.run(
        [sys.executable, "-m", "sensor_plugins", "generate", "--catalogue", str(bad),
         "--zeek-out", str(tmp_path / "z"), "--suricata-out", str(tmp_path / "s")],
        capture_output=True, text=True, check=False,
    )
    assert (proc.returncode, proc.stderr.count("\n"), "host bits set" in proc.stderr) == (2, 1, True)


HOSTILE_TEXT = 'x"; alert ip any any -> any any (msg:"pwn"; sid:1;) \\ %s %n @load evil ) ; 조선 <script>'


@needs_suricata
def test_hostile_catalogue_text_is_rendered_inert_and_both_engines_accept_the_output(tmp_path, write_catalogue):
    text = catalogue_yaml(("kp-star-jv", "175.45.176.0/22"))
    for field in ("owner", "source"):
        text = text.replace(f"    {field}: Test {field}\n", f"    {field}: '{HOSTILE_TEXT}'\n")
    text += f"    notes: '{HOSTILE_TEXT}'\n"
    gen(tmp_path, write_catalogue(text))  # validates with zeekscript and suricata -T
    rules = [line for p in (tmp_path / "suricata").glob("*.rules")
             for line in p.read_text().splitlines() if not line.startswith("#")]
    # Zeek code with every string literal removed: what is left is what Zeek executes.
    zeek_code = [re.sub(r'"(?:\\.|[^"\\])*"', '""', line) for p in (tmp_path / "zeek").glob("*.zeek")
                 for line in p.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert ([r for r in rules if "pwn" in r], [z for z in zeek_code if "evil" in z or "pwn" in z]) == ([], [])


def test_a_write_failing_in_the_suricata_dir_puts_the_zeek_side_back_too(tmp_path, monkeypatch):
    gen(tmp_path, validate=False)
    other = catalogue_yaml(("kp-star-jv", "175.45.176.0/22"), ("kp-extra", "210.52.109.0/24"))
    (tmp_path / "other.yaml").write_text(other)
    before = snapshot(tmp_path)
    real_write = atomic.write_bytes_atomic

    def read_only_suricata(path, data, mode=0o644):
        if "suricata" in Path(path).parts:
            raise OSError(30, "Read-only file system", str(path))
        real_write(path, data, mode)

    monkeypatch.setattr(atomic, "write_bytes_atomic", read_only_suricata)
    with pytest.raises(SensorPluginsError, match="Read-only file system; every file was restored"):
        generate(tmp_path / "other.yaml", None, tmp_path / "zeek", tmp_path / "suricata", validate=False)
    assert snapshot(tmp_path) == before


def test_a_run_killed_half_way_leaves_nothing_the_next_run_refuses(tmp_path, monkeypatch):
    real_put = atomic.put
    calls = []

    def killed(path, data):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt  # as good as kill -9 here: nothing is put back
        real_put(path, data)

    monkeypatch.setattr(atomic, "put", killed)
    with pytest.raises(KeyboardInterrupt):
        gen(tmp_path, validate=False)
    monkeypatch.setattr(atomic, "put", real_put)
    other = tmp_path / "other.yaml"
    other.write_text(catalogue_yaml(("kp-star-jv", "175.45.176.0/22"), ("kp-extra", "210.52.109.0/24")))
    generate(other, None, tmp_path / "zeek", tmp_path / "suricata", validate=False)
    assert generate(other, None, tmp_path / "zeek", tmp_path / "suricata", check=True).stale == []


@pytest.mark.parametrize("kill_at", [1, 2, 4, 7, 11])
def test_an_update_killed_at_any_write_leaves_nothing_the_next_run_refuses(tmp_path, monkeypatch, kill_at):
    # The files being replaced hold our old bytes or our new ones when the run dies: the
    # manifest written first lists both digests, so neither looks like a hand edit.
    gen(tmp_path, validate=False)
    other = tmp_path / "other.yaml"
    other.write_text(catalogue_yaml(("kp-star-jv", "175.45.176.0/22"), ("kp-extra", "210.52.109.0/24")))
    real_put, calls = atomic.put, []

    def killed(path, data):
        calls.append(path)
        if len(calls) == kill_at:
            raise KeyboardInterrupt  # as good as kill -9 here: nothing is put back
        real_put(path, data)

    monkeypatch.setattr(atomic, "put", killed)
    with pytest.raises(KeyboardInterrupt):
        generate(other, None, tmp_path / "zeek", tmp_path / "suricata", validate=False)
    monkeypatch.setattr(atomic, "put", real_put)
    third = tmp_path / "third.yaml"
    third.write_text(catalogue_yaml(("kp-satgate", "77.94.35.0/24")))
    generate(third, None, tmp_path / "zeek", tmp_path / "suricata", validate=False)
    assert generate(third, None, tmp_path / "zeek", tmp_path / "suricata", check=True).stale == []


def test_a_file_of_ours_edited_by_hand_is_refused_and_nothing_changes(tmp_path, capsys):
    gen(tmp_path, validate=False)
    main_zeek = tmp_path / "zeek" / "main.zeek"
    main_zeek.write_text(main_zeek.read_text() + "redef NKSensor::tor_suppress = 2 days;\n")
    other = tmp_path / "other.yaml"
    other.write_text(catalogue_yaml(("kp-star-jv", "175.45.176.0/22")))
    before = snapshot(tmp_path)
    code = cli_main(["generate", "--catalogue", str(other), "--zeek-out", str(tmp_path / "zeek"),
                     "--suricata-out", str(tmp_path / "suricata"), "--no-validate"])
    err = capsys.readouterr().err
    assert (code, len(err.splitlines()), snapshot(tmp_path)) == (2, 1, before)
    assert f"{main_zeek}: changed since sensor-plugins wrote it" in err


def test_deleting_the_edited_file_lets_generate_write_it_again(tmp_path):
    gen(tmp_path, validate=False)
    main_zeek = tmp_path / "zeek" / "main.zeek"
    main_zeek.write_text("# edited\n")
    main_zeek.unlink()
    gen(tmp_path, validate=False)
    assert gen(tmp_path, check=True).stale == []


def test_a_manifest_of_names_only_from_an_older_version_is_still_honoured(tmp_path):
    gen(tmp_path, validate=False)
    manifest = tmp_path / "zeek" / MANIFEST
    names = [line.split("  ", 1)[1] for line in manifest.read_text().splitlines() if not line.startswith("#")]
    manifest.write_text("".join(f"{name}\n" for name in names))
    (tmp_path / "zeek" / "main.zeek").write_text("# bytes of an older version\n")
    gen(tmp_path, validate=False)
    assert gen(tmp_path, check=True).stale == []
