"""The project's reference docs, served inside the UI (machines may have no internet).

The pages are the Markdown files of ``docs/`` in the repository, rendered with
markdown-it-py with raw HTML off, so a doc can never inject markup.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from flask import render_template
from markdown_it import MarkdownIt
from markupsafe import Markup

from experiments.domain import UserRole
from experiments.errors import NotFoundError
from web.permissions import requires
from web.ui import bp

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
PAGES = {"spec": "spec.md", "ui": "ui.md"}


@cache
def _render(name: str) -> Markup:
    path = DOCS / PAGES[name]
    if not path.is_file():
        raise NotFoundError(f"{path} is not here: the docs ship with the repository")
    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    html = renderer.render(path.read_text("utf-8"))  # raw HTML is off: safe
    for page, file in PAGES.items():  # links between the docs lead to their pages here
        html = html.replace(f'href="{file}', f'href="/docs/{page}')
    return Markup(html)


@bp.get("/docs/spec")
@requires(UserRole.VIEWER)
def spec_reference() -> str:
    return render_template("ui/doc.html", title="Experiment spec reference", body=_render("spec"))


@bp.get("/docs/ui")
@requires(UserRole.VIEWER)
def ui_guide() -> str:
    return render_template(
        "ui/doc.html", title="Accounts, roles and the audit log", body=_render("ui")
    )
