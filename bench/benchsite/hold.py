"""Simulates a slow query for the time-to-503 measurement.

FerretDB has no server-side sleep ($where, $function), so a command listener holds
the connection of commands tagged comment="slow" for BENCH_HOLD_MS before they run.
"""

import time

from pymongo import monitoring


class HoldListener(monitoring.CommandListener):
    def __init__(self, hold_ms: int) -> None:
        self.hold = hold_ms / 1000

    def started(self, event):
        if event.command.get("comment") == "slow":
            time.sleep(self.hold)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass
