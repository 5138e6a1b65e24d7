"""``django_mongopool.client.pymongo_internals``: the one module that touches pymongo internals, and its check.

No server: the fallbacks against the real server are in
tests/client/test_pymongo_fallbacks_server.py.
"""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path

import pymongo
import pymongo.asynchronous.client_session
import pymongo.client_session
import pytest
from django.core import checks

from django_mongopool.client import pymongo_internals
from tests.helpers import ROOT

PACKAGE = ROOT / "django_mongopool"
SHIM = PACKAGE / "client" / "pymongo_internals.py"
# pymongo modules the package may import outside the shim: its documented API.
PUBLIC_MODULES = {
    "pymongo",
    "pymongo.asynchronous.client_session",
    "pymongo.asynchronous.collection",
    "pymongo.asynchronous.database",
    "pymongo.asynchronous.mongo_client",
    "pymongo.client_session",
    "pymongo.collection",
    "pymongo.command_cursor",
    "pymongo.cursor",
    "pymongo.database",
    "pymongo.driver_info",
    "pymongo.errors",
    "pymongo.monitoring",
    "pymongo.mongo_client",
    "pymongo.operations",
    "pymongo.read_concern",
    "pymongo.read_preferences",
    "pymongo.results",
    "pymongo.server_description",
    "pymongo.topology_description",
    "pymongo.uri_parser",
    "pymongo.write_concern",
}
# pymongo objects' attributes that are not underscore-named but not public API either: the
# pools' internals (the fleet budget and the pool figures used them).
POOL_INTERNALS = {"conns", "active_sockets", "size_cond", "close_conn", "operation_count"}
# Names of our own that pymongo happens to use privately too, on objects that are not pymongo's.
NOT_PYMONGOS = {
    ("testing/mock.py", "_target"): "the mongomock tier's own wrapper attribute",
    ("testing/mock.py", "_client"): "mongomock's object, not pymongo's",
}


@cache
def pymongo_private_names() -> frozenset[str]:
    """Every single-underscore name pymongo's own source defines (functions, classes,
    attributes it assigns, module globals, slots)."""
    names: set[str] = set()
    for path in Path(pymongo.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)  # __slots__ entries, kwargs.pop("_pool_class"), ...
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__"))


@cache
def hooked_methods() -> frozenset[str]:
    """The non-public methods of the pymongo classes the package builds on (clients, sessions,
    pools): a method of that name on any class of ours (a mixin) would be an override."""
    from pymongo.asynchronous.pool import Pool as AsyncPool
    from pymongo.synchronous.pool import Pool

    classes = (
        pymongo.MongoClient,
        pymongo.AsyncMongoClient,
        pymongo.client_session.ClientSession,
        pymongo.asynchronous.client_session.AsyncClientSession,
        Pool,
        AsyncPool,
    )
    return frozenset(
        name
        for cls in classes
        for name in dir(cls)
        if name.startswith("_") and not name.startswith("__")
    )


