"""The documentation site builds without a warning, says what the code does, and the README
stays a two-minute page.

The site (docs/, Sphinx + Furo + MyST) is built once per run with warnings as errors: a broken
link or anchor, a page outside the table of contents, a setting without its text in the
registry all fail here. No link is checked over the network.
"""

from __future__ import annotations

import html
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from django_mongopool.conf import SETTINGS
from tests.helpers import ROOT

DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
sys.path.insert(0, str(DOCS / "_ext"))
import mongopool_settings  # noqa: E402  (docs/_ext: the extension that renders the settings)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs-html")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=480,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return out


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def test_the_site_builds_with_every_page(site):
    pages = {p.stem for p in DOCS.glob("*.md")} - {"README"}
    built = {p.stem for p in site.glob("*.html")}
    assert pages <= built, pages - built
    assert (site / "_images" / "pool_health.png").is_file()


def test_no_javascript_or_css_from_elsewhere(site):
    for page in site.glob("*.html"):
        text = page.read_text()
        assert not re.search(r'<script[^>]+src="(https?:)?//', text), page.name
        assert not re.search(r'<link[^>]+rel="stylesheet"[^>]+href="(https?:)?//', text), page.name


def test_the_settings_page_is_the_registry(site):
    page = (site / "settings.html").read_text().split("<dl", 1)[1].split("</dl>", 1)[0]
    terms = [_text(term) for term in re.findall(r"<dt[^>]*>(.*?)</dt>", page, re.S)]
    bodies = [_text(body) for body in re.findall(r"<dd[^>]*>(.*?)</dd>", page, re.S)]
    assert terms == list(SETTINGS)  # each once, in the registry's order
    for name, body in zip(terms, bodies, strict=True):
        setting = SETTINGS[name]
        default = _text(mongopool_settings.shown_default(setting).replace("`", ""))
        rebuilds = (
            "changing it rebuilds the client" if setting.client else "read again when changed"
        )
        assert body.endswith(f"Default: {default}; {rebuilds}."), (name, body)
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", setting.doc.replace("`", ""))
        assert _text(plain)[1:] in body, name  # the registry's text (its first letter capitalised)
    # Defaults shown as values are the real ones.
    shown = dict(zip(terms, bodies, strict=True))
    assert shown["MONGOPOOL_RETRY_AFTER"].endswith("Default: 5; read again when changed.")
    assert 'Default: "warn";' in shown["MONGOPOOL_STRAY_CLIENTS"]
    assert "Default: 1.0;" in shown["MONGOPOOL_READINESS_TIMEOUT"]


def test_every_setting_has_its_text():
    """The page is rendered from these texts; the build warns (fails) on an empty one too."""
    for name, setting in SETTINGS.items():
        assert setting.doc.strip(), name


_RANGE = re.compile(r"^(an integer|a number) from ([\d.]+) to ([\d.]+)")


@pytest.mark.parametrize("name", [n for n, s in SETTINGS.items() if _RANGE.match(s.doc)])
def test_documented_ranges_are_the_validators(name):
    from django.core.exceptions import ImproperlyConfigured

    setting = SETTINGS[name]
    kind, low, high = _RANGE.match(setting.doc).groups()
    number = int if kind == "an integer" else float
    low_value, high_value = number(low), number(high)
    assert setting.validate(low_value) == low_value
    assert setting.validate(high_value) == high_value
    step = 1 if kind == "an integer" else 0.01
    for outside in (low_value - step, high_value + step):
        with pytest.raises(ImproperlyConfigured, match=name):
            setting.validate(outside)
    if kind == "an integer":
        with pytest.raises(ImproperlyConfigured, match=name):
            setting.validate(low_value + 0.5)


def test_the_client_option_defaults_table_is_the_code():
    from django_mongopool.client.options import DEFAULT_CLIENT_OPTIONS

    page = (DOCS / "settings.md").read_text().split("## Client option defaults", 1)[1]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", page, re.M)
    shown = {name: value.strip("` ") for name, value in rows if value != "unset"}
    assert shown == {name: str(value) for name, value in DEFAULT_CLIENT_OPTIONS.items()}


