"""The settings reference, rendered from the one registry: ``django_mongopool.conf.SETTINGS``.

``{mongopool-settings}`` in a page becomes a definition list of every ``MONGOPOOL_*`` setting:
its name, what it does and the values allowed, its default, and whether changing it rebuilds
the client. A setting without a
``doc`` in the registry is a warning, so the documentation build (warnings are errors) fails
rather than leave a setting out.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


def shown_default(setting: Any) -> str:
    """The default as the page shows it (Markdown): ``default_doc``, else the value as code."""
    if setting.default_doc:
        return str(setting.default_doc)
    value = setting.default
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _sentence(text: str) -> str:
    """The registry's text as a sentence: capital first letter, full stop at the end."""
    text = _one_line(text)
    if text[:1].isalpha():
        text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def settings_list() -> list[str]:
    """A Markdown definition list of every setting, in the registry's order."""
    from django_mongopool.conf import SETTINGS

    lines: list[str] = []
    for name, setting in SETTINGS.items():
        rebuilds = (
            "changing it rebuilds the client" if setting.client else "read again when changed"
        )
        lines += [
            f"`{name}`",
            f": {_sentence(setting.doc)}",
            "",
            f"  Default: {_one_line(shown_default(setting))}; {rebuilds}.",
            "",
        ]
    return lines


class SettingsDirective(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        from django_mongopool import conf

        self.env.note_dependency(conf.__file__)
        for name, setting in conf.SETTINGS.items():
            if not setting.doc.strip():
                logger.warning(
                    "%s has no doc in django_mongopool.conf.SETTINGS",
                    name,
                    location=self.get_location(),
                )
        container = nodes.container(classes=["mongopool-settings"])
        self.state.nested_parse(
            StringList(settings_list(), self.get_source_info()[0]), self.content_offset, container
        )
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("mongopool-settings", SettingsDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
