"""``manage.py mongo_connections``: audit connections of this process, the fleet and the server.

Exit status: 0 fine; 1 ``--fail-over`` exceeded; 2 server unreachable or refusing
authentication (what was reachable is still reported), a bad argument, a configuration
error, or ``--format prometheus`` without the extra; 3 ``--fail-over`` could not
be evaluated (server capacity or current connections unknown on some member),
unless ``--accept-unknown-capacity`` accepts the checks that could be made, and
always when no check at all could be made (``fail_over.result`` is
``"nothing_checked"`` and ``fail_over.checked`` 0 in the JSON).

Every string that did not come from the app itself (application and driver
names, client hosts, heartbeat fields, server messages) goes through
:func:`django_mongopool.guards.terminal.safe` in text output.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from django_mongopool.audit import prometheus
from django_mongopool.audit.report import DEFAULT_TOP_HOSTS, build_report
from django_mongopool.fleet.heartbeat import SHOWN_OPTIONS
from django_mongopool.guards.terminal import safe

FORMATS = ("text", "json", "prometheus")


def _whole_number(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number of {what}, got {text!r}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


def _bounded_float(low: float, high: float, what: str) -> Callable[[str], float]:
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
            type=_whole_number(1, 100_000, "processes"),
            help="processes the deployment runs (default: MONGOPOOL_PROCESSES); threads do not count",
        )
        parser.add_argument(
            "--fail-over",
            type=_bounded_float(0, 100_000, "a percentage"),
            metavar="PERCENT",
            help="exit with status 1 when the fleet ceiling or a member's utilisation exceeds "
            "PERCENT; status 3 when a figure it needs is unknown",
        )
        parser.add_argument(
            "--accept-unknown-capacity",
            action="store_true",
            help="with --fail-over: check only the figures that are known (e.g. the budget "
            "against MONGOPOOL_SERVER_MAX_CONNECTIONS) instead of exiting with status 3",
        )
        parser.add_argument(
            "--hosts",
            type=_whole_number(0, 1000, "hosts"),
            default=DEFAULT_TOP_HOSTS,
            metavar="N",
            help=f"client hosts shown per application (default: {DEFAULT_TOP_HOSTS})",
        )
        parser.add_argument(
            "--watch",
            type=_bounded_float(0, 86_400, "a number of seconds"),
            metavar="SECONDS",
            help="repeat every SECONDS until interrupted",
        )
        parser.add_argument(
            "--count",
            type=_whole_number(1, 1_000_000, "repetitions"),
            help="with --watch: stop after this many reports",
        )
        parser.add_argument(
            "--timeout",
            type=_bounded_float(0, 600, "a number of seconds"),
            help="seconds to wait for each server query (default: serverSelectionTimeoutMS)",
        )
        parser.add_argument(
            "--deadline",
            type=_bounded_float(0, 3600, "a number of seconds"),
            metavar="SECONDS",
            help="seconds the whole audit may take; members not answered by then are reported "
            "as such (default: no limit beyond --timeout per query)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["count"] and not options["watch"]:
            raise CommandError("--count only makes sense with --watch.", returncode=2)
        if options["accept_unknown_capacity"] and options["fail_over"] is None:
            raise CommandError(
                "--accept-unknown-capacity only makes sense with --fail-over.", returncode=2
            )
        runs = 0
        try:
            while True:
                try:
                    report = build_report(
                        processes=options["processes"],
                        timeout=options["timeout"],
                        fail_over=options["fail_over"],
                        accept_unknown_capacity=options["accept_unknown_capacity"],
                        top_hosts=options["hosts"],
                        role="command",
                        deadline=options["deadline"],
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
        server, gate = report["server"], report["fail_over"]
        if server["authentication_failed"]:
            raise CommandError(
                "The MongoDB server refused authentication (AuthenticationFailed, code 18).",
                returncode=2,
            )
        if not server["reachable"]:
            raise CommandError("The MongoDB server could not be reached.", returncode=2)
        if gate["exceeded"]:
            raise CommandError(safe("Over the limit: " + "; ".join(gate["exceeded"])), returncode=1)
        if gate["unknown"] and not gate["accept_unknown_capacity"]:
            raise CommandError(
                "--fail-over could not be evaluated: "
                + "; ".join(
                    safe(f"{u['figure']} of {u['member']} unknown") for u in gate["unknown"]
                )
                + " (see the fail-over section; --accept-unknown-capacity checks only the known "
                "figures)",
                returncode=3,
            )
        if gate["result"] == "nothing_checked":
            raise CommandError(
                "--fail-over checked nothing: every figure it needs is unknown ("
                + "; ".join(safe(f"{u['figure']} of {u['member']}") for u in gate["unknown"])
                + "). --accept-unknown-capacity skips unknown figures only when some are known; "
                "set MONGOPOOL_SERVER_MAX_CONNECTIONS or grant clusterMonitor.",
                returncode=3,
            )

    def emit(self, report: dict[str, Any], fmt: str) -> None:
        if fmt == "json":
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True, default=str))
        elif fmt == "prometheus":
            if not prometheus.prometheus_available():
                raise CommandError(prometheus.MISSING_EXTRA, returncode=2)
            self.stdout.write(prometheus.render(report), ending="")
        else:
            self.write_text(report)

    # Text rendering: every value from outside the app goes through safe() -------------
    def section(self, title: str) -> None:
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(safe(title)))

    def row(self, label: str, value: Any) -> None:
        self.stdout.write(f"  {safe(label):<22}{safe(value)}")

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        cells = [headers] + [[safe(c) for c in row] for row in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for n, row in enumerate(cells):
            line = "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
            self.stdout.write(self.style.SQL_FIELD(line.rstrip()) if n == 0 else line.rstrip())

    def write_text(self, report: dict[str, Any]) -> None:
        self.stdout.write(
            self.style.SUCCESS(f"MongoDB connection audit ({safe(report['generated_at'])})")
        )
        self.write_applications(report)
        self.write_configuration(report)
        self.write_budget(report)
        self.write_server(report)
        self.write_fleet(report)
        self.write_fail_over(report)
        if report["notes"]:
            self.section("Notes")
            for note in report["notes"]:
                self.stdout.write(f"  - {safe(note)}")
        if report["warnings"]:
            self.section("Warnings")
            for warning in report["warnings"]:
                self.stdout.write(self.style.WARNING(f"  ! {safe(warning)}"))

    def write_applications(self, report: dict[str, Any]) -> None:
        apps = report["server"]["applications"]
        if not apps:
            return
        of = f" of {apps['server_current']} current" if apps["server_current"] is not None else ""
        members = (
            f", {apps['members_asked']} of {apps['members']} members" if apps["members"] > 1 else ""
        )
        self.section(
            f"Applications ({apps['connections']} connections{of}, from $currentOp{members})"
        )
        rows = list(apps["apps"])
        if apps["no_appname"]:
            rows.append({**apps["no_appname"], "app": "(no application name)"})
        if not rows:
            self.stdout.write("  No client connections reported.")
            return
        self.table(
            ["APP", "CONNECTIONS", "ACTIVE", "IDLE", "SHARE", "HOSTS", "DRIVERS"],
            [
                [
                    r["app"],
                    r["connections"],
                    r["active"],
                    r["idle"],
                    "-" if r["share_percent"] is None else f"{r['share_percent']}%",
                    r["hosts"],
                    ", ".join(r["drivers"]) or "-",
                ]
                for r in rows
            ],
        )
        if apps["top_hosts"] and any(r["top_hosts"] for r in rows):
            self.stdout.write(f"  Top {apps['top_hosts']} client hosts per application:")
            for r in rows:
                shown = ", ".join(
                    f"{h['host']} {h['connections']} ({h['active']} active)" for h in r["top_hosts"]
                )
                more = r["hosts"] - len(r["top_hosts"])
                self.stdout.write(
                    f"    {safe(r['app'])}: {safe(shown)}" + (f", +{more} more" if more > 0 else "")
                )

    def write_configuration(self, report: dict[str, Any]) -> None:
        config = report["config"]
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
        if report["process"].get("role") == "command":
            self.row("This process", "the command itself (its pool is not in the fleet figures)")

    def write_budget(self, report: dict[str, Any]) -> None:
        budget = report["budget"]
        self.section("Budget")
        self.row(
            "Per process",
            f"{budget['hosts']} host(s) x ({budget['max_pool_size']} pooled + "
            f"{budget['monitors_per_server']} monitor) = {budget['per_process_ceiling']} connections",
        )
        self.row(
            f"Fleet ({budget['processes']} processes)",
            f"{budget['fleet_ceiling']} connections, {budget['fleet_ceiling_per_server']} per server",
        )
        members = budget["members"]
        if len(members) > 1:
            self.table(
                ["MEMBER", "FLEET MAY OPEN", "CAPACITY", "SOURCE", "CEILING %"],
                [
                    [
                        m["address"],
                        m["fleet_ceiling"],
                        "unknown" if m["capacity"] is None else m["capacity"],
                        m["capacity_source"] or "-",
                        "-"
                        if m["fleet_ceiling_percent"] is None
                        else f"{m['fleet_ceiling_percent']}%",
                    ]
                    for m in members
                ],
            )
        elif budget["server_capacity"] is not None:
            self.row(
                "Server capacity",
                f"{budget['server_capacity']} ({budget['server_capacity_source']}); fleet ceiling is "
                f"{budget['fleet_ceiling_percent']}% of it",
            )
        fleet_budget = report.get("fleet_budget")
        if fleet_budget is not None:
            self.row(
                "Fleet budget",
                f"{fleet_budget['budget']} connections per server (MONGOPOOL_FLEET_BUDGET); "
                f"{fleet_budget['processes_reporting']} live process(es) report a share, holding "
                f"up to {fleet_budget['fleet_may_hold_per_server']} per server",
            )

    def write_server(self, report: dict[str, Any]) -> None:
        server = report["server"]
        self.section("Server")
        if not server["reachable"]:
            status = "authentication failed" if server["authentication_failed"] else "unreachable"
            self.stdout.write(f"  {'Status':<22}" + self.style.ERROR(status))
            return
        if server["connections"]:
            c = server["connections"]
            self.row("Connections", "  ".join(f"{k} {v}" for k, v in sorted(c.items())))
            self.row("Utilisation", f"{server['utilisation_percent']}%")
        else:
            self.row("Connections", "not reported (see notes)")
        members = server["members"]
        if len(members) > 1:
            self.table(
                ["MEMBER", "TYPE", "STATUS", "CURRENT", "AVAILABLE", "UTILISATION", "REJECTED"],
                [
                    [
                        m["address"],
                        m["type"],
                        "ok" if m["connections"] else _problem(m),
                        _figure(m, "current"),
                        _figure(m, "available"),
                        "-" if m["utilisation_percent"] is None else f"{m['utilisation_percent']}%",
                        _figure(m, "rejected"),
                    ]
                    for m in members
                ],
            )
            for m in members:
                apps = m["applications"]
                if apps and apps["apps"]:
                    top = ", ".join(f"{a['app']} {a['connections']}" for a in apps["apps"][:5])
                    self.stdout.write(f"  On {safe(m['address'])}: {safe(top)}")

    def write_fleet(self, report: dict[str, Any]) -> None:
        fleet = report["fleet"]
        if fleet is None:
            return
        self.section(f"Fleet ({fleet['alive']} live processes)")
        if fleet.get("forged"):
            ids = ", ".join(fleet["forged_ids"])
            self.stdout.write(
                self.style.WARNING(
                    f"  {fleet['forged']} forged heartbeat document(s) ignored (their MAC does "
                    f"not verify with this app's key): {safe(ids)}"
                )
            )
        if not fleet["processes"]:
            return
        self.table(
            [
                "HOST",
                "PID",
                "ROLE",
                "APP",
                "POOL",
                "SHARE",
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
                    p["role"],
                    p["app"],
                    p["max_pool_size"],
                    "-" if p.get("share") is None else p["share"],
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
            "Totals", f"open {fleet['open']}, in use {fleet['in_use']}, waiting {fleet['waiting']}"
        )
        self.row("Busiest", f"{busiest['host']} pid {busiest['pid']} ({busiest['in_use']} in use)")

    def write_fail_over(self, report: dict[str, Any]) -> None:
        gate = report["fail_over"]
        if gate["percent"] is None or not report["server"]["reachable"]:
            return
        self.section(f"Fail-over gate ({gate['percent']:g}%)")
        for line in gate["exceeded"]:
            self.stdout.write(self.style.ERROR(f"  over: {safe(line)}"))
        for unknown in gate["unknown"]:
            self.stdout.write(
                self.style.WARNING(
                    safe(
                        f"  not checked: {unknown['needed_for']} on {unknown['member']}: "
                        f"{unknown['figure']} unknown; {unknown['how']}"
                    )
                )
            )
        if gate["unknown"] and gate["accept_unknown_capacity"]:
            checked = "only the known figures" if gate["evaluated"] else "nothing"
            self.stdout.write(f"  --accept-unknown-capacity: {checked} checked.")
        elif not gate["exceeded"] and not gate["unknown"]:
            self.stdout.write(self.style.SUCCESS("  within the limit"))


def _figure(member: dict[str, Any], key: str) -> Any:
    value = (member["connections"] or {}).get(key)
    return "-" if value is None else value


def _problem(member: dict[str, Any]) -> str:
    return {
        "no_answer": "NOT ANSWERING",
        "unauthorized": "not authorized",
        "not_reported": "not reported",
    }.get(member["status_problem"] or "", "failed")
