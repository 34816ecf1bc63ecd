"""Jinja2 rendering of every mail the desk writes.

Sandboxed, so a template edited by an agency cannot reach Python internals, and text
taken from a message is only ever data in the context, never template source.
Agencies override any template with a file of the same name in ``config/templates/``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment

from desk.outbound.layout import wrap_text
from desk.words import noun_for, plural


@lru_cache(maxsize=8)
def environment(override_dir: str | None) -> ImmutableSandboxedEnvironment:
    loaders: list[Any] = []
    if override_dir:
        # Always consulted (even if the folder appears only later): an agency can add an
        # override to a running desk.
        loaders.append(FileSystemLoader(override_dir))
    loaders.append(PackageLoader("desk", "templates"))
    env = ImmutableSandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        # HTML templates escape everything from the context; plain-text ones must not.
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    # Templates count things in people's words: {{ n | plural("ticket") }}.
    env.filters["plural"] = plural
    env.filters["noun_for"] = noun_for
    # Text parts: {% filter wrap %} around a template's own prose (desk/outbound/layout.py).
    env.filters["wrap"] = wrap_text
    return env


def template_exists(name: str, override_dir: Path | None) -> bool:
    env = environment(str(override_dir) if override_dir else None)
    try:
        env.get_template(name)
    except TemplateNotFound:
        return False
    return True


def render(name: str, context: dict[str, Any], override_dir: Path | None = None) -> str:
    env = environment(str(override_dir) if override_dir else None)
    return env.get_template(name).render(**context)

