"""`sensor-plugins generate`: catalogue and Tor lists in, Zeek package and Suricata rules out.

Everything is rendered into a staging directory first and validated there; only when
both engines' output validates is anything in the target directories replaced, so a bad
catalogue can never leave a sensor with half a ruleset. The change to both directories is
planned whole and applied file by file, and a failed write puts every file back. Only
files listed in a directory's manifest (``.sensor-plugins.manifest``) are ever replaced
or removed, and a lock beside each directory keeps concurrent runs apart.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sensor_plugins.atomic import (
    DEFAULT_LOCK_WAIT,
    FileChange,
    apply_changes,
    check_disjoint,
    check_output_dir,
    locked,
    plan_tree,
)
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.generate.content import Rendered, Renderer, SensorContent
from sensor_plugins.generate.suricata import DEFAULT_PROFILE, PROFILES
from sensor_plugins.generate.validate import validate_suricata_dir, validate_zeek_dir
from sensor_plugins.inputs.options import add_input_arguments, finite_float, load_from_paths

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


def default_targets(zeek_out: Path, suricata_out: Path, profile: str = "full") -> list[Target]:
    """The Zeek package and the Suricata rules of ``profile``.

    The profile shapes the Suricata side only: Zeek's package works per connection, not per
    packet, and its cost is measured on its own (docs/BENCHMARKS.md, B7).
    """
    from sensor_plugins.generate.suricata import SuricataRenderer
    from sensor_plugins.generate.zeek import ZeekRenderer

    return [Target(ZeekRenderer(), zeek_out), Target(SuricataRenderer(profile), suricata_out)]


def load_content(catalogue: Path | None, tor_lists: Sequence[Path] | None, allow_empty: bool = False) -> SensorContent:
    return SensorContent(*load_from_paths(catalogue, tor_lists, allow_empty))


def render_all(content: SensorContent, targets: list[Target]) -> None:
    for target in targets:
        previous = target.out if target.out.is_dir() else None
        target.rendered = target.renderer.render(content, previous)


def target_bytes(target: Target) -> dict[str, bytes]:
    assert target.rendered is not None
    return {rel: text.encode("utf-8") for rel, text in target.rendered.files.items()}


def plan_changes(targets: list[Target]) -> list[FileChange]:
    """Every file change across all targets, planned before any is made (all or nothing)."""
    return [change for target in targets for change in plan_tree(target_bytes(target), target.out)]


def stale_files(targets: list[Target]) -> list[str]:
    """Files whose bytes differ from what would be generated, plus files we wrote that are no
    longer generated and missing ones; files of the site's own are not ours to judge."""
    labels = {"add": "missing", "update": "differs", "remove": "no longer generated"}
    return [f"{c.path} ({labels[c.kind]})" for c in plan_changes(targets)]


def stage(targets: list[Target], staging: Path) -> list[Path]:
    dirs = []
    for i, target in enumerate(targets):
        staged = staging / f"{i}-{target.renderer.name}"
        for rel, data in target_bytes(target).items():
            path = staged / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
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
    allow_empty: bool = False,
    lock_wait: float = DEFAULT_LOCK_WAIT,
    profile: str = "full",
) -> GenerateResult:
    """Render, validate and swap in; with ``check``, only report which files are stale.

    The whole run, from reading the previous sid registry to the last rename, holds the
    output directories' locks, so two runs at once end as one of them after the other.
    """
    content = load_content(catalogue, tor_lists, allow_empty)
    targets = targets if targets is not None else default_targets(zeek_out, suricata_out, profile)
    check_disjoint([t.out for t in targets])
    for target in targets:
        check_output_dir(target.out)
    if check:
        render_all(content, targets)
        return GenerateResult(summary=summary_of(targets), stale=stale_files(targets))
    # Stage next to the first target so the final renames stay on one filesystem.
    parent = targets[0].out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SensorPluginsError(f"{parent}: cannot create the output's folder: {exc.strerror}") from exc
    with locked([t.out for t in targets], lock_wait):
        render_all(content, targets)
        result = GenerateResult(summary=summary_of(targets))
        changes = plan_changes(targets)
        if validate:
            try:
                staging = tempfile.TemporaryDirectory(prefix=".sensor-plugins-stage-", dir=parent)
            except OSError as exc:
                raise SensorPluginsError(f"{parent}: cannot stage the output there: {exc.strerror}; "
                                         "nothing was replaced") from exc
            with staging as tmp:
                validate_staged(targets, stage(targets, Path(tmp)))
        apply_changes(changes)
        result.written = [t.out for t in targets]
    return result


def summary_of(targets: list[Target]) -> list[str]:
    return [line for t in targets for line in t.rendered.summary]  # type: ignore[union-attr]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="render the Zeek package and Suricata rules from the catalogue and Tor lists",
        description=__doc__.splitlines()[0],
    )
    add_input_arguments(parser)
    parser.add_argument("--zeek-out", type=Path, default=DEFAULT_ZEEK_OUT)
    parser.add_argument("--suricata-out", type=Path, default=DEFAULT_SURICATA_OUT)
    parser.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE,
                        help="which Suricata rules to write: every rule (full, the default) or only the "
                             "IP-only rules of the catalogued ranges (ranges), for sensors that must stay "
                             "near the cost of no rules; sids are the same in both")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the files that are not up to date")
    parser.add_argument("--lock-wait", type=finite_float, default=DEFAULT_LOCK_WAIT, metavar="SECONDS",
                        help="how long to wait for another run writing the same directories "
                             f"(default {DEFAULT_LOCK_WAIT:g})")
    parser.add_argument("--no-validate", action="store_true",
                        help="skip zeekscript and suricata -T validation (not recommended)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = generate(
        args.catalogue, args.tor_lists, args.zeek_out, args.suricata_out,
        check=args.check, validate=not args.no_validate, allow_empty=args.allow_empty,
        lock_wait=max(0.0, args.lock_wait), profile=args.profile,
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
    if args.no_validate:
        print("sensor-plugins: warning: --no-validate: the output was installed without being checked",
              file=sys.stderr)
    return 0
