"""The jinja2 environment both renderers share; each renderer adds its own escaping filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2


def environment(subdir: str, filters: dict[str, Callable[..., Any]] | None = None) -> jinja2.Environment:
    """A strict environment over ``templates/<subdir>``.

    StrictUndefined turns a misspelt variable into an error instead of an empty string
    in a rule; autoescape is off because HTML escaping is wrong for rules and scripts —
    each renderer registers the escaping its target language needs.
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sensor_plugins", f"templates/{subdir}"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # The templates ship inside the package and do not change during a run; checking
        # their mtime on every get_template was 8% of generating 20k rules.
        auto_reload=False,
    )
    env.filters.update(filters or {})
    return env
