"""`sensor-plugins generate`: catalogue and Tor lists in, Zeek package and Suricata rules out.

Everything is rendered into a staging directory first and validated there; only when
both engines' output validates is anything in the target directories replaced, so a bad
catalogue can never leave a sensor with half a ruleset.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sensor_plugins.atomic import replace_tree
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.generate.content import Rendered, Renderer, SensorContent
from sensor_plugins.generate.validate import validate_suricata_dir, validate_zeek_dir
from sensor_plugins.inputs.options import add_input_arguments, load_from_paths

DEFAULT_ZEEK_OUT = Path("zeek_scripts")
DEFAULT_SURICATA_OUT = Path("suricata_rules")


@dataclass
class Target:
    """One renderer and the directory its output belongs in."""

    renderer: Renderer
    out: Path
    rendered: Rendered | None = None


@dataclass
class GenerateResult:
    summary: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def default_targets(zeek_out: Path, suricata_out: Path) -> list[Target]:
    from sensor_plugins.generate.suricata import SuricataRenderer
    from sensor_plugins.generate.zeek import ZeekRenderer

    return [Target(ZeekRenderer(), zeek_out), Target(SuricataRenderer(), suricata_out)]


def load_content(catalogue: Path | None, tor_lists: Sequence[Path] | None) -> SensorContent:
    return SensorContent(*load_from_paths(catalogue, tor_lists))


def render_all(content: SensorContent, targets: list[Target]) -> None:
    for target in targets:
        previous = target.out if target.out.is_dir() else None
        target.rendered = target.renderer.render(content, previous)


def stale_files(targets: list[Target]) -> list[str]:
    """Files whose committed bytes differ from what would be generated, plus extra and missing ones."""
    stale: list[str] = []
    for target in targets:
        assert target.rendered is not None
        wanted = {rel: text.encode("utf-8") for rel, text in target.rendered.files.items()}
        present = (
            {p.relative_to(target.out).as_posix() for p in target.out.rglob("*") if p.is_file()}
            if target.out.is_dir() else set()
        )
        for rel in sorted(set(wanted) | present):
            path = target.out / rel
            if rel not in wanted:
                stale.append(f"{path} (no longer generated)")
            elif rel not in present:
                stale.append(f"{path} (missing)")
            elif path.read_bytes() != wanted[rel]:
                stale.append(f"{path} (differs)")
    return stale


def stage(targets: list[Target], staging: Path) -> list[Path]:
    dirs = []
    for i, target in enumerate(targets):
        assert target.rendered is not None
        staged = staging / f"{i}-{target.renderer.name}"
        for rel, text in target.rendered.files.items():
            path = staged / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        dirs.append(staged)
    return dirs


def validate_staged(targets: list[Target], staged: list[Path]) -> None:
    for target, directory in zip(targets, staged, strict=True):
        try:
            if target.renderer.name == "zeek":
                validate_zeek_dir(directory)
            elif target.renderer.name == "suricata":
                validate_suricata_dir(directory)
        except SensorPluginsError as exc:
            # Name the file as it will be called once installed, not its staging path.
            raise SensorPluginsError(
                str(exc).replace(str(directory), str(target.out)) + "; nothing was replaced"
            ) from exc


def generate(
    catalogue: Path | None = None,
    tor_lists: Sequence[Path] | None = None,
    zeek_out: Path = DEFAULT_ZEEK_OUT,
    suricata_out: Path = DEFAULT_SURICATA_OUT,
    *,
    check: bool = False,
    validate: bool = True,
    targets: list[Target] | None = None,
) -> GenerateResult:
    """Render, validate and swap in; with ``check``, only report which files are stale."""
    content = load_content(catalogue, tor_lists)
    targets = targets if targets is not None else default_targets(zeek_out, suricata_out)
    render_all(content, targets)
    result = GenerateResult(summary=[line for t in targets for line in t.rendered.summary])  # type: ignore[union-attr]
    if check:
        result.stale = stale_files(targets)
        return result
    # Stage next to the first target so the final renames stay on one filesystem.
    parent = targets[0].out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sensor-plugins-stage-", dir=parent) as tmp:
        staged = stage(targets, Path(tmp))
        if validate:
            validate_staged(targets, staged)
        for target, directory in zip(targets, staged, strict=True):
            replace_tree(directory, target.out)
            result.written.append(target.out)
    return result


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="render the Zeek package and Suricata rules from the catalogue and Tor lists",
        description=__doc__.splitlines()[0],
    )
    add_input_arguments(parser)
    parser.add_argument("--zeek-out", type=Path, default=DEFAULT_ZEEK_OUT)
    parser.add_argument("--suricata-out", type=Path, default=DEFAULT_SURICATA_OUT)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the files that are not up to date")
    parser.add_argument("--no-validate", action="store_true",
                        help="skip zeekscript and suricata -T validation (not recommended)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.no_validate and not args.check:
        print("sensor-plugins: warning: --no-validate: output is installed without being checked",
              file=sys.stderr)
    result = generate(
        args.catalogue, args.tor_lists, args.zeek_out, args.suricata_out,
        check=args.check, validate=not args.no_validate,
    )
    if args.check:
        if result.stale:
            print("generated files are stale; run `sensor-plugins generate`:", file=sys.stderr)
            for line in result.stale:
                print(f"  {line}", file=sys.stderr)
            return 1
        print("generated files are up to date")
        return 0
    for line in result.summary:
        print(line)
    print("wrote " + ", ".join(str(p) for p in result.written))
    return 0
