"""The package's layout: public import paths, one-way imports, no private names.

The subpackages stand in floors. ``guards`` (what keeps mistakes and secrets from escaping) is
used by every other one; ``client`` (the process's clients) by ``request``, ``tasks``, ``fleet``
and ``audit``; ``tasks`` builds on ``request`` and ``fleet``; ``audit`` on all of them. A
module imports only from its own floor or lower ones, never from a top-level Django module
(``admin``, ``urls``, ``checks``, the commands, ``testing``...), and ``conf`` and
``exceptions`` are shared by all. From the package's root (whose ``__init__`` imports
``client.process`` for the public API) a module takes only ``__version__``. No module uses a
private name of another, however it reaches it. Function-level and relative imports count as
much as module-level ones.

Each check is a function of one module's source, so the tests below also feed it small sources
that break the rule in every spelling it knows: the check itself can fail.
"""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "django_mongopool"
ROOT_PACKAGE = "django_mongopool"

# Floor of each subpackage: a module may import from its own subpackage and from lower floors.
FLOORS = {"guards": 0, "client": 1, "request": 2, "fleet": 2, "tasks": 3, "audit": 4}
# Top-level modules every floor may use: the settings registry and the exceptions.
SHARED = {"conf", "exceptions"}
# What conf itself needs: the parser of the client options it validates, the redaction of the
# values it quotes, and the registry of what a forked child resets (its lock).
SHARED_NEEDS = {
    "django_mongopool.client.options",
    "django_mongopool.guards.forks",
    "django_mongopool.guards.redact",
}
# What a module of the package may take from the root package.
FROM_THE_ROOT = {"__version__"}

# Attributes the app puts on objects (its own client and session classes, pymongo's, Django's)
# are named ``_mongopool_*``; each belongs to one module, the others asking it through a public
# function. The exceptions are the client floor's own protocol on the app's client and session
# classes (the mixin in process.py, the subclasses in event_loops.py and sessions.py, the hooks
# pymongo_internals.py installs on them), kept inside client/ and private on purpose: pymongo's
# ``MongoClient.__getattr__`` turns any unknown public name into a database, so a public name
# read off a client that is not the app's would never be missing. The test fails when an entry
# is stale or a new attribute is shared.
SHARED_PRIVATE_ATTRIBUTES: dict[str, set[str]] = {
    "_mongopool_async": {"django_mongopool.client.event_loops", "django_mongopool.client.process"},
    "_mongopool_counters": {
        "django_mongopool.client.process",
        "django_mongopool.client.pymongo_internals",
        "django_mongopool.client.sessions",
    },
    "_mongopool_explicit_session": {
        "django_mongopool.client.process",
        "django_mongopool.client.pymongo_internals",
    },
    "_mongopool_pool": {"django_mongopool.client.event_loops", "django_mongopool.client.process"},
}
APP_ATTRIBUTE = re.compile(r"_mongopool_\w+")

