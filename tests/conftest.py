"""Shared test helpers: where the repository is and how to write a catalogue for one test.

Each stage's tests live in ``tests/<stage>/`` with their fixtures in ``tests/<stage>/fixtures/``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent

RANGE_TEMPLATE = """\
  - name: {name}
    cidr: {cidr}
    country: KP
    owner: Test owner
    source: Test source
    confidence: {confidence}
"""


def catalogue_yaml(*ranges: tuple[str, str], extra: str = "", confidence: str = "high") -> str:
    """A minimal valid catalogue holding ``(name, cidr)`` ranges."""
    body = "".join(RANGE_TEMPLATE.format(name=n, cidr=c, confidence=confidence) for n, c in ranges)
    return "version: 1\n" + textwrap.dedent(extra) + "ranges:\n" + body


@pytest.fixture
def write_catalogue(tmp_path: Path):
    def write(text: str, name: str = "catalogue.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
