"""The package's layout (issue 27): public import paths, one-way imports, no private names.

The subpackages stand in floors. ``guards`` (what keeps mistakes and secrets from escaping) is
used by every other one; ``client`` (the process's clients) by ``request``, ``tasks``, ``fleet``
and ``audit``; ``tasks`` builds on ``request`` and ``fleet``; ``audit`` on all of them. A
module imports only from its own floor or lower ones, never from a top-level Django module
(``admin``, ``urls``, ``checks``, the commands, ``testing``...), and ``conf`` and
``exceptions`` are shared by all. Function-level imports count as much as module-level ones.
"""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "django_mongopool"

# Floor of each subpackage: a module may import from its own subpackage and from lower floors.
FLOORS = {"guards": 0, "client": 1, "request": 2, "fleet": 2, "tasks": 3, "audit": 4}
# Top-level modules every floor may use: the settings registry and the exceptions.
SHARED = {"conf", "exceptions"}
# What conf itself needs: the parser of the client options it validates.
SHARED_NEEDS = {"django_mongopool.client.options", "django_mongopool.guards.redact"}

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


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append((".".join(parts), path))
    return found


def _resolve(name: str) -> str:
    """``django_mongopool.a.b`` is a module, or a name in module ``django_mongopool.a``."""
    path = ROOT / name.replace(".", "/")
    if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
        return name
    return name.rpartition(".")[0]


def _imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module imported, name taken from it) for every import of the package."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("django_mongopool"):
                    found.append((node.lineno, alias.name, None))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "django_mongopool"
        ):
            for alias in node.names:
                found.append((node.lineno, _resolve(f"{node.module}.{alias.name}"), alias.name))
    return found


def _floor(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in FLOORS else None


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


def test_imports_run_one_way():
    wrong = []
    for module, path in _modules():
        floor = _floor(module)
        top = module.split(".")[1] if module.count(".") >= 1 else None
        for line, target, _name in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            target_floor = _floor(target)
            target_top = target.split(".")[1] if target.count(".") >= 1 else None
            if top in SHARED:  # conf and exceptions: only what validating settings needs
                if target_top not in SHARED and target not in SHARED_NEEDS:
                    wrong.append(where)
                continue
            if floor is None:
                continue  # a top-level Django module: it may use every floor
            if target_floor is None:
                if target_top not in SHARED and target != "django_mongopool":
                    wrong.append(f"{where} (a top-level module)")
            elif target_floor != floor and FLOORS[target_floor] >= FLOORS[floor]:
                wrong.append(f"{where} (floor {target_floor} above or beside {floor})")
    assert wrong == []


def test_the_direction_check_sees_a_wrong_import(tmp_path):
    """The scan itself: a client module importing from audit is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from django_mongopool.audit.report import build_report\n")
    ((_line, target, name),) = _imports(bad)
    assert (target, name) == ("django_mongopool.audit.report", "build_report")
    assert FLOORS[_floor(target)] > FLOORS[_floor("django_mongopool.client.process")]


def test_subpackages_import_nothing_when_imported():
    """Each subpackage's ``__init__`` only says what it is for: importing
    ``django_mongopool.client.options`` (as conf does) must not import the whole floor."""
    for floor in FLOORS:
        tree = ast.parse((PACKAGE / floor / "__init__.py").read_text())
        assert [type(node).__name__ for node in tree.body] == ["Expr"], floor


def test_no_module_uses_another_modules_private_names():
    wrong = []
    for _module, path in _modules():
        tree = ast.parse(path.read_text())
        aliases = set()
        for line, target, name in _imports(path):
            leaf = name if name is not None else target.rpartition(".")[2]
            if leaf.startswith("_") and not leaf.startswith("__"):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target} {name or ''}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "django_mongopool"
            ):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if _resolve(full) == full:  # a module imported by name
                        aliases.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}")
    assert wrong == []


def test_only_the_app_installs_the_fork_hook():
    """Modules register their after-fork reset with guards.forks; apps.py installs it once."""
    calls = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for _module, path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
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
