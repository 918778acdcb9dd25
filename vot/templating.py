"""HTML from the package's jinja2 templates (``vot/templates/*.html.j2``), always autoescaped.

Every page and fragment the package writes (``report.html``, the report's problem pages,
`vot.viewer.chain_html`, the `vot.viewer_widget.ChainViewer` headers) is a template here; text from
problems and chains reaches HTML only through jinja2's escaping.
"""
from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape


def _percent(value: float | None) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f}%"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The one jinja2 environment: templates from the ``vot`` package, autoescape on (``.html.j2``
    included), undefined names an error, filters ``percent`` (0.25 -> 25.0%) and ``score`` (0.25 -> 0.25)."""
    env = Environment(loader=PackageLoader("vot"), autoescape=select_autoescape(("html", "htm", "html.j2"), default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["percent"] = _percent
    env.filters["score"] = lambda value: "–" if value is None else f"{value:.2f}"
    return env


def template(name: str) -> Template:
    return environment().get_template(name)


def render(name: str, **context) -> str:
    """Render template ``name`` (e.g. ``report.html.j2``) with ``context``."""
    return template(name).render(**context)
