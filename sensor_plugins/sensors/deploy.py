"""`sensor-plugins deploy`: push generated content into a running sensor without a restart.

The order is what keeps a sensor whole: plan every file change, validate the result with
the installed engine (``suricata -T`` on the sensor's own suricata.yaml, zeekscript for
Zeek) against a staged copy, check the engine's socket answers, and only then rename
each file into place. Suricata is reloaded through its unix socket; Zeek re-reads its
Input-framework data files by itself (REREAD mode). Any failure after the first write
puts every file back as it was, so the exit code is the whole story.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sensor_plugins.atomic import (
    DEFAULT_LOCK_WAIT,
    MANIFEST,
    FileChange,
    apply_changes,
    check_disjoint,
    locked,
    plan_tree,
    restore,
)
from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.options import finite_float
from sensor_plugins.runners.suricata import SuricataError, explain_failure, find_suricata
from sensor_plugins.sensors.suricata_socket import SuricataSocket

DEFAULT_ZEEK_SOURCE = Path("zeek_scripts")
DEFAULT_SURICATA_SOURCE = Path("suricata_rules")
DEFAULT_SURICATA_CONFIG = Path("/etc/suricata/suricata.yaml")
# Up to this many changed dataset lines are pushed with dataset-add/-remove; a bigger
# change is cheaper as one reload than as thousands of socket round trips.
MAX_DATASET_COMMANDS = 500
SURICATA_TEST_TIMEOUT = 600
DATASET_RE = re.compile(r"dataset\s*:\s*([^;]*);")
# Data files the Zeek package reads through the Input framework in REREAD mode; every
# other file of the package is code, which Zeek reads only at start-up.
ZEEK_DATA_SUFFIXES = (".tsv", ".dat")


class DeployError(SensorPluginsError):
    """A deploy that stopped; the sensor's files are as they were before it ran."""


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a rule loads from a file of ours: what dataset-add needs to reach it."""

    name: str
    type: str


@dataclass
class Plan:
    zeek: list[FileChange] = field(default_factory=list)
    suricata: list[FileChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Destination path of each of our dataset files -> the set the engine holds it in.
    datasets: dict[Path, DatasetRef] = field(default_factory=dict)
    # The rules profile of the Suricata source (generate --profile), once read.
    profile: str | None = None

    @property
    def changes(self) -> list[FileChange]:
        return self.zeek + self.suricata


# -- reading what to deploy -------------------------------------------------------------


def collect_files(source: Path) -> dict[str, bytes]:
    """Every regular file under ``source`` by POSIX relative path; refuses links and empty dirs."""
    if not source.is_dir():
        raise DeployError(f"{source}: generated content not found (run `sensor-plugins generate` first)")
    files: dict[str, bytes] = {}
    for path in sorted(source.rglob("*")):
        if path.is_symlink():
            raise DeployError(f"{path}: is a symbolic link; deploy copies only regular files")
        # generate's own manifest says what it wrote there; the sensor's manifest is deploy's.
        if path.is_file() and path.name != MANIFEST:
            files[path.relative_to(source).as_posix()] = _read_source(path)
    if not files:
        raise DeployError(f"{source}: holds no files to deploy")
    return files


def source_profile(source: Path, files: dict[str, bytes], wanted: str | None) -> str | None:
    """The rules profile ``source`` was generated with (None without a main rules file).

    With ``wanted`` a source of another profile is refused: a sensor that must stay near
    the cost of no rules is deployed with ``--profile ranges``, and the full ruleset left
    in the same directory by a plain `generate` then stops the deploy instead of slowing
    the sensor down.
    """
    from sensor_plugins.generate.suricata import MAIN_RULES, rules_profile

    data = files.get(MAIN_RULES)
    profile = rules_profile(data.decode("utf-8", "replace")) if data is not None else None
    if wanted is not None and profile != wanted:
        found = f"the {profile} rules profile" if profile else f"no {MAIN_RULES}"
        raise DeployError(f"{source}: holds {found}, not {wanted}; run `sensor-plugins generate --profile "
                          f"{wanted} --suricata-out {source}` first; nothing was changed")
    return profile


def _read_source(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DeployError(f"{path}: cannot read generated content: {exc.strerror}") from exc


def read_site_text(path: Path, what: str) -> str:
    """A sensor file deploy reads (local.zeek, suricata.yaml): regular, UTF-8, bounded."""
    from sensor_plugins.inputs.textfile import read_text

    return read_text(path, what, 64 * 1024 * 1024, DeployError)


# -- Zeek -------------------------------------------------------------------------------


def zeek_package_name() -> str:
    from sensor_plugins.generate.zeek import PACKAGE_NAME

    return PACKAGE_NAME


def load_snippet(package: str, package_dir: Path) -> str:
    """What local.zeek needs: the @load, and the live data files named where deploy writes them.

    zeekctl runs Zeek on a snapshot of the site directory (spool/installed-scripts-do-not-
    touch), so the package's default @DIR paths would point the Input framework at a copy
    that only `zeekctl install` refreshes. Absolute paths make REREAD see every deploy.
    """
    from sensor_plugins.generate.zeek import RANGES_TSV, TOR_TSV

    base = package_dir.resolve()
    return (
        f"@load {package}\n"
        "# sensor-plugins deploy rewrites these files in place; Zeek re-reads them (Input::REREAD).\n"
        f"redef NKSensor::ranges_file = {_zeek_string(str(base / RANGES_TSV))};\n"
        f"redef NKSensor::tor_file = {_zeek_string(str(base / TOR_TSV))};\n"
    )


def _zeek_string(value: str) -> str:
    from sensor_plugins.generate.zeek import zeek_string

    return zeek_string(value)


def has_load_line(local_zeek_text: str, package: str) -> bool:
    pattern = re.compile(rf"^\s*@load\s+(?:\./)?{re.escape(package)}/?\s*(?:#.*)?$")
    return any(pattern.match(line) for line in local_zeek_text.splitlines())


def plan_zeek(source: Path, site: Path, local_zeek: Path | None, add_load: bool, plan: Plan) -> None:
    files = collect_files(source)
    if "__load__.zeek" not in files:
        raise DeployError(f"{source}: has no __load__.zeek, so it is not a generated Zeek package")
    package = zeek_package_name()
    plan.zeek.extend(plan_tree(files, site / package))
    local = local_zeek or site / "local.zeek"
    text = read_site_text(local, "Zeek site policy") if local.exists() else ""
    if has_load_line(text, package):
        return
    snippet = load_snippet(package, site / package)
    if add_load:
        new = text + ("" if text.endswith("\n") or not text else "\n") + snippet
        old = text.encode("utf-8") if local.exists() else None
        plan.zeek.append(FileChange(local, old, new.encode("utf-8")))
    else:
        plan.notes.append(f"{local} does not load the package; add these lines (or pass --add-load): "
                          + " | ".join(snippet.splitlines()))


def zeek_code_changed(changes: Sequence[FileChange]) -> list[Path]:
    """Changed package files that Zeek reads only at start-up (scripts, signatures)."""
    return [
        c.path for c in changes
        if c.path.name != MANIFEST and c.path.suffix not in ZEEK_DATA_SUFFIXES and c.path.name != "local.zeek"
    ]


# -- Suricata ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SuricataConfig:
    path: Path
    default_rule_path: Path | None
    rule_files: tuple[str, ...]
    includes: tuple[Path, ...]


def read_suricata_config(path: Path) -> SuricataConfig:
    text = read_site_text(path, "the sensor's Suricata config")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise DeployError(f"{where}: the Suricata config is not valid YAML") from exc
    if not isinstance(data, dict):
        raise DeployError(f"{path}: the Suricata config is not a YAML mapping")
    rule_path = data.get("default-rule-path")
    groups = (data.get("vars") or {}) if isinstance(data.get("vars"), dict) else {}
    # Our vars file belongs inside vars.address-groups; a top-level include is also honoured.
    includes = [*_include_entries(data)]
    for kind in ("address-groups", "port-groups"):
        if isinstance(groups.get(kind), dict):
            includes += _include_entries(groups[kind])
    return SuricataConfig(
        path=path,
        default_rule_path=Path(rule_path) if isinstance(rule_path, str) else None,
        rule_files=tuple(str(r) for r in (data.get("rule-files") or []) if isinstance(r, str)),
        includes=tuple((path.parent / i).resolve() for i in includes),
    )


def _include_entries(node: dict) -> list[str]:
    value = node.get("include") or []
    values = [value] if isinstance(value, str) else value
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def rules_dir_for(config: SuricataConfig, requested: Path | None) -> Path:
    """The sensor's rules directory: the config's default-rule-path, which our rule-files entries need."""
    configured = config.default_rule_path
    if requested is None:
        if configured is None:
            raise DeployError(f"{config.path}: has no default-rule-path; pass --suricata-rules-dir")
        return configured
    if configured is not None and configured.resolve() != requested.resolve():
        raise DeployError(
            f"{config.path}: default-rule-path is {configured}, not {requested}; deploy into the "
            "default-rule-path so that rule-files can name our rules as they are listed there"
        )
    return requested


def dataset_refs(rules: dict[str, bytes]) -> dict[str, DatasetRef]:
    """Our dataset files (relative path) -> the set name and type the rules load them as."""
    refs: dict[str, DatasetRef] = {}
    for text in (data.decode("utf-8", "replace") for rel, data in rules.items() if rel.endswith(".rules")):
        for options in DATASET_RE.findall(text):
            parts = [p.strip() for p in options.split(",")]
            if len(parts) < 2:
                continue
            opts = dict(p.split(None, 1) for p in parts[2:] if len(p.split(None, 1)) == 2)
            load = opts.get("load")
            if load and "type" in opts and not Path(load).is_absolute():
                refs[load] = DatasetRef(parts[1], opts["type"])
    return refs


def plan_suricata(source: Path, rules_dir: Path, config: SuricataConfig, plan: Plan,
                  profile: str | None = None) -> dict[str, bytes]:
    files = collect_files(source)
    plan.profile = source_profile(source, files, profile)
    plan.suricata.extend(plan_tree(files, rules_dir))
    for rel, ref in dataset_refs(files).items():
        plan.datasets[rules_dir / rel] = ref
    listed = set(config.rule_files)
    for rel in sorted(r for r in files if r.endswith(".rules")):
        if rel not in listed and str(rules_dir / rel) not in listed:
            plan.notes.append(f"{config.path}: rule-files does not list {rel}, so Suricata does not load it; "
                              f"add `  - {rel}` under rule-files to enable it")
    for rel in sorted(r for r in files if r.endswith((".yaml", ".yml"))):
        if (rules_dir / rel).resolve() not in config.includes:
            plan.notes.append(f"{config.path}: add `include: {rules_dir / rel}` inside vars.address-groups")
    return files


def stage_rules_dir(rules_dir: Path, changes: Sequence[FileChange], staging: Path) -> None:
    """Mirror ``rules_dir`` in ``staging`` as it will be after ``changes``.

    Files we do not change are linked, not copied: a sensor's rules directory can hold
    tens of megabytes of other rulesets.
    """
    changed = {c.path: c for c in changes}
    if rules_dir.is_dir():
        for path in rules_dir.rglob("*"):
            if path.is_file() and path not in changed:
                dest = staging / path.relative_to(rules_dir)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(path.resolve(), dest)
    for change in changes:
        if change.new is not None:
            dest = staging / change.path.relative_to(rules_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(change.new)


def stage_config(config: SuricataConfig, rules_dir: Path, staged_rules: Path, conf_dir: Path) -> Path:
    """A copy of the sensor's config that sees ``staged_rules`` wherever it names ``rules_dir``.

    The copy sits among links to everything beside the original, so that includes given
    relative to the config's directory still resolve, and absolute references to the
    rules directory (an ``include:`` of our vars file, say) reach the staged files.
    """
    rules_real = rules_dir.resolve()
    for entry in config.path.parent.iterdir():
        if entry.name == config.path.name:
            continue
        target = staged_rules if entry.resolve() == rules_real else entry.resolve()
        os.symlink(target, conf_dir / entry.name)
    text = config.path.read_text(encoding="utf-8")
    boundary = r"(?=[/\s\"']|$)"
    for spelling in {str(rules_dir), str(rules_real)}:
        text = re.sub(re.escape(spelling) + boundary, lambda _m: str(staged_rules), text, flags=re.M)
    staged = conf_dir / config.path.name
    staged.write_text(text, encoding="utf-8")
    return staged


def validate_suricata(config: SuricataConfig, rules_dir: Path, files: dict[str, bytes],
                      changes: Sequence[FileChange]) -> None:
    """`suricata -T` on the sensor's config with the rules directory as it will be after the deploy."""
    try:
        binary = find_suricata()
    except SuricataError as exc:
        raise DeployError(f"{exc}; the rules cannot be validated, so nothing was changed") from exc
    with tempfile.TemporaryDirectory(prefix="sensor-plugins-deploy-") as tmp:
        staging, conf_dir, logs = Path(tmp) / "rules", Path(tmp) / "conf", Path(tmp) / "log"
        for directory in (staging, conf_dir, logs):
            directory.mkdir()
        stage_rules_dir(rules_dir, changes, staging)
        staged_config = stage_config(config, rules_dir, staging, conf_dir)
        cmd = [binary, "-T", "-c", str(staged_config), "-l", str(logs),
               "--set", f"default-rule-path={staging}"]
        # What the sensor's config does not wire up yet is added here, so validation
        # covers the state the notes ask the user to reach.
        for rel in sorted(r for r in files if r.endswith((".yaml", ".yml"))):
            if (rules_dir / rel).resolve() not in config.includes:
                cmd += address_group_settings(staging / rel)
        listed = set(config.rule_files)
        for rel in sorted(r for r in files if r.endswith(".rules")):
            if rel not in listed and str(rules_dir / rel) not in listed:
                cmd += ["-s", str(staging / rel)]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=SURICATA_TEST_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise DeployError(f"suricata -T on {config.path} did not finish in {SURICATA_TEST_TIMEOUT}s; "
                              "nothing was changed") from exc
        if result.returncode != 0:
            detail = explain_failure(result.stdout + result.stderr, "Suricata")[:400]
            detail = detail.replace(str(staging), str(rules_dir)).replace(str(staged_config), str(config.path))
            raise DeployError(f"suricata -T rejected the new rules with {config.path}: {detail}; "
                              "nothing was changed")


