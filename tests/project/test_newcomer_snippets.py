"""newcomer_project/ is built from the documentation's snippets: they are in its files, word
for word.

tests/project/test_newcomer_server.py runs the project; this keeps it equal to what the
quickstart and the testing page tell a newcomer to write (a change to those snippets that the
project does not follow fails here). The README's settings are the quickstart's
(tests/project/test_docs.py).
"""

from __future__ import annotations

import pytest

from tests.helpers import ROOT

QUICKSTART = (ROOT / "docs" / "quickstart.md").read_text()
TESTING = (ROOT / "docs" / "testing.md").read_text()
POOL_PAGE = (ROOT / "docs" / "pool-page.md").read_text()
PROJECT = ROOT / "newcomer_project"


def _block(page: str, after: str, fence: str = "python") -> str:
    return page.split(after, 1)[1].split(f"```{fence}\n", 1)[1].split("```", 1)[0]


def _lines(block: str) -> list[str]:
    """The block's code lines that a project copies as they are (no "..." placeholders)."""
    return [
        line.strip()
        for line in block.splitlines()
        if line.strip() and "..." not in line and not line.lstrip().startswith("#")
    ]


@pytest.mark.parametrize(
    ("page", "snippet_line", "file"),
    [
        (
            "quickstart",
            '"django_mongopool.middleware.MongoSessionMiddleware",  # first, so every response passes it',
            "shop/settings.py",
        ),
        (
            "quickstart",
            "# urls.py: the readiness probe and Prometheus metrics, outside admin/ (the page needs no line)",
            "shop/urls.py",
        ),
        ("pool-page", 'path("mongopool/", include("django_mongopool.urls")),', "shop/urls.py"),
        (
            "quickstart",
            'orders = get_database()["orders"]  # MONGOPOOL_DATABASE, or the URI\'s /database',
            "orders/views.py",
        ),
        (
            "quickstart",
            'docs = orders.find({"user": request.user.pk}, session=request.mongo_session)',
            "orders/views.py",
        ),
        ("quickstart", "session = await request.amongo_session()", "orders/views.py"),
        (
            "testing",
            "def test_create_on_mongomock(mongopool_mock):  # the database get_database() returns, in memory",
            "orders/tests.py",
        ),
        (
            "testing",
            "def test_create_on_a_server(mongopool_db):  # a database of its own on a real server",
            "orders/tests.py",
        ),
        (
            "testing",
            '@override_settings(MONGOPOOL_URI="mongodb://127.0.0.1:9/shop")  # nothing listens on port 9',
            "orders/tests.py",
        ),
    ],
)
def test_the_snippets_lines_are_in_the_project(page, snippet_line, file):
    # The pages name their examples' functions after their own app; the line itself is the same.
    page_form = snippet_line.replace("test_create_on_mongomock", "test_sign").replace(
        "test_create_on_a_server", "test_sign_on_a_server"
    )
    assert (
        page_form in {"quickstart": QUICKSTART, "testing": TESTING, "pool-page": POOL_PAGE}[page]
    ), page_form
    assert snippet_line in (PROJECT / file).read_text(), file


def test_the_pytest_configuration_is_the_testing_pages():
    config = (PROJECT / "pyproject.toml").read_text()
    for line in _lines(_block(TESTING, "The minimal configuration, in your project's", "toml")):
        assert line.replace('"mysite.settings"', '"shop.settings"') in config, line


def test_the_503_test_is_the_testing_pages():
    tests = (PROJECT / "orders" / "tests.py").read_text()
    for line in _lines(_block(TESTING, "A test that sets `MONGOPOOL_URI` itself")):
        if not line.startswith(("from ", "import ")):  # the project imports more on one line
            assert line in tests, line
