"""generate's Zeek check: zeekscript's grammar decides, and a failure names file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
import zeekscript

from sensor_plugins.generate.validate import ValidationError, check_zeek_script

ZEEK_SCRIPTS = Path(__file__).resolve().parents[2] / "zeek_scripts"

BROKEN = {
    "missing-semicolon": 'event zeek_init()\n\t{\n\tprint "x"\n\t}\n',
    "unclosed-brace": "module NKSensor;\n\nexport {\n\tconst a = 1 &redef;\n",
    "stray-tokens": "module NKSensor;\n@@ ]] !!\n",
    "record-without-type": "type RangeInfo: record {\n\tname: ;\n};\n",
}


def zeekscript_accepts(path: Path) -> bool:
    return zeekscript.Script(path).parse()


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_script_zeekscript_rejects_is_rejected_with_its_line(tmp_path, name) -> None:
    path = tmp_path / f"{name}.zeek"
    path.write_text(BROKEN[name])
    assert not zeekscript_accepts(path)
    with pytest.raises(ValidationError, match=rf"{name}\.zeek:\d+: zeekscript parse error"):
        check_zeek_script(path)


@pytest.mark.parametrize("path", sorted(ZEEK_SCRIPTS.rglob("*.zeek")), ids=lambda p: p.name)
def test_every_shipped_script_zeekscript_accepts_passes(path) -> None:
    assert zeekscript_accepts(path)
    check_zeek_script(path)


def test_an_unreadable_file_is_a_validation_error(tmp_path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        check_zeek_script(tmp_path / "missing.zeek")
