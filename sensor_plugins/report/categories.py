"""Service categories for the activity profile: a bundled YAML of domain suffixes that users extend.

A domain is filed under the category of its longest matching suffix, so a user's specific
entry (``maps.google.com``) can take a name away from a broad bundled one (``google.com``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.inputs.catalogue import safe_yaml
from sensor_plugins.inputs.textfile import read_text

UNCATEGORISED = "uncategorised"
UNCATEGORISED_LABEL = "Uncategorised"
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
LABEL_RE = re.compile(r"[A-Za-z0-9 ,.&()/'-]{1,60}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
MAX_DOMAIN = 253
MAX_FILE_BYTES = 4 * 1024 * 1024
TOP_KEYS = {"version", "categories"}
CATEGORY_KEYS = {"label", "domains"}


class CategoriesError(SensorPluginsError):
    """A categories file that cannot be used; the message names the file, category and entry."""


@dataclass(frozen=True)
class Categories:
    """Category slug -> label (file order), and domain suffix -> category slug."""

    labels: dict[str, str]
    suffixes: dict[str, str]

    def classify(self, domain: str) -> str:
        """The category of ``domain`` (already normalised), or ``uncategorised``."""
        labels = domain.split(".")
        # Walk from the whole name to the TLD so the longest matching suffix wins.
        for start in range(len(labels)):
            hit = self.suffixes.get(".".join(labels[start:]))
            if hit is not None:
                return hit
        return UNCATEGORISED

    def label(self, slug: str) -> str:
        return UNCATEGORISED_LABEL if slug == UNCATEGORISED else self.labels[slug]

    def extended(self, other: Categories) -> Categories:
        """These categories with ``other`` on top: new domains added, listed domains moved."""
        labels = dict(self.labels)
        labels.update(other.labels)
        suffixes = dict(self.suffixes)
        suffixes.update(other.suffixes)
        return Categories(labels, suffixes)


def normalise_domain(raw: str) -> str | None:
    """A log's host name as a comparable domain, or None when it is not a plain DNS name.

    HTTP Host headers carry ports and DNS names a trailing dot; both are dropped. Anything
    else outside ``[a-z0-9.-]`` (a hostile server_name, an IP literal in brackets) is not
    a domain we can classify, and the caller keeps it as uncategorised.
    """
    name = raw.strip().lower()
    if name.count(":") == 1:
        host, port = name.split(":")
        if port.isdigit():
            name = host
    name = name.rstrip(".")
    if not name or len(name) > MAX_DOMAIN or not DOMAIN_RE.fullmatch(name):
        return None
    return name


def default_categories_path() -> Path:
    return Path(str(resources.files("sensor_plugins") / "data" / "categories.yaml"))


def load_categories(extra: Path | str | None = None) -> Categories:
    """The bundled categories, extended by the user's file when one is given."""
    bundled = _load_file(default_categories_path(), extending=None)
    if extra is None:
        return bundled
    return bundled.extended(_load_file(Path(extra), extending=bundled))


def _load_file(path: Path, extending: Categories | None) -> Categories:
    text = read_text(path, "categories file", MAX_FILE_BYTES, CategoriesError)
    return parse_categories(text, str(path), extending)


def parse_categories(text: str, where: str, extending: Categories | None = None) -> Categories:
    """Validate one categories document; with ``extending``, known categories may omit their label."""
    try:
        doc = safe_yaml(text, where)
    except SensorPluginsError as exc:
        raise CategoriesError(str(exc)) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("categories"), dict):
        raise CategoriesError(f"{where}: the document must be a mapping with a 'categories' mapping")
    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise CategoriesError(f"{where}: unknown top-level key {sorted(map(str, unknown))[0]!r}")
    if doc.get("version", 1) != 1:
        raise CategoriesError(f"{where}: version must be 1")
    labels: dict[str, str] = {}
    suffixes: dict[str, str] = {}
    for slug, body in doc["categories"].items():
        labels[_check_slug(slug, where)] = _check_label(slug, body, where, extending)
        for domain in body.get("domains") or []:
            entry = _check_domain(slug, domain, where)
            if entry in suffixes and suffixes[entry] != slug:
                raise CategoriesError(
                    f"{where}: category {slug!r}: domain {entry!r} is already in category {suffixes[entry]!r}"
                )
            suffixes[entry] = slug
    return Categories(labels, suffixes)


def _check_slug(slug: object, where: str) -> str:
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        raise CategoriesError(f"{where}: category name {str(slug)[:40]!r} must match [a-z0-9-], at most 40")
    if slug == UNCATEGORISED:
        raise CategoriesError(f"{where}: category name {UNCATEGORISED!r} is reserved")
    return slug


def _check_label(slug: str, body: object, where: str, extending: Categories | None) -> str:
    if not isinstance(body, dict):
        raise CategoriesError(f"{where}: category {slug!r} must be a mapping with 'label' and 'domains'")
    unknown = set(body) - CATEGORY_KEYS
    if unknown:
        raise CategoriesError(f"{where}: category {slug!r}: unknown key {sorted(map(str, unknown))[0]!r}")
    if not isinstance(body.get("domains", []), list):
        raise CategoriesError(f"{where}: category {slug!r}: 'domains' must be a list")
    label = body.get("label")
    if label is None and extending is not None and slug in extending.labels:
        return extending.labels[slug]
    if not isinstance(label, str) or not LABEL_RE.fullmatch(label):
        raise CategoriesError(
            f"{where}: category {slug!r}: 'label' must be 1-60 letters, digits, spaces or ,.&()/'-"
        )
    return label


def _check_domain(slug: str, domain: object, where: str) -> str:
    text = domain if isinstance(domain, str) else repr(domain)
    if not isinstance(domain, str) or len(domain) > MAX_DOMAIN or not DOMAIN_RE.fullmatch(domain):
        raise CategoriesError(
            f"{where}: category {slug!r}: domain {text[:80]!r} must be lower-case [a-z0-9.-] labels"
        )
    return domain