def _pymongo_bases(tree: ast.Module) -> set[str]:
    """Names that stand for pymongo classes in a module: imported from pymongo (or from the
    shim), and classes of the module that derive from one."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pymongo"):
            found.update(alias.asname or alias.name for alias in node.names)
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name not in found:
                bases = [ast.unparse(base).split("[")[0] for base in node.bases]
                if any(
                    b in found or b.startswith(("pymongo_internals.", "pymongo.")) for b in bases
                ):
                    found.add(node.name)
                    changed = True
    return found


def non_public_uses(path: Path, relative: str) -> list[str]:
    """Where the module at ``path`` touches a pymongo internal."""
    private = pymongo_private_names()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    derived = _pymongo_bases(tree)
    found: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{relative}:{getattr(node, 'lineno', '?')}: {what}")

    def private_on(receiver: ast.expr, name: str, node: ast.AST, owner: str) -> None:
        """``owner``: "ours" in a method of a class of ours, "pymongo" in one deriving from a
        pymongo class, "" elsewhere: ``self._x`` is ours only in the first."""
        if name not in private or (relative, name) in NOT_PYMONGOS:
            return
        own = isinstance(receiver, ast.Name) and receiver.id in {"self", "cls"}
        if not own or owner != "ours":
            report(node, f"{ast.unparse(receiver)}.{name}")

    def visit(node: ast.AST, owner: str) -> None:
        if isinstance(node, ast.ClassDef):
            owner = "pymongo" if node.name in derived else "ours"
            overridable = private if owner == "pymongo" else hooked_methods()
            for item in node.body:
                is_method = isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                if is_method and item.name in overridable:
                    report(item, f"def {item.name} (a pymongo internal's name)")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pymongo") and alias.name not in PUBLIC_MODULES:
                    report(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pymongo"):
            if node.module not in PUBLIC_MODULES:
                report(node, f"from {node.module} import ...")
            for alias in node.names:
                if alias.name.startswith("_"):
                    report(node, f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute):
            if node.attr in POOL_INTERNALS:
                report(node, f"{ast.unparse(node)} (a pymongo pool's internal)")
            private_on(node.value, node.attr, node, owner)
        elif isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            if func in {"getattr", "hasattr", "setattr", "delattr"} and len(node.args) >= 2:
                name = node.args[1]
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    private_on(node.args[0], name.value, node, owner)
            for keyword in node.keywords:
                if keyword.arg is not None and keyword.arg.startswith("_"):
                    report(node, f"{func}({keyword.arg}=...)")
        for child in ast.iter_child_nodes(node):
            visit(child, owner)

    visit(tree, "")
    return found


def test_no_module_but_the_shim_touches_a_pymongo_internal():
    found = [
        use
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != SHIM
        for use in non_public_uses(path, path.relative_to(PACKAGE).as_posix())
    ]
    assert found == []


def test_the_scan_finds_what_it_is_meant_to_find(tmp_path):
    """The uses the package made before the shim existed, one of each kind."""
    module = tmp_path / "old.py"
    module.write_text(
        "from pymongo._telemetry import _CmapTelemetry\n"
        "from pymongo.uri_parser_shared import split_options\n"
        "from pymongo.client_session import ClientSession\n"
        "class Counted(ClientSession):\n"
        "    def _end_session(self, lock):\n"
        "        return self._server_session\n"
        "class Mixin:\n"
        "    def _start_session(self, implicit, **kwargs):\n"
        "        return super()._start_session(implicit, **kwargs)\n"
        "def pools(client, pool):\n"
        "    getattr(client, '_topology', None)\n"
        "    client.__init__('uri', _pool_class=object)\n"
        "    with pool.size_cond:\n"
        "        return len(pool.conns) + pool.active_sockets\n",
        encoding="utf-8",
    )
    found = non_public_uses(module, "old.py")
    for expected in (
        "old.py:1: from pymongo._telemetry import ...",
        "old.py:1: from pymongo._telemetry import _CmapTelemetry",
        "old.py:2: from pymongo.uri_parser_shared import ...",
        "old.py:5: def _end_session (a pymongo internal's name)",
        "old.py:6: self._server_session",
        "old.py:8: def _start_session (a pymongo internal's name)",
        "old.py:9: super()._start_session",
        "old.py:11: client._topology",
        "old.py:12: client.__init__(_pool_class=...)",
        "old.py:13: pool.size_cond (a pymongo pool's internal)",
        "old.py:14: pool.conns (a pymongo pool's internal)",
        "old.py:14: pool.active_sockets (a pymongo pool's internal)",
    ):
        assert expected in found
    assert len(found) == 12


def test_every_internal_is_as_expected_on_the_installed_pymongo():
    status = pymongo_internals.verify()
    assert status.pymongo_version == pymongo.version
    assert (
        {f.key for f in status.features}
        == set(pymongo_internals.PROMISES)
        == set(pymongo_internals.FALLBACKS)
    )
    assert set(pymongo_internals.CHECK_IDS) == set(pymongo_internals.PROMISES)
    assert status.failed == ()
    assert pymongo_internals.status() is status  # cached
    assert pymongo_internals.sessions_hooked


def test_verify_does_no_network_io(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("verify() opened a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    try:
        assert pymongo_internals.verify(refresh=True).failed == ()
    finally:
        monkeypatch.undo()
        pymongo_internals.verify(refresh=True)


@pytest.fixture
def failing(monkeypatch):
    """``failing(key, ...)``: the cached status says those features' internals moved."""

    def fail(*keys: str) -> pymongo_internals.Status:
        status = pymongo_internals.verify()
        problem = pymongo_internals.Problem(
            "pymongo.somewhere._moved", "a function (self)", "missing"
        )
        features = tuple(
            replace(f, problems=(problem,)) if f.key in keys else f for f in status.features
        )
        moved = replace(status, features=features)
        monkeypatch.setattr(pymongo_internals, "_status", moved)
        return moved

    return fail


