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


def test_a_negated_call_of_a_name_starting_with_in_is_refused_though_the_grammar_accepts_it(tmp_path) -> None:
    # Real Zeek 7 refuses this line ("syntax error, at or near "! in""): its scanner reads
    # "! in" before a non-alphanumeric as the "not in" operator, and "_" is one.
    # zeekscript's grammar parses it as a negated call.
    path = tmp_path / "trap.zeek"
    path.write_text("function in_scope(): bool\n\t{\n\treturn T;\n\t}\n\nevent zeek_init()\n\t{\n"
                    "\tif ( ! in_scope() )\n\t\treturn;\n\t}\n")
    assert zeekscript_accepts(path)
    with pytest.raises(ValidationError, match=r"trap\.zeek:8: Zeek reads '!' before a name starting with 'in_'"):
        check_zeek_script(path)


@pytest.mark.parametrize("line", ["if ( a !in s )", "if ( ! (a in s) )", "# ! in_scope() in a comment",
                                  "if ( ! scoped(c) )", "if ( !index_ok )"])
def test_the_not_in_operator_and_other_negations_pass(tmp_path, line) -> None:
    path = tmp_path / "ok.zeek"
    path.write_text(f"event zeek_init()\n\t{{\n\t{line}\n\t\treturn;\n\t}}\n" if not line.startswith("#")
                    else f"{line}\n")
    from sensor_plugins.generate.validate import check_not_in_trap

    check_not_in_trap(path, path.read_bytes())


@pytest.mark.zeek
def test_with_zeek_installed_the_package_is_loaded_by_zeek_and_a_type_error_is_refused_with_its_line(tmp_path):
    # The grammar accepts an undefined name; only Zeek itself knows it is an error.
    from sensor_plugins.generate.validate import validate_zeek_dir

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__load__.zeek").write_text("@load ./main\n")
    (package / "main.zeek").write_text("event zeek_init()\n\t{\n\tprint no_such_identifier;\n\t}\n")
    assert zeekscript_accepts(package / "main.zeek")
    with pytest.raises(ValidationError, match=r"main\.zeek:3: zeek error: unknown identifier no_such_identifier"):
        validate_zeek_dir(package)


@pytest.mark.zeek
def test_with_zeek_installed_the_shipped_package_passes_the_zeek_gate():
    from sensor_plugins.generate.validate import validate_zeek_dir

    assert validate_zeek_dir(ZEEK_SCRIPTS) == len(list(ZEEK_SCRIPTS.rglob("*.zeek")))
