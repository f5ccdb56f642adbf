"""Applying a `catalogue update` diff to the catalogue file, keeping its comments and order.

PyYAML drops comments, so the file is edited with ruamel.yaml's round-trip mode: only
the entries and fields in the diff change, every other byte stays. The result is read
back with the strict catalogue loader before it replaces the file, atomically, under a
lock so two updates never interleave their read and write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from sensor_plugins.atomic import write_text_atomic
from sensor_plugins.inputs.catalogue import MAX_FILE_BYTES, Catalogue, CatalogueError, parse_catalogue
from sensor_plugins.inputs.textfile import read_text
from sensor_plugins.inputs.update import FIELD_ORDER, Change


def round_trip_yaml() -> YAML:
    yaml = YAML(typ="rt")
    # Never fold a long line, and indent as the bundled catalogue does ("  - name: ...").
    yaml.width = 1 << 16
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    # The strict loader refuses anchors and aliases; never emit one for a value used twice.
    yaml.representer.ignore_aliases = lambda *_: True
    return yaml


def yaml_value(field: str, value: Any) -> Any:
    if field == "asn" and value is not None:
        return f"AS{value}"
    if isinstance(value, dt.date | bool):
        return value
    return None if value is None else str(value)


def apply_changes(text: str, changes: Sequence[Change], where: str) -> str:
    """The catalogue text with ``changes`` applied; everything else as it was."""
    yaml = round_trip_yaml()
    try:
        doc = yaml.load(text)
    except YAMLError as exc:
        raise CatalogueError(f"{where}: invalid YAML: {str(exc).splitlines()[0]}") from exc
    entries = doc["ranges"]
    by_name = {entry["name"]: entry for entry in entries}
    for change in changes:
        if change.kind == "add":
            entry = CommentedMap()
            for key in FIELD_ORDER:
                if key in change.fields:
                    entry[key] = yaml_value(key, change.fields[key][1])
            entries.append(entry)
            continue
        entry = by_name[change.name]
        for key, (_, new) in change.fields.items():
            set_field(entry, key, yaml_value(key, new))
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def set_field(entry: CommentedMap, key: str, value: Any) -> None:
    """Set, replace or (for None) remove a field, placing a new one where the catalogue's order puts it."""
    if value is None:
        entry.pop(key, None)
    elif key in entry:
        entry[key] = value
    else:
        before = FIELD_ORDER[: FIELD_ORDER.index(key)]
        entry.insert(sum(1 for k in entry if k in before), key, value)


@contextlib.contextmanager
def catalogue_lock(path: Path) -> Iterator[None]:
    """An exclusive lock beside the catalogue, held from reading it to replacing it."""
    lock = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CatalogueError(f"{lock}: cannot create the update lock: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise CatalogueError(f"{path}: another catalogue update holds {lock}") from exc
        yield
    finally:
        os.close(fd)


def write_catalogue(path: Path, original: str, changes: Sequence[Change]) -> Catalogue:
    """Apply ``changes`` to the file at ``path`` if it still reads ``original``; returns the new catalogue."""
    current = read_text(path, "catalogue", MAX_FILE_BYTES, CatalogueError)
    if current != original:
        raise CatalogueError(f"{path}: changed while the update ran; run it again")
    text = apply_changes(original, changes, str(path))
    # The strict loader has the last word: nothing it would refuse is ever written.
    catalogue = parse_catalogue(text, str(path))
    write_text_atomic(path, text, mode=path.stat().st_mode & 0o7777)
    return catalogue
