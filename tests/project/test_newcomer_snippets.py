"""newcomer_project/ is built from the README's snippets: they are in its files, word for word.

tests/project/test_newcomer_server.py runs the project; this keeps it equal to what the README
tells a newcomer to write (a README change that the project does not follow fails here).
"""

from __future__ import annotations

import pytest

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()
PROJECT = ROOT / "newcomer_project"


def _block(after: str, fence: str = "python") -> str:
    return README.split(after, 1)[1].split(f"```{fence}\n", 1)[1].split("```", 1)[0]


def _lines(block: str) -> list[str]:
    """The block's code lines that a project copies as they are (no "..." placeholders)."""
    return [
        line.strip()
        for line in block.splitlines()
        if line.strip() and "..." not in line and not line.lstrip().startswith("#")
    ]


@pytest.mark.parametrize(
    ("readme_line", "file"),
    [
        (
            '"django_mongopool.middleware.MongoSessionMiddleware",  # first, so every response passes it',
            "shop/settings.py",
        ),
        (
            "# urls.py: the readiness probe and Prometheus metrics, outside admin/ (the page needs no line)",
            "shop/urls.py",
        ),
        ('path("mongopool/", include("django_mongopool.urls")),', "shop/urls.py"),
        (
            'orders = get_database()["orders"]  # MONGOPOOL_DATABASE, or the URI\'s /database',
            "orders/views.py",
        ),
        (
            'docs = orders.find({"user": request.user.pk}, session=request.mongo_session)',
            "orders/views.py",
        ),
        ("session = await request.amongo_session()", "orders/views.py"),
        (
            "def test_create_on_mongomock(mongopool_mock):  # the database get_database() returns, in memory",
            "orders/tests.py",
        ),
        (
            "def test_create_on_a_server(mongopool_db):  # a database of its own on a real server",
            "orders/tests.py",
        ),
        (
            '@override_settings(MONGOPOOL_URI="mongodb://127.0.0.1:9/shop")  # nothing listens on port 9',
            "orders/tests.py",
        ),
    ],
)
def test_the_readmes_lines_are_in_the_project(readme_line, file):
    # The README names its examples' functions after its own app; the line itself is the same.
    readme_form = readme_line.replace("test_create_on_mongomock", "test_sign").replace(
        "test_create_on_a_server", "test_sign_on_a_server"
    )
    assert readme_form in README, readme_form
    assert readme_line in (PROJECT / file).read_text(), file


def test_the_pytest_configuration_is_the_readmes():
    config = (PROJECT / "pyproject.toml").read_text()
    for line in _lines(_block("The minimal configuration, in your project's", "toml")):
        assert line.replace('"mysite.settings"', '"shop.settings"') in config, line


def test_the_503_test_is_the_readmes():
    tests = (PROJECT / "orders" / "tests.py").read_text()
    for line in _lines(_block("A test that sets `MONGOPOOL_URI` itself")):
        if not line.startswith(("from ", "import ")):  # the project imports more on one line
            assert line in tests, line