def _run_checks() -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(tags=["django_mongopool"])]


def test_the_check_is_quiet_when_nothing_moved():
    assert [m.id for m in _run_checks() if m.id[-4:-2] == "01"] == []


def test_each_moved_feature_has_its_check_with_the_fallback(failing):
    keys = [k for k in pymongo_internals.PROMISES if k != "fleet_budget"]
    failing(*keys)
    messages = {m.id: m for m in _run_checks()}
    for key in keys:
        message = messages.pop(pymongo_internals.CHECK_IDS[key])
        assert message.level == checks.WARNING
        assert f"pymongo {pymongo.version}" in message.msg
        assert "pymongo.somewhere._moved: expected a function (self), found missing" in message.msg
        assert pymongo_internals.FALLBACKS[key] in message.msg and message.hint
    assert messages == {}


def test_a_refused_fleet_budget_is_an_error_only_when_configured(failing, settings):
    failing("fleet_budget")
    assert _run_checks() == []  # nothing relies on it
    settings.MONGOPOOL_FLEET_BUDGET = 30
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 5
    (message,) = _run_checks()
    assert (message.id, message.level) == ("django_mongopool.E010", checks.ERROR)
    assert "refused" in message.msg and "MONGOPOOL_FLEET_MIN_SHARE" in message.msg


def test_member_connections_fall_back_to_the_uri_auth_source(failing):
    from django_mongopool.client.process import get_client

    parsed = {"username": "app", "database": "shop", "options": {"authsource": "users"}}
    assert pymongo_internals.auth_source(get_client(), parsed) is None  # the client has no user
    failing("auth_source")
    assert pymongo_internals.auth_source(get_client(), parsed) == "users"
    assert pymongo_internals.auth_source(get_client(), {**parsed, "options": {}}) == "shop"
    assert pymongo_internals.auth_source(get_client(), {**parsed, "username": None}) is None


def test_fork_check_falls_back_to_known_servers(failing):
    class Client:
        _opened = True
        nodes: frozenset[tuple[str, int]] = frozenset()

    assert pymongo_internals.client_opened(Client()) is True
    failing("fork")
    assert pymongo_internals.client_opened(Client()) is False
    Client.nodes = frozenset({("db", 27017)})
    assert pymongo_internals.client_opened(Client()) is True


def test_the_package_imports_when_pymongos_internal_modules_are_gone():
    """No import of the package fails because pymongo moved a module or a name."""
    script = (
        "import sys, types, json\n"
        "import pymongo\n"
        "for name in ('pymongo._telemetry', 'pymongo.synchronous.pool',\n"
        "             'pymongo.asynchronous.pool', 'pymongo.client_session_shared',\n"
        "             'pymongo.uri_parser_shared', 'pymongo.pool_options'):\n"
        "    sys.modules[name] = None\n"
        "import django; django.setup()\n"
        "import django_mongopool.request.middleware, django_mongopool.admin, django_mongopool.audit.views\n"
        "import django_mongopool.management.commands.mongo_connections\n"
        "from django_mongopool import get_client\n"
        "from django_mongopool.client import pymongo_internals\n"
        "get_client()\n"
        "print(json.dumps(sorted(f.key for f in pymongo_internals.status().failed)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'example_project'}",
            "DJANGO_SETTINGS_MODULE": "tests.settings",
        },
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    failed = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"pool_hooks", "sessions", "uri", "fleet_budget"} <= set(failed)
