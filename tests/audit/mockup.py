"""mockupdb servers shaped like mongod and mongos, the replies they give, and the command run
against them (the audit's tests).

The ``point_at`` fixture (conftest.py) points the app at them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

from django.core.management import call_command
from mockupdb import Matcher, MockupDB, OpMsg

from django_mongopool.fleet import heartbeat

WIRE = {"maxWireVersion": 21, "minWireVersion": 0}


def cursor_reply(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"ok": 1, "cursor": {"id": 0, "ns": "admin.$cmd.aggregate", "firstBatch": docs}}


def group_doc(
    app: str | None, host: str, connections: int, active: int = 0, driver: str = "PyMongo"
):
    return {
        "_id": {"app": app, "host": host},
        "connections": connections,
        "active": active,
        "drivers": [driver],
    }


def server_status(current: int, available: int, **more: int) -> dict[str, Any]:
    return {
        "ok": 1,
        "version": "7.0.14",
        "connections": {"current": current, "available": available, "totalCreated": 9000, **more},
    }


@dataclass
class Server:
    """One mockupdb server and the names of the commands it received."""

    mock: MockupDB
    received: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"localhost:{self.mock.port}"

    def serve(self, hello: dict[str, Any], status: Any, groups: Any) -> None:
        mock = self.mock
        mock.append_responder(Matcher(), {"ok": 1})  # endSessions and the like
        mock.autoresponds("ismaster", {**WIRE, **hello})
        mock.autoresponds("ping", {"ok": 1})
        mock.autoresponds("serverStatus", status)
        mock.autoresponds(OpMsg("aggregate"), groups)
        mock.autoresponds(
            OpMsg("find", "mongopool_heartbeats"),
            {"ok": 1, "cursor": {"id": 0, "ns": "shop.mongopool_heartbeats", "firstBatch": []}},
        )
        mock.subscribe(self._record)

    def _record(self, request: Any) -> None:
        name = next(iter(request.doc), "")
        if name.lower() not in {"ismaster", "hello"}:
            self.received.append(name)

    def count(self, name: str) -> int:
        return self.received.count(name)


def start_servers(count: int) -> list[Server]:
    servers = [Server(MockupDB(verbose=False)) for _ in range(count)]
    for server in servers:
        server.mock.run()
    return servers


def heartbeat_doc(**fields: Any) -> dict[str, Any]:
    """A heartbeat document as a web process writes it (unsigned), with ``fields`` changed."""
    now = dt.datetime.now(dt.UTC)
    return {
        "_id": "web-1:100",
        "host": "web-1",
        "pid": 100,
        "app": "shop-web",
        "started_at": now,
        "updated_at": now,
        "interval": 10,
        "max_pool_size": 10,
        "open": 1,
        "in_use": 0,
        "waiting": 0,
        "checkout_timeouts": 0,
        "recent_checkout_timeouts": 0,
        "sessions_started": 0,
        "sessions_ended": 0,
        "servers": [{"pool": "sync", "address": "db:27017", "open": 1, "in_use": 0, "waiting": 0}],
        **fields,
    }


def serve_one(point_at: Any, status: Any, groups: Any, beats: list[dict[str, Any]]) -> Server:
    """One server answering ``status`` to serverStatus, ``groups`` to the $currentOp aggregate
    and ``beats`` to the read of the heartbeats (signed with the app's key: what is tested is how
    their values are read), with the app pointed at it."""
    (server,) = start_servers(1)
    server.serve({"ismaster": True}, status, groups)
    signed = [heartbeat.sign(dict(doc)) for doc in beats]
    server.mock.autoresponds(
        OpMsg("find", "mongopool_heartbeats"),
        {"ok": 1, "cursor": {"id": 0, "ns": "shop.mongopool_heartbeats", "firstBatch": signed}},
    )
    point_at(f"mongodb://{server.address}/shop?directConnection=true&appname=auditor", [server])
    return server


def command_output(*args: str) -> str:
    """What ``manage.py mongo_connections --timeout 1 *args`` writes (it must exit 0)."""
    out = StringIO()
    call_command("mongo_connections", "--timeout", "1", *args, stdout=out)
    return out.getvalue()