def address_group_settings(vars_file: Path) -> list[str]:
    """``--set`` arguments defining the address groups of a vars file the config does not include yet."""
    try:
        groups = yaml.safe_load(vars_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DeployError(f"{vars_file.name}: generated vars file is not valid YAML; nothing was changed") from exc
    if not isinstance(groups, dict):
        raise DeployError(f"{vars_file.name}: generated vars file is not a mapping of address groups")
    args = []
    for name, value in groups.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)) or not isinstance(value, str):
            raise DeployError(f"{vars_file.name}: address group {str(name)[:40]!r} is not NAME: \"[cidrs]\"")
        args += ["--set", f"vars.address-groups.{name}={value}"]
    return args


# -- applying ---------------------------------------------------------------------------


# -- reloading --------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetCommand:
    command: str  # dataset-add or dataset-remove
    ref: DatasetRef
    value: str

    def arguments(self) -> dict[str, str]:
        return {"setname": self.ref.name, "settype": self.ref.type, "datavalue": self.value}

    def undo(self) -> DatasetCommand:
        other = "dataset-remove" if self.command == "dataset-add" else "dataset-add"
        return DatasetCommand(other, self.ref, self.value)


def dataset_lines(data: bytes | None) -> set[str]:
    if data is None:
        return set()
    return {line.strip() for line in data.decode("utf-8", "replace").splitlines()
            if line.strip() and not line.startswith("#")}


