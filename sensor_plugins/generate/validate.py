"""Checks that staged output is loadable before it replaces anything.

Where Zeek is installed, the staged package is loaded by the real Zeek (`zeek -a`), and
any error or warning refuses it. Without Zeek, every `.zeek` file is parsed with
zeekscript's grammar (tree-sitter-zeek) plus a check for the one construct we know that
grammar accepts and Zeek refuses. Suricata rules are checked with the real
`suricata -T` when Suricata is installed.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.generate.zeek import OPT_IN_SCRIPTS


class ValidationError(SensorPluginsError):
    pass


# Zeek's scanner reads "!", optional blanks and "in" followed by anything but a letter or
# digit as the "not in" operator (scan.l: "!"{OWS}in/[^A-Za-z0-9]), so `! in_scope(c)` is a
# syntax error in Zeek while tree-sitter-zeek parses it as a negated call. The underscore
# is the one identifier character that lets a name trip it.
NOT_IN_TRAP_RE = re.compile(rb"!\s*in_")


def check_not_in_trap(path: Path, source: bytes) -> None:
    """Refuse ``! in_name`` that zeekscript accepts and Zeek reads as ``!in``."""
    for lineno, line in enumerate(source.splitlines(), 1):
        code = line.split(b"#", 1)[0]
        if NOT_IN_TRAP_RE.search(code):
            raise ValidationError(f"{path}:{lineno}: Zeek reads '!' before a name starting with 'in_' as "
                                  "the '!in' operator; rename the identifier")


def check_zeek_script(path: Path) -> None:
    """Raise ValidationError naming ``path`` and the line when zeekscript cannot parse it.

    The file is first parsed with the grammar zeekscript itself uses (tree-sitter-zeek),
    whose tree says whether any node failed. Only a failing file goes through
    ``zeekscript.Script.parse``, which copies every syntax node into a Python object
    (15 s for the 2.2 MB defaults.zeek of a 10k-range catalogue, against 0.3 s) and
    names the line that failed.
    """
    import tree_sitter
    import tree_sitter_zeek
    import zeekscript

    try:
        source = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read the file: {exc.strerror}") from exc
    check_not_in_trap(path, source)
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_zeek.language()))
    if not parser.parse(source).root_node.has_error:
        return
    script = zeekscript.Script(path)
    try:
        ok = script.parse()
    except zeekscript.Error as exc:
        raise ValidationError(f"{path}: zeekscript cannot parse the file: {exc}") from exc
    if not ok:
        _line, lineno, msg = script.get_error()
        where = f"{path}:{(lineno or 0) + 1}"
        raise ValidationError(f"{where}: zeekscript parse error: {msg}")
    # The grammar's verdict and zeekscript's differ only if zeekscript changes how it
    # reads the tree; its own answer, that the file parses, stands.


def validate_zeek_dir(directory: Path) -> int:
    """Check the package in ``directory``; returns how many `.zeek` files it holds.

    With Zeek installed the package is loaded by `zeek -a` (the real parser and type
    checker); the grammar check runs first either way, since it names a file in
    milliseconds. Without Zeek the grammar check is all there is.
    """
    scripts = sorted(directory.rglob("*.zeek"))
    for script in scripts:
        check_zeek_script(script)
    from sensor_plugins.runners.zeek import ZeekError, check_package, find_zeek

    binary = find_zeek()
    if binary is not None and (directory / "__load__.zeek").is_file():
        opt_in = [name for name in OPT_IN_SCRIPTS if (directory / name).is_file()]
        try:
            check_package(directory, binary=binary, opt_in=opt_in)
        except ZeekError as exc:
            raise ValidationError(str(exc)) from exc
    return len(scripts)


def validate_suricata_dir(directory: Path) -> bool:
    """Run `suricata -T` on the staged rules; False (with a warning) when Suricata is absent."""
    if shutil.which("suricata") is None:
        print(
            "sensor-plugins: warning: suricata is not installed; rules were not checked with "
            "suricata -T (run scripts/install-suricata.sh)",
            file=sys.stderr,
        )
        return False
    from sensor_plugins.runners.suricata import BITTORRENT_ALL_RULES, test_rules

    # The ranges profile writes no optional file; the main rules file is always checked.
    test_rules(directory, bittorrent_everywhere=(directory / BITTORRENT_ALL_RULES).is_file())
    return True