_DOTTED = re.compile(r"\bdjango_mongopool(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
# Names that are not Python objects: a permission codename and check ids.
_NOT_OBJECTS = re.compile(r"^django_mongopool\.(view_pool_health|[EW]\d{3})$")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


def test_every_module_and_name_the_docs_give_exists():
    pages = [*DOCS.glob("*.md"), ROOT / "README.md"]
    missing = set()
    for page in pages:
        text = page.read_text()
        for dotted in set(_DOTTED.findall(text)):
            if not _NOT_OBJECTS.match(dotted) and not _resolves(dotted):
                missing.add((page.name, dotted))
        for path in set(
            re.findall(
                r"(?<![\w/])((?:django_mongopool|tests|bench|scripts|example_project|"
                r"newcomer_project|\.ci)/[\w/.-]+\.(?:py|yml|json|toml|txt|html|md))\b",
                text,
            )
        ):
            if not (ROOT / path).is_file():
                missing.add((page.name, path))
    assert not missing, sorted(missing)


def test_the_architecture_page_names_the_modules_that_exist():
    text = (DOCS / "architecture.md").read_text()
    named = set(
        re.findall(r"`((?:client|request|tasks|guards|fleet|audit|contrib)/[a-z_]+\.py)`", text)
    )
    assert len(named) >= 20
    package = ROOT / "django_mongopool"
    assert {path for path in named if not (package / path).is_file()} == set()


def test_the_readme_is_a_two_minute_page():
    lines = README.splitlines()
    assert len(lines) < 200
    # The two commands come first: the first code on the page, before anything else runs.
    first_code = README.split("```", 2)[1]
    commands = [
        line.split("#", 1)[0].strip() for line in first_code.splitlines()[1:] if line.strip()
    ]
    assert commands[:2] == ["./scripts/demo", "./scripts/test"]
    assert README.index("./scripts/demo") < README.index("./scripts/test") < README.index("## ")


def test_the_readmes_settings_are_the_quickstarts():
    def settings_block(text: str) -> str:
        return text.split("## Settings", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]

    assert settings_block(README) == settings_block((DOCS / "quickstart.md").read_text())


def test_the_readmes_anchors_are_headings_of_the_site(site):
    """GitHub shows the README, not the site: its links into a page's section must hit a heading
    the site has (MyST gives headings the same slugs)."""
    anchored = re.findall(r"\]\(docs/([\w-]+)\.md#([^)]+)\)", README)
    assert anchored
    for page, anchor in anchored:
        assert f'id="{anchor}"' in (site / f"{page}.html").read_text(), (page, anchor)


def test_the_runbook_names_the_alerts_the_kit_has():
    from tests.ops_kit import rules

    alerts = {rule["alert"] for rule in rules()}
    page = (DOCS / "operations.md").read_text()
    named = set(re.findall(r"`((?:MongoPool|MongoDB)[A-Za-z]+)`", page))
    assert named == alerts  # every alert leads into the runbook, and only real ones are named


def test_the_readmes_links_lead_somewhere():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert len(local) >= 15
    assert [link for link in local if not (ROOT / link).exists()] == []
    pages = {f"docs/{p.name}" for p in DOCS.glob("*.md")} - {"docs/README.md", "docs/index.md"}
    assert pages - set(local) == {"docs/changelog.md"}  # the README links CHANGELOG.md itself


def test_the_benchmark_page_quotes_the_committed_results():
    """Each committed results table is on the Benchmarks page as written by its harness, so the
    page cannot keep figures of a run the results no longer hold."""
    page = (DOCS / "benchmarks.md").read_text()
    results = sorted((ROOT / "bench" / "results").glob("*.md"))
    assert results
    stale = [path.name for path in results if path.read_text().strip() not in page]
    assert stale == []


def test_the_benchmark_targets_quote_committed_figures():
    """Each figure the targets table states in bold (the measured value of a target) is in a
    committed results file: the table cannot quote a run that was never committed."""
    page = (DOCS / "benchmarks.md").read_text()
    table = page.split("## Against the targets", 1)[1].split("\n## ", 1)[0]
    results = "".join(
        path.read_text()
        for path in (ROOT / "bench" / "results").glob("*")
        if path.suffix in {".md", ".json"}
    )
    figures = re.findall(r"\*\*([-+]?\d+(?:\.\d+)?) ?(%|x)\*\*", table)
    assert len(figures) >= 6
    missing = [value + unit for value, unit in figures if value + unit not in results]
    assert missing == []