def rule_lines(data: bytes | None) -> list[str]:
    """What the engine reads from a rules file: its non-blank, non-comment lines."""
    text = (data or b"").decode("utf-8", "replace")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def engine_reads(change: FileChange, plan: Plan) -> bool:
    """Whether the running Suricata would see this change at all."""
    if change.path.name == MANIFEST or change.path in plan.datasets:
        return change.path.name != MANIFEST
    if change.path.suffix == ".rules":
        return rule_lines(change.old) != rule_lines(change.new)
    return change.path.suffix in (".yaml", ".yml", ".config")


def dataset_commands(plan: Plan) -> list[DatasetCommand] | None:
    """The dataset-add/-remove commands that make the engine current, or None when a reload is needed.

    A change the engine reads only through dataset files of ours, whose sets the rules
    already know (the dataset file existed before), can skip the reload; changed
    comments in a rules file (feed dates, say) do not count.
    """
    relevant = [c for c in plan.suricata if engine_reads(c, plan)]
    if any(c.path not in plan.datasets or c.kind != "update" for c in relevant):
        return None
    commands = []
    for change in relevant:
        ref = plan.datasets[change.path]
        old, new = dataset_lines(change.old), dataset_lines(change.new)
        commands += [DatasetCommand("dataset-add", ref, encode_value(ref, v)) for v in sorted(new - old)]
        commands += [DatasetCommand("dataset-remove", ref, encode_value(ref, v)) for v in sorted(old - new)]
    return commands if len(commands) <= MAX_DATASET_COMMANDS else None


