"""What every renderer receives: the validated catalogue and Tor list, and the renderer contract.

As in pySigma, one model goes through processing steps and then to one backend per
engine; here the model is ``SensorContent`` and the backends are the Zeek and Suricata
renderers. A renderer returns file texts and never touches the disk: the generator
stages, validates and swaps them in, so a renderer cannot leave a sensor half-updated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sensor_plugins.inputs.catalogue import Catalogue
from sensor_plugins.inputs.feeds import TorList


@dataclass(frozen=True)
class SensorContent:
    catalogue: Catalogue
    tor: TorList

    @property
    def content_date(self) -> dt.date:
        """The newest date the inputs carry.

        Rules need ET's created_at/updated_at dates. Taking them from the inputs rather
        than the clock keeps regeneration byte-identical for the same inputs.
        """
        dates = [d for r in self.catalogue.ranges for d in (r.first_seen, r.last_seen) if d]
        dates += [f.fetched for f in self.tor.feeds]
        return max(dates, default=dt.date(2017, 7, 25))


@dataclass
class Rendered:
    """A renderer's output: relative path -> file text, plus lines for the change summary."""

    files: dict[str, str]
    summary: list[str] = field(default_factory=list)


class Renderer(Protocol):
    name: str

    def render(self, content: SensorContent, previous: Path | None) -> Rendered:
        """Render every file; ``previous`` is the currently committed output dir, if any."""
        ...
