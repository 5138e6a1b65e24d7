"""The README's settings reference and check list match the code."""

from __future__ import annotations

import re
from pathlib import Path

from django_mongopool.conf import SETTINGS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
_ROW = re.compile(r"^\| `(MONGOPOOL_[A-Z_]+)` \| (.*?) \|", re.M)


def _settings_table() -> dict[str, str]:
    section = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    return dict(_ROW.findall(section))


def test_every_setting_is_documented_once_and_nothing_else():
    assert sorted(_settings_table()) == sorted(SETTINGS)


def test_documented_defaults_are_the_real_ones():
    table = _settings_table()
    for name, setting in SETTINGS.items():
        if setting.default in (None, {}, ()):
            continue  # documented in words ("none", "the URI's /database", ...)
        shown = re.findall(r"`([^`]*)`", table[name])
        assert shown, name
        allowed = {repr(setting.default), str(setting.default), f'"{setting.default}"'}
        assert shown[0] in allowed, (name, shown[0])