def encode_value(ref: DatasetRef, line: str) -> str:
    # The socket takes values as the dataset file stores them, except that string sets
    # are stored base64-encoded already; nothing else needs encoding.
    if ref.type == "string":
        base64.b64decode(line, validate=True)
    return line


def reload_suricata(socket_path: Path, plan: Plan) -> list[str]:
    """Make the running engine use the new files; returns what was done, for the report."""
    commands = dataset_commands(plan)
    with SuricataSocket(socket_path) as sock:
        if commands is None:
            sock.checked("reload-rules")
            failed = sock.command("ruleset-failed-rules")
            if failed.ok and failed.message:
                raise DeployError(f"{socket_path}: the reloaded ruleset has {len(failed.message)} failed rules")
            return [f"reloaded Suricata's rules through {socket_path}"]
        if not commands:
            return ["Suricata needs no reload: nothing it reads changed (comments or bookkeeping only)"]
        sent: list[DatasetCommand] = []
        try:
            for command in commands:
                sock.checked(command.command, command.arguments())
                sent.append(command)
        except SensorPluginsError:
            for command in reversed(sent):
                sock.command(command.undo().command, command.undo().arguments())
            raise
        adds = sum(c.command == "dataset-add" for c in commands)
        return [f"updated Suricata's datasets in place through {socket_path}: "
                f"{adds} added, {len(commands) - adds} removed (no reload needed)"]