PUBLIC = {
    "django_mongopool": [
        "get_client",
        "get_database",
        "get_async_client",
        "get_async_database",
        "__version__",
    ],
    "django_mongopool.middleware": ["MongoSessionMiddleware"],
    "django_mongopool.urls": ["urlpatterns", "app_name"],
    "django_mongopool.backends.mongodb.base": ["DatabaseWrapper"],
    "django_mongopool.testing": [
        "mongo_request",
        "end_mongo_request",
        "end_mongo_requests",
        "assert_no_leaked_sessions",
        "assert_max_connections",
        "explain_missing_sessions",
        "count_sessions",
        "SessionCount",
    ],
    "django_mongopool.testing.ferretdb": ["FerretDB", "FerretDBUnavailable"],
    "django_mongopool.testing.mock": ["mock_clients", "MockClient", "AsyncMockClient"],
    "django_mongopool.mongoengine": ["connect", "disconnect", "SharedClient"],
    "django_mongopool.transactions": ["mongo_transaction", "run_in_transaction"],
    "django_mongopool.pytest_plugin": ["mongopool_db", "mongopool_server", "mongopool_mock"],
    "django_mongopool.conf": ["conf", "SETTINGS"],
    "django_mongopool.checks": ["register"],
    "django_mongopool.exceptions": [
        "StrayClientWarning",
        "StrayClientError",
        "LeakedSessionWarning",
        "LeakedSessionError",
        "TransactionsNotSupported",
        "ServerUnreachableInTests",
    ],
    "django_mongopool.apps": ["MongoPoolConfig"],
    "django_mongopool.models": ["PoolHealth"],
    "django_mongopool.admin": ["PoolHealthAdmin"],
    "django_mongopool.management.commands.mongo_connections": ["Command"],
    "django_mongopool.management.commands.test": ["Command"],
    "django_mongopool.tasks.scope": ["task_session", "task_scope"],
    "django_mongopool.tasks.fleet": ["join_fleet"],
    "django_mongopool.tasks.celery": ["install"],
    "django_mongopool.ops": ["ALERT_RULES", "ALERT_RULE_TESTS", "GRAFANA_DASHBOARD"],
}


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[-1] == "__init__"
    if package:
        parts.pop()
    return ".".join(parts), package


# Every module of the package, by dotted name (a subpackage by its own name).
MODULES = frozenset(_module_name(path)[0] for path in PACKAGE.rglob("*.py"))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@dataclass(frozen=True)
class Source:
    """One module's text under its dotted name; ``package`` for a package's ``__init__``."""

    name: str
    text: str
    package: bool = False
    where: str = ""

    @classmethod
    def of(cls, path: Path) -> Source:
        name, package = _module_name(path)
        return cls(name, path.read_text(), package, str(path.relative_to(ROOT)))

    @cached_property
    def tree(self) -> ast.Module:
        return ast.parse(self.text)

    def at(self, node: ast.AST) -> str:
        return f"{self.where or self.name}:{getattr(node, 'lineno', 0)}"


SOURCES = [Source.of(path) for path in sorted(PACKAGE.rglob("*.py"))]


@dataclass(frozen=True)
class Import:
    """One name an import statement binds: ``module`` is where it comes from (absolute),
    ``target`` the module it is, or the module it is a name of."""

    node: ast.stmt
    module: str
    name: str | None  # None: ``import a.b.c``
    target: str
    bound: str
    bound_to: str | None = None  # the module the bound name is, if it is one


def _absolute(source: Source, node: ast.ImportFrom) -> str:
    """The module of ``from ... import``, relative spellings resolved against ``source``."""
    if node.level == 0:
        return node.module or ""
    base = source.name.split(".")
    if not source.package:
        base.pop()
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(source: Source) -> list[Import]:
    """Every import of the package in ``source``, at any depth, relative ones resolved."""
    found = []
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.partition(".")[0] == ROOT_PACKAGE:
                    bound = alias.asname or ROOT_PACKAGE
                    bound_to = alias.name if alias.asname else ROOT_PACKAGE
                    found.append(Import(node, alias.name, None, alias.name, bound, bound_to))
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(source, node)
            if module.partition(".")[0] != ROOT_PACKAGE:
                continue
            for alias in node.names:
                full = f"{module}.{alias.name}"
                is_module = full in MODULES
                target = full if is_module else module
                bound = alias.asname or alias.name
                found.append(
                    Import(node, module, alias.name, target, bound, full if is_module else None)
                )
    return found


