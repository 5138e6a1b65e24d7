"""``manage.py mongo_connections``: audit connections of this process, the fleet and the server.

Exit status: 0 fine, 1 ``--fail-over`` exceeded, 2 server unreachable (what was
reachable is still reported).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from django_mongopool import audit, exposition
from django_mongopool.heartbeat import SHOWN_OPTIONS

FORMATS = ("text", "json", "prometheus")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of processes, got {text!r}"
        ) from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be from 1 to 100000, got {value}")
    return value


def _bounded_float(low: float, high: float, what: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low < value <= high:
            raise argparse.ArgumentTypeError(
                f"must be more than {low:g} and at most {high:g}, got {text}"
            )
        return value

    return parse


class Command(BaseCommand):
    help = (
        "Audit MongoDB connections: the configured budget, the server's own counts and, "
        "with heartbeats on, every live process of the fleet."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--format", choices=FORMATS, default="text", help="output format (default: text)"
        )
        parser.add_argument(
            "--processes",
            type=_positive_int,
            help="processes the deployment runs (default: MONGOPOOL_PROCESSES); threads do not count",
        )
        parser.add_argument(
            "--fail-over",
            type=_bounded_float(0, 100_000, "a percentage"),
            metavar="PERCENT",
            help="exit with status 1 when the fleet ceiling or the server's utilisation exceeds PERCENT",
        )
        parser.add_argument(
            "--watch",
            type=_bounded_float(0, 86_400, "a number of seconds"),
            metavar="SECONDS",
            help="repeat every SECONDS until interrupted",
        )
        parser.add_argument(
            "--count",
            type=_positive_int,
            help="with --watch: stop after this many reports",
        )
        parser.add_argument(
            "--timeout",
            type=_bounded_float(0, 600, "a number of seconds"),
            help="seconds to wait for each server query (default: serverSelectionTimeoutMS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["count"] and not options["watch"]:
            raise CommandError("--count only makes sense with --watch.")
        runs = 0
        try:
            while True:
                try:
                    report = audit.build_report(
                        processes=options["processes"],
                        timeout=options["timeout"],
                        fail_over=options["fail_over"],
                    )
                except ImproperlyConfigured as exc:
                    raise CommandError(f"Configuration error: {exc}", returncode=2) from None
                self.emit(report, options["format"])
                runs += 1
                if not options["watch"] or (options["count"] and runs >= options["count"]):
                    break
                time.sleep(options["watch"])
        except KeyboardInterrupt:
            return
        if not report["server"]["reachable"]:
            raise CommandError("The MongoDB server could not be reached.", returncode=2)
        if report["fail_over"]["exceeded"]:
            raise CommandError(
                "Over the limit: " + "; ".join(report["fail_over"]["exceeded"]), returncode=1
            )

    def emit(self, report: dict[str, Any], fmt: str) -> None:
        if fmt == "json":
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True, default=str))
        elif fmt == "prometheus":
            if not exposition.prometheus_available():
                raise CommandError(exposition.MISSING_EXTRA, returncode=2)
            self.stdout.write(exposition.render(report), ending="")
        else:
            self.write_text(report)

    # Text rendering ----------------------------------------------------------------
    def section(self, title: str) -> None:
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(title))

    def row(self, label: str, value: Any) -> None:
        self.stdout.write(f"  {label:<22}{value}")

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        cells = [headers] + [[str(c) for c in row] for row in rows]
        widths = [max(len(str(row[i])) for row in cells) for i in range(len(headers))]
        for n, row in enumerate(cells):
            line = "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
            self.stdout.write(self.style.SQL_FIELD(line.rstrip()) if n == 0 else line.rstrip())

    def write_text(self, report: dict[str, Any]) -> None:
        config, budget, server = report["config"], report["budget"], report["server"]
        self.stdout.write(
            self.style.SUCCESS(f"MongoDB connection audit ({report['generated_at']})")
        )

        self.section("Configuration")
        self.row("URI", config["uri"])
        topology = report["topology"]
        if topology:
            members = ", ".join(f"{s['address']} ({s['type']})" for s in topology["servers"])
            self.row("Topology", f"{topology['type']}: {members}")
        else:
            self.row(
                "Topology", "unknown (server not reached); seeds: " + ", ".join(config["hosts"])
            )
        shown = (*SHOWN_OPTIONS, "appname")
        options = {k.lower(): (k, v) for k, v in config["options"].items()}
        self.row(
            "Pool",
            " ".join(
                f"{options[n.lower()][0]}={options[n.lower()][1]}"
                for n in shown
                if n.lower() in options
            ),
        )

        self.section("Budget")
        self.row(
            "Per process",
            f"{budget['hosts']} host(s) x ({budget['max_pool_size']} pooled + {budget['monitors_per_server']} "
            f"monitor) = {budget['per_process_ceiling']} connections",
        )
        self.row(
            f"Fleet ({budget['processes']} processes)",
            f"{budget['fleet_ceiling']} connections, {budget['fleet_ceiling_per_server']} per server",
        )
        if budget["server_capacity"] is not None:
            self.row(
                "Server capacity",
                f"{budget['server_capacity']} ({budget['server_capacity_source']}); fleet ceiling is "
                f"{budget['fleet_ceiling_percent']}% of it",
            )

        self.section("Server")
        if not server["reachable"]:
            self.row("Status", self.style.ERROR("unreachable"))
        elif server["connections"]:
            c = server["connections"]
            self.row("Connections", "  ".join(f"{k} {v}" for k, v in sorted(c.items())))
            self.row("Utilisation", f"{server['utilisation_percent']}%")
        else:
            self.row("Connections", "not reported (see notes)")
        if server["current_op"]:
            self.stdout.write("  By application (from $currentOp):")
            self.table(
                ["APP", "DRIVER", "CLIENT HOST", "CONNECTIONS", "ACTIVE"],
                [
                    [g["app"], g["driver"], g["host"], g["connections"], g["active"]]
                    for g in server["current_op"]
                ],
            )

        fleet = report["fleet"]
        if fleet is not None:
            self.section(f"Fleet ({fleet['alive']} live processes)")
            if fleet["processes"]:
                self.table(
                    [
                        "HOST",
                        "PID",
                        "APP",
                        "POOL",
                        "OPEN",
                        "IN USE",
                        "WAITING",
                        "TIMEOUTS",
                        "SESSIONS",
                        "AGE",
                    ],
                    [
                        [
                            p["host"],
                            p["pid"],
                            p["app"],
                            p["max_pool_size"],
                            p["open"],
                            p["in_use"],
                            p["waiting"],
                            p["checkout_timeouts"],
                            f"{p['sessions_ended']}/{p['sessions_started']}",
                            f"{p['age_seconds']}s",
                        ]
                        for p in fleet["processes"]
                    ],
                )
                busiest = fleet["busiest"]
                self.row(
                    "Totals",
                    f"open {fleet['open']}, in use {fleet['in_use']}, waiting {fleet['waiting']}",
                )
                self.row(
                    "Busiest",
                    f"{busiest['host']} pid {busiest['pid']} ({busiest['in_use']} in use)",
                )

        if report["notes"]:
            self.section("Notes")
            for note in report["notes"]:
                self.stdout.write(f"  - {note}")
        if report["warnings"]:
            self.section("Warnings")
            for warning in report["warnings"]:
                self.stdout.write(self.style.WARNING(f"  ! {warning}"))