def check_socket(socket_path: Path) -> None:
    """Fail before any write when the engine could not be told to reload afterwards."""
    try:
        with SuricataSocket(socket_path, timeout=30) as sock:
            sock.checked("version")
    except SensorPluginsError as exc:
        raise DeployError(f"{exc}; nothing was changed") from exc


# -- reporting --------------------------------------------------------------------------


def describe(change: FileChange) -> str:
    return f"{change.kind} {change.path}"


def diff(change: FileChange, max_lines: int = 200) -> list[str]:
    try:
        old = (change.old or b"").decode("utf-8").splitlines()
        new = (change.new or b"").decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return [f"binary file {change.path} differs"]
    lines = list(difflib.unified_diff(
        old, new, fromfile=str(change.path) if change.old is not None else "/dev/null",
        tofile=str(change.path) if change.new is not None else "/dev/null", lineterm="",
    ))
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... {len(lines) - max_lines} more diff lines for {change.path}"]
    return lines


# -- the command ------------------------------------------------------------------------


@dataclass
class DeployOptions:
    zeek_source: Path = DEFAULT_ZEEK_SOURCE
    suricata_source: Path = DEFAULT_SURICATA_SOURCE
    zeek_site: Path | None = None
    local_zeek: Path | None = None
    add_load: bool = False
    suricata_config: Path | None = None
    suricata_rules_dir: Path | None = None
    suricata_socket: Path | None = None
    dry_run: bool = False
    lock_wait: float = DEFAULT_LOCK_WAIT
    # The Suricata rules profile the source must have been generated with; None takes any.
    profile: str | None = None


