"""The committed sid registry: a rule's stable key keeps its sid forever, and its rev follows content.

Sensors, SIEM searches and suppressions all refer to sids, so a regenerated ruleset must
never renumber: a key keeps its sid across runs, a changed rule gets rev+1, a removed
rule's sid is retired and never handed out again, and the ruleset VERSION rises on any
change. The registry is plain JSON committed next to the rules so a review shows all this.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensor_plugins.errors import SensorPluginsError

KEY_RE = re.compile(r"[a-z0-9][a-z0-9:._-]{0,120}")
FORMAT = 1


class SidRegistryError(SensorPluginsError):
    pass


@dataclass(frozen=True)
class Assignment:
    sid: int
    rev: int
    created_at: dt.date
    updated_at: dt.date


@dataclass
class _Entry:
    sid: int
    rev: int
    digest: str
    created_at: dt.date
    updated_at: dt.date


@dataclass(frozen=True)
class ChangeSummary:
    added: tuple[str, ...]
    changed: tuple[str, ...]
    retired: tuple[str, ...]
    version: int

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.retired)

    def lines(self) -> list[str]:
        out = [f"ruleset VERSION {self.version}: {len(self.added)} added, "
               f"{len(self.changed)} changed, {len(self.retired)} retired"]
        out += [f"  + {k}" for k in self.added]
        out += [f"  ~ {k}" for k in self.changed]
        out += [f"  - {k}" for k in self.retired]
        return out


@dataclass
class SidRegistry:
    block: tuple[int, int]
    version: int = 0
    rules: dict[str, _Entry] = field(default_factory=dict)
    retired: dict[str, int] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _added: list[str] = field(default_factory=list)
    _changed: list[str] = field(default_factory=list)
    _highest: int | None = None

    @classmethod
    def load(cls, path: Path, block: tuple[int, int]) -> SidRegistry:
        """The registry at ``path``, or an empty one when there is none yet."""
        if not path.exists() and not path.is_symlink():
            return cls(block=block)
        from sensor_plugins.inputs.textfile import read_text

        # Through the strict reader: a FIFO or device in its place must not block generate.
        return cls.from_json(read_text(path, "sid registry", 64 * 1024 * 1024, SidRegistryError), str(path), block)

    @classmethod
    def from_json(cls, text: str, where: str, block: tuple[int, int]) -> SidRegistry:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SidRegistryError(f"{where}:{exc.lineno}: invalid sid registry JSON: {exc.msg}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise SidRegistryError(f"{where}: not a sid registry of format {FORMAT}")
        registry = cls(block=block, version=_int(doc.get("version"), where, "version"))
        used: dict[int, str] = {}
        for key, raw in (doc.get("rules") or {}).items():
            entry = _parse_entry(key, raw, where)
            registry.rules[key] = entry
            _claim(used, entry.sid, key, where)
        for key, sid in (doc.get("retired") or {}).items():
            _check_key(key, where)
            registry.retired[key] = _int(sid, where, f"retired.{key}")
            _claim(used, registry.retired[key], key, where)
        _check_block_holds_live_sids(registry, where)
        return registry

    def assign(self, key: str, content: str, date: dt.date) -> Assignment:
        """The sid and rev of the rule ``key`` whose sid-free text is ``content``."""
        _check_key(key, "rule key")
        if key in self._seen:
            raise SidRegistryError(f"rule key {key!r} was rendered twice")
        self._seen.add(key)
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]
        entry = self.rules.get(key)
        if entry is None:
            # A key that was retired and comes back gets a new sid: its old alerts meant something else.
            entry = _Entry(self._next_sid(), 1, digest, date, date)
            self.rules[key] = entry
            self.retired.pop(key, None)
            self._added.append(key)
        elif entry.digest != digest:
            entry.rev += 1
            entry.digest = digest
            entry.updated_at = date
            self._changed.append(key)
        return Assignment(entry.sid, entry.rev, entry.created_at, entry.updated_at)

    def finish(self) -> ChangeSummary:
        """Retire every key not assigned in this run and settle the ruleset VERSION."""
        gone = sorted(set(self.rules) - self._seen)
        for key in gone:
            self.retired[key] = self.rules.pop(key).sid
        summary_changed = bool(self._added or self._changed or gone)
        if summary_changed:
            self.version += 1
        return ChangeSummary(tuple(self._added), tuple(self._changed), tuple(gone), self.version)

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "block": list(self.block),
            "version": self.version,
            "rules": {
                k: {
                    "sid": e.sid, "rev": e.rev, "digest": e.digest,
                    "created_at": e.created_at.isoformat(), "updated_at": e.updated_at.isoformat(),
                }
                for k, e in sorted(self.rules.items(), key=lambda kv: kv[1].sid)
            },
            "retired": dict(sorted(self.retired.items(), key=lambda kv: kv[1])),
        }
        return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"

    def _next_sid(self) -> int:
        # Sids are handed out upwards and never reused, so the highest sid ever taken in
        # the block is all the state needed; scanning every sid per new rule made a first
        # 20k-rule generate quadratic.
        if self._highest is None:
            taken = [e.sid for e in self.rules.values()] + list(self.retired.values())
            self._highest = max((s for s in taken if self.block[0] <= s <= self.block[1]),
                                default=self.block[0] - 1)
        if self._highest + 1 > self.block[1]:
            raise SidRegistryError(
                f"sid block {self.block[0]}-{self.block[1]} is used up; widen sid_block in the catalogue"
            )
        self._highest += 1
        return self._highest


def _parse_entry(key: str, raw: Any, where: str) -> _Entry:
    _check_key(key, where)
    if not isinstance(raw, dict):
        raise SidRegistryError(f"{where}: rules.{key} must be an object")
    try:
        return _Entry(
            sid=_int(raw.get("sid"), where, f"rules.{key}.sid"),
            rev=_int(raw.get("rev"), where, f"rules.{key}.rev"),
            digest=str(raw["digest"]),
            created_at=dt.date.fromisoformat(str(raw["created_at"])),
            updated_at=dt.date.fromisoformat(str(raw["updated_at"])),
        )
    except (KeyError, ValueError) as exc:
        raise SidRegistryError(f"{where}: rules.{key}: missing or bad field ({exc})") from exc


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise SidRegistryError(f"{where}: invalid rule key {str(key)[:60]!r}")


def _int(value: Any, where: str, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SidRegistryError(f"{where}: {what} must be a non-negative integer")
    return value


def _check_block_holds_live_sids(registry: SidRegistry, where: str) -> None:
    """A narrowed sid_block must still hold every live sid, or the rules would leave it unannounced."""
    first, last = registry.block
    outside = sorted((e.sid, k) for k, e in registry.rules.items() if not first <= e.sid <= last)
    if outside:
        sid, key = outside[0]
        raise SidRegistryError(
            f"{where}: the catalogue's sid_block {first}-{last} no longer holds {len(outside)} live sid(s), "
            f"first {sid} ({key!r}); widen sid_block to cover them"
        )


def _claim(used: dict[int, str], sid: int, key: str, where: str) -> None:
    if not 1_000_000 <= sid <= 1_999_999:
        raise SidRegistryError(f"{where}: sid {sid} of {key!r} is outside 1000000-1999999")
    if sid in used:
        raise SidRegistryError(f"{where}: sid {sid} is used by both {used[sid]!r} and {key!r}")
    used[sid] = key