def _floor(module: str) -> str | None:
    """The floor of a module or of a subpackage's ``__init__``; None for the top level."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FLOORS else None


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None for anything but names and attributes."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(names)]


def _modules_bound(source: Source) -> dict[str, str]:
    """Each name ``source`` binds to a module of the package, and that module."""
    return {i.bound: i.bound_to for i in imports(source) if i.bound_to is not None}


def _module_of(expression: ast.expr, bound: dict[str, str]) -> str | None:
    """The module of the package ``expression`` is (``p``, ``django_mongopool.x.y``), if any."""
    names = _dotted(expression)
    if not names or names[0] not in bound:
        return None
    module = ".".join([bound[names[0]], *names[1:]])
    return module if module in MODULES else None


def direction_violations(source: Source) -> list[str]:
    """Imports that run against the floors, or take from the root more than its version."""
    wrong = []
    floor, top = _floor(source.name), _top(source.name)
    for imported in imports(source):
        target = imported.target
        where = f"{source.at(imported.node)} imports {target}"
        if target == ROOT_PACKAGE and imported.name and imported.name not in FROM_THE_ROOT:
            wrong.append(f"{where} {imported.name or ''} (from the root: only __version__)")
        elif top in SHARED:  # conf and exceptions: only what validating settings needs
            if _top(target) not in SHARED and target not in SHARED_NEEDS:
                wrong.append(where)
        elif floor is None:
            continue  # a top-level Django module: it may use every floor
        elif _floor(target) is None:
            if _top(target) not in SHARED and target != ROOT_PACKAGE:
                wrong.append(f"{where} (a top-level module)")
        elif _floor(target) != floor and FLOORS[_floor(target)] >= FLOORS[floor]:
            wrong.append(f"{where} (floor {_floor(target)} above or beside {floor})")
    # The root's names reached as attributes: django_mongopool.get_client after an import.
    bound = _modules_bound(source)
    for node in ast.walk(source.tree):
        if (
            isinstance(node, ast.Attribute)
            and _module_of(node.value, bound) == ROOT_PACKAGE
            and f"{ROOT_PACKAGE}.{node.attr}" not in MODULES
            and node.attr not in FROM_THE_ROOT
        ):
            wrong.append(f"{source.at(node)} uses {ROOT_PACKAGE}.{node.attr} (the root)")
    return wrong


GETTERS = {"getattr", "hasattr", "setattr", "delattr"}


def private_name_violations(source: Source) -> list[str]:
    """Private names of another module of the package used by ``source``: imported (absolute
    or relative, at any depth), read as an attribute of a module (``module._x``,
    ``django_mongopool.a.b._x``), or named to ``getattr`` and its kin."""
    wrong = []
    for imported in imports(source):
        leaf = imported.name or imported.module.rpartition(".")[2]
        if _private(leaf) or any(_private(part) for part in imported.target.split(".")):
            wrong.append(f"{source.at(imported.node)} imports {imported.module} {leaf}")
    bound = _modules_bound(source)

    def other_module(expression: ast.expr) -> str | None:
        module = _module_of(expression, bound)
        return module if module not in (None, source.name) else None

    for node in ast.walk(source.tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            module = other_module(node.value)
            if module:
                wrong.append(f"{source.at(node)} uses {module}.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in GETTERS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            module = other_module(node.args[0])
            if module:
                wrong.append(f"{source.at(node)} {node.func.id}({module}, {node.args[1].value!r})")
    return wrong


def app_attributes(source: Source) -> set[str]:
    """The ``_mongopool_*`` attributes ``source`` defines, reads or names."""
    found = set()
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Attribute) and APP_ATTRIBUTE.fullmatch(node.attr):
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if APP_ATTRIBUTE.fullmatch(node.value):
                found.add(node.value)  # getattr(x, "_mongopool_y"), a mark's name
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                targets: Iterable[ast.expr] = ()
                if isinstance(statement, ast.Assign):
                    targets = statement.targets
                elif isinstance(statement, ast.AnnAssign):
                    targets = [statement.target]
                elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                    targets = [ast.Name(statement.name)]
                for target in targets:
                    if isinstance(target, ast.Name) and APP_ATTRIBUTE.fullmatch(target.id):
                        found.add(target.id)
    return found


def shared_app_attributes(sources: Iterable[Source]) -> dict[str, set[str]]:
    """Each ``_mongopool_*`` attribute that more than one module uses, and those modules."""
    users: dict[str, set[str]] = {}
    for source in sources:
        for name in app_attributes(source):
            users.setdefault(name, set()).add(source.name)
    return {name: modules for name, modules in users.items() if len(modules) > 1}


# --- the public paths ---------------------------------------------------------------------


@pytest.mark.parametrize("path,names", PUBLIC.items())
def test_each_public_path_exposes_its_documented_names(path, names):
    module = importlib.import_module(path)
    assert [name for name in names if not hasattr(module, name)] == []


def test_the_public_middleware_is_the_implementation():
    from django_mongopool.middleware import MongoSessionMiddleware
    from django_mongopool.request import middleware

    assert MongoSessionMiddleware is middleware.MongoSessionMiddleware


def test_the_pytest_entry_point_is_the_plugin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    entry = project["entry-points"]["pytest11"]["django_mongopool"]
    assert entry == "django_mongopool.pytest_plugin"
    importlib.import_module(entry)


# --- the package as it is -------------------------------------------------------------------


def test_imports_run_one_way():
    assert [wrong for source in SOURCES for wrong in direction_violations(source)] == []


def test_no_module_uses_another_modules_private_names():
    assert [wrong for source in SOURCES for wrong in private_name_violations(source)] == []


def test_each_app_attribute_belongs_to_one_module():
    """``_mongopool_*`` attributes shared by several modules: only the listed ones, exactly."""
    assert shared_app_attributes(SOURCES) == SHARED_PRIVATE_ATTRIBUTES
    for modules in SHARED_PRIVATE_ATTRIBUTES.values():  # never across floors
        assert all(m.startswith("django_mongopool.client.") for m in modules), modules


def test_subpackages_import_nothing_when_imported():
    """Each subpackage's ``__init__`` only says what it is for: importing
    ``django_mongopool.client.options`` (as conf does) must not import the whole floor."""
    for floor in FLOORS:
        tree = ast.parse((PACKAGE / floor / "__init__.py").read_text())
        assert [type(node).__name__ for node in tree.body] == ["Expr"], floor


def test_only_the_app_installs_the_fork_hook():
    """Modules register their after-fork reset with guards.forks; apps.py installs it once."""
    calls = [
        f"{source.where}:{node.lineno}"
        for source in SOURCES
        for node in ast.walk(source.tree)
        if isinstance(node, ast.Attribute) and node.attr in ("register_at_fork", "getpid")
    ]
    # testing.isolation tells a forked test worker from its parent; ProcessCounters and the
    # heartbeat's document record the pid they report.
    allowed = (
        "django_mongopool/apps.py",
        "django_mongopool/testing/",
        "django_mongopool/client/figures.py",
        "django_mongopool/fleet/heartbeat.py",
    )
    assert [c for c in calls if not c.startswith(allowed)] == []


# --- the checks themselves, on small sources --------------------------------------------------

PROCESS = "django_mongopool.client.process"  # floor 1, a module (not a package)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (PROCESS, "from django_mongopool.audit.report import build_report\n"),
        (PROCESS, "def f():\n    from django_mongopool.audit.report import build_report\n"),
        (PROCESS, "import django_mongopool.audit.report\n"),
        (PROCESS, "import django_mongopool.fleet.heartbeat as beats\n"),  # floor 2
        (PROCESS, "from ..audit.report import build_report\n"),
        (PROCESS, "def f():\n    from ..audit import report\n"),
        (PROCESS, "from .. import admin\n"),  # a top-level Django module
        ("django_mongopool.client", "from ..request import middleware\n"),  # an __init__
        ("django_mongopool.request.middleware", "from ..fleet import shares\n"),  # beside
        ("django_mongopool.conf", "from .client import process\n"),
        (PROCESS, "from django_mongopool import get_client\n"),
        ("django_mongopool.checks", "from django_mongopool import get_database\n"),
        ("django_mongopool.checks", "from . import get_client\n"),
        ("django_mongopool.admin", "import django_mongopool\ndjango_mongopool.get_client()\n"),
    ],
)
def test_the_direction_check_sees_a_wrong_import(name, text):
    package = name == "django_mongopool.client"
    assert direction_violations(Source(name, text, package)) != []


def test_the_direction_check_passes_a_clean_source():
    text = (
        "import django_mongopool.guards.redact\n"
        "from django_mongopool import __version__, conf\n"
        "from django_mongopool.exceptions import StrayClientError\n"
        "from django_mongopool.guards import forks\n"
        "from . import scope\n"
        "from .options import build_config\n"
        "from ..guards.leaks import site\n"
        "def f():\n"
        "    from django_mongopool.client.pools import snapshot\n"
        "    return django_mongopool.guards.redact, django_mongopool.__version__\n"
    )
    assert direction_violations(Source(PROCESS, text)) == []
    assert direction_violations(Source("django_mongopool.client", text, package=True)) == []


def test_relative_imports_resolve_as_python_resolves_them():
    module = Source(PROCESS, "from . import scope\nfrom ..audit import report\n")
    init = Source("django_mongopool.client", "from . import scope\nfrom .. import conf\n", True)
    assert [(i.module, i.target) for i in imports(module)] == [
        ("django_mongopool.client", "django_mongopool.client.scope"),
        ("django_mongopool.audit", "django_mongopool.audit.report"),
    ]
    assert [i.target for i in imports(init)] == [
        "django_mongopool.client.scope",
        "django_mongopool.conf",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "from django_mongopool.client.scope import _reset\n",
        "def f():\n    from django_mongopool.client.scope import _reset\n",
        "from .scope import _reset\n",
        "from ..guards.leaks import _private\n",
        "from django_mongopool.client import scope\nscope._reset()\n",
        "from . import scope\nscope._reset()\n",
        "def f():\n    from django_mongopool.client import scope\n    return scope._state\n",
        "import django_mongopool.client.scope as s\ns._reset()\n",
        "import django_mongopool.client.scope\ndjango_mongopool.client.scope._reset()\n",
        "import django_mongopool.guards.leaks\nx = django_mongopool.guards.leaks._sites\n",
        "from django_mongopool.client import scope\ngetattr(scope, '_reset')()\n",
        "import django_mongopool.client.scope as s\nhasattr(s, '_reset')\n",
        "from django_mongopool import client\nsetattr(client.scope, '_state', None)\n",
    ],
)
def test_the_private_name_check_sees_every_spelling(text):
    assert private_name_violations(Source(PROCESS, text)) != [], text


def test_the_private_name_check_passes_a_clean_source():
    text = (
        "from django_mongopool.client import scope\n"
        "from django_mongopool.client.scope import current\n"
        "import django_mongopool.client.scope as s\n"
        "from . import pools\n"
        "def _helper(client):\n"  # a private name of its own
        "    client._topology\n"  # an attribute of an object, not of a module
        "    getattr(client, '_opened', None)\n"
        "    getattr(scope, 'current')\n"
        "    return scope.current, s.RequestScope, pools.snapshot, scope.__name__\n"
        "_helper(None)\n"
    )
    assert private_name_violations(Source(PROCESS, text)) == []


def test_a_module_reading_its_own_private_names_through_itself_passes():
    text = "from django_mongopool.client import process\nprocess._build()\n"
    assert private_name_violations(Source(PROCESS, text)) == []


def test_the_attribute_check_sees_an_attribute_two_modules_use():
    owner = Source(
        "django_mongopool.client.sessions",
        "class S:\n    _mongopool_mark: int = 0\n    def _mongopool_go(self):\n        pass\n",
    )
    reader = Source(
        "django_mongopool.guards.stray",
        "def f(x):\n    return getattr(x, '_mongopool_mark', 0), x._mongopool_go()\n",
    )
    alone = Source("django_mongopool.client.scope", "def f(x):\n    x._mongopool_other = 1\n")
    assert shared_app_attributes([owner, reader, alone]) == {
        "_mongopool_mark": {"django_mongopool.client.sessions", "django_mongopool.guards.stray"},
        "_mongopool_go": {"django_mongopool.client.sessions", "django_mongopool.guards.stray"},
    }
    assert shared_app_attributes([owner, alone]) == {}