@dataclass
class DeployResult:
    plan: Plan
    actions: list[str] = field(default_factory=list)


def build_plan(options: DeployOptions) -> tuple[Plan, SuricataConfig | None, Path | None, dict[str, bytes]]:
    plan = Plan()
    config: SuricataConfig | None = None
    rules_dir: Path | None = None
    files: dict[str, bytes] = {}
    if options.zeek_site is not None:
        if not options.zeek_site.is_dir():
            raise DeployError(f"{options.zeek_site}: Zeek site directory not found")
        plan_zeek(options.zeek_source, options.zeek_site, options.local_zeek, options.add_load, plan)
    if options.suricata_config is not None or options.suricata_rules_dir is not None:
        config = read_suricata_config(options.suricata_config or DEFAULT_SURICATA_CONFIG)
        rules_dir = rules_dir_for(config, options.suricata_rules_dir)
        files = plan_suricata(options.suricata_source, rules_dir, config, plan, options.profile)
    return plan, config, rules_dir, files


def lock_targets(options: DeployOptions) -> list[Path]:
    """The sensor directories this deploy writes, whose locks it holds while it runs."""
    targets = []
    if options.zeek_site is not None:
        targets.append(options.zeek_site / zeek_package_name())
    if options.suricata_rules_dir is not None:
        targets.append(options.suricata_rules_dir)
    elif options.suricata_config is not None:
        config = read_suricata_config(options.suricata_config)
        if config.default_rule_path is not None:
            targets.append(config.default_rule_path)
    return targets


def deploy(options: DeployOptions) -> DeployResult:
    if options.zeek_site is None and options.suricata_config is None and options.suricata_rules_dir is None:
        raise DeployError("deploy: nothing to deploy to; give --zeek-site and/or --suricata-config "
                          "or --suricata-rules-dir")
    if options.zeek_site is not None and not options.zeek_site.is_dir():
        # Checked before the lock, whose file would otherwise make the directory.
        raise DeployError(f"{options.zeek_site}: Zeek site directory not found")
    targets = lock_targets(options)
    check_disjoint(targets)
    if options.dry_run:
        # A dry run writes nothing, not even a lock file.
        return _deploy_locked(options)
    # Planning reads what is installed, so it must happen under the lock as well: a second
    # deploy then plans against the first one's result, as if they had run one by one.
    with locked(targets, options.lock_wait):
        return _deploy_locked(options)


def _deploy_locked(options: DeployOptions) -> DeployResult:
    try:
        plan, config, rules_dir, files = build_plan(options)
    except DeployError:
        raise
    except SensorPluginsError as exc:
        raise DeployError(str(exc)) from exc
    result = DeployResult(plan)
    # Validate even on a dry run: the point of a dry run is to learn whether it would work.
    if plan.zeek:
        from sensor_plugins.generate.validate import validate_zeek_dir

        validate_zeek_dir(options.zeek_source)
    if config is not None and rules_dir is not None and plan.suricata:
        validate_suricata(config, rules_dir, files, plan.suricata)
    if options.dry_run or not plan.changes:
        return result
    if plan.suricata and options.suricata_socket is not None:
        check_socket(options.suricata_socket)
    apply_changes(plan.changes, DeployError)
    result.actions.append(f"wrote {len(plan.changes)} files")
    if plan.suricata:
        if options.suricata_socket is None:
            result.actions.append("Suricata was not told to reload (no --suricata-socket); "
                                  "run `suricatasc -c reload-rules` or send it SIGUSR2")
        else:
            try:
                result.actions += reload_suricata(options.suricata_socket, plan)
            except SensorPluginsError as exc:
                restore(plan.changes)
                raise DeployError(f"{exc}; every file was restored and the engine keeps its old rules") from exc
    code = zeek_code_changed(plan.zeek)
    if plan.zeek:
        result.actions.append("Zeek re-reads its data files by itself (Input framework, REREAD mode)")
    if code:
        result.actions.append("Zeek scripts changed (" + ", ".join(p.name for p in code[:5])
                              + "): run `zeekctl deploy` for them to take effect")
    return result


