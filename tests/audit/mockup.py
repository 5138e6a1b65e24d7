"""mockupdb servers shaped like mongod and mongos, and the replies they give (the audit's tests).

The ``point_at`` fixture (conftest.py) points the app at them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mockupdb import Matcher, MockupDB, OpMsg

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
