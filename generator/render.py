"""Render planned files with Jinja2; every value reaches a script quoted or pattern-checked."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import jinja2

from generator import __version__
from generator.planned import PlannedFile
from generator.quoting import pg_conf_quote, shell_quote
from generator.validate import Host


def templates_dir() -> Path:
    """The installed templates (pyproject.toml maps templates/ to generator.templates);
    templates/ beside generator/ when running from a checkout that is not installed."""
    spec = importlib.util.find_spec("generator.templates")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "lib").is_dir():
            return Path(folder)
    return Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        auto_reload=False,  # one build never sees a template change: skip the stat per use
        cache_size=-1,  # a plain dict of every template: no LRU bookkeeping per include
        # bash says ${#array[@]}: keep "{#" for bash, give Jinja comments another marker
        comment_start_string="{##",
        comment_end_string="##}",
    )
    env.filters["shq"] = shell_quote
    env.filters["pgq"] = pg_conf_quote
    return env


def render_file(host: Host, planned: PlannedFile) -> bytes:
    spec = host.spec
    context = {
        "version": __version__,
        "host": spec,
        "clusters": host.clusters,
        "pool": spec.pool,
        "nfs": spec.nfs,
        "file": planned,
        **planned.context,
    }
    text = environment().get_template(planned.template).render(context)
    return text.encode("utf-8")