def add_profile_argument(parser: argparse.ArgumentParser) -> None:
    from sensor_plugins.generate.suricata import PROFILES

    parser.add_argument("--profile", choices=PROFILES,
                        help="refuse Suricata rules generated with another `generate --profile` "
                             "(default: take whichever profile was generated)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="install generated content into a sensor's directories and reload the engines live",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--zeek-out", type=Path, default=DEFAULT_ZEEK_SOURCE, dest="zeek_source",
                        metavar="DIR", help="the generated Zeek package (default: zeek_scripts)")
    parser.add_argument("--suricata-out", type=Path, default=DEFAULT_SURICATA_SOURCE, dest="suricata_source",
                        metavar="DIR", help="the generated Suricata rules (default: suricata_rules)")
    parser.add_argument("--zeek-site", type=Path, metavar="DIR",
                        help="the sensor's Zeek site directory, e.g. /opt/zeek/share/zeek/site")
    parser.add_argument("--local-zeek", type=Path, metavar="FILE",
                        help="the site policy that loads the package (default: SITE/local.zeek)")
    parser.add_argument("--add-load", action="store_true",
                        help="append the package's @load line to local.zeek when it is missing")
    parser.add_argument("--suricata-config", type=Path, metavar="FILE",
                        help=f"the sensor's suricata.yaml (default: {DEFAULT_SURICATA_CONFIG} "
                             "when --suricata-rules-dir is given)")
    parser.add_argument("--suricata-rules-dir", type=Path, metavar="DIR",
                        help="where the rules go (default: the config's default-rule-path)")
    parser.add_argument("--suricata-socket", type=Path, metavar="PATH",
                        help="Suricata's unix command socket, to reload the running engine")
    add_profile_argument(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the diff and the actions, change nothing")
    parser.add_argument("--lock-wait", type=finite_float, default=DEFAULT_LOCK_WAIT, metavar="SECONDS",
                        help="how long to wait for another deploy into the same directories "
                             f"(default {DEFAULT_LOCK_WAIT:g})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = DeployOptions(
        zeek_source=args.zeek_source, suricata_source=args.suricata_source, zeek_site=args.zeek_site,
        local_zeek=args.local_zeek, add_load=args.add_load, suricata_config=args.suricata_config,
        suricata_rules_dir=args.suricata_rules_dir, suricata_socket=args.suricata_socket,
        dry_run=args.dry_run, lock_wait=max(0.0, args.lock_wait), profile=args.profile,
    )
    result = deploy(options)
    plan = result.plan
    if plan.profile is not None:
        print(f"Suricata rules profile: {plan.profile}")
    for note in plan.notes:
        print(f"sensor-plugins: note: {note}", file=sys.stderr)
    if not plan.changes:
        print("the sensor is up to date; nothing to do")
        return 0
    if args.dry_run:
        for change in plan.changes:
            if change.path.name != MANIFEST:
                print("\n".join(diff(change)))
        print("would:")
        for change in plan.changes:
            print(f"  {describe(change)}")
        commands = dataset_commands(plan) if plan.suricata else None
        if plan.suricata and options.suricata_socket is not None:
            how = (f"dataset-add/-remove ({len(commands)} commands)" if commands is not None
                   else "reload-rules")
            print(f"  then {how} through {options.suricata_socket}")
        return 0
    for change in plan.changes:
        print(describe(change))
    for action in result.actions:
        print(action)
    return 0

