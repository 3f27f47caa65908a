"""`strangler demo`: the catalog context moved shared -> dual_write -> split, live.

Runs on the embedded default (SQLite files, kombu's SQLAlchemy transport, shadow
results in the control-plane database: no servers needed) with real processes:
monolith, catalog and inventory services, their relays, the proxy, Celery workers
and beat. A traffic generator reads, orders and edits prices through the proxy the
whole time. The story: shadow comparison in shared and its report; ``strangler plan
advance`` to dual_write (service database, backfill); writes flowing both ways; a
planted divergence the reconciler finds and repairs; gates; the cut-over to split;
the final parity report. Every figure printed is measured in this run; the exit
code is 0 only when the end state has no divergence and no acknowledged write is
missing.

    strangler demo                       # proxy on :8000, files under var/demo/
    STRANGLER_DEMO_PORT=9000 STRANGLER_VAR_DIR=/tmp/x strangler demo

Ports of the other processes: ``STRANGLER_MONOLITH_PORT``, ``STRANGLER_CATALOG_PORT``,
``STRANGLER_INVENTORY_PORT``, ``STRANGLER_PAYMENTS_PORT`` (defaults 8001, 8101, 8102, 8103).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import typer
from sqlalchemy import Engine, text

from migration_plans.control.processes import ProcessStartError, wait_until
from migration_plans.control.stack import Stack, StackConfig, ports_from_env, strangler_argv
from migration_plans.control.traffic import Traffic
from migration_plans.control.transitions import Environment, check_gates
from migration_plans.core import database
from migration_plans.core.phase import Phase
from migration_plans.core.settings import copy_templates
from reconciler.history import clean_streak, load_report, recent_runs
from reconciler.render import to_html, to_json
from strangler_proxy.shadow.backend import match_rate

CONTEXT = "catalog"
SEED = {"products": 2000, "customers": 50, "orders": 200, "seed": 42}
MARKER = ".strangler-demo"
# Rows the monolith changes itself (an admin's bulk price change): ids the traffic never edits.
BULK_IDS = [i for i in range(1, 301) if i % 7]
# Rows the divergence is planted in.
PLANTED_CHANGED, PLANTED_DELETED = 1502, 1503
# The relays poll every 0.1 s (default 0.5 s) so the lag gate measures the relay, not the poll.
DEMO_ENV = {"STRANGLER_RELAY_POLL_INTERVAL": "0.1"}


class StoryFailed(RuntimeError):
    """A chapter of the demo did not end the way the story needs."""


def say(message: str = "") -> None:
    """Write a line of the demo's narration."""
    typer.echo(message)
    sys.stdout.flush()


def demo_config(var_dir: Path) -> StackConfig:
    """The embedded stack under ``var_dir`` with its own copy of the plans."""
    env = os.environ
    ports: dict[str, Any] = {"proxy_port": 8000, **ports_from_env(env)}
    if env.get("STRANGLER_DEMO_PORT"):
        ports["proxy_port"] = int(env["STRANGLER_DEMO_PORT"])
    return StackConfig.embedded(var_dir, plans_dir=var_dir / "plans", replicas=2, **ports)


def fresh_var_dir(var_dir: Path) -> None:
    """Empty ``var_dir`` for a new run; refuse a non-empty folder the demo did not make."""
    if var_dir.exists() and any(var_dir.iterdir()):
        if not (var_dir / MARKER).exists():
            raise StoryFailed(f"{var_dir} is not empty and not a demo folder; choose another")
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / MARKER).write_text("made by `strangler demo`; emptied at each run\n")
    copy_templates(var_dir / "plans")


class Story:
    """The chapters of the demo, run against a started :class:`Stack`."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.config = stack.config
        self.started = time.monotonic()
        self.reports = self.config.var_dir / "reports"
        self.traffic: Traffic | None = None
        self.transition_failures: dict[str, int] = {}  # requests failed during each cut-over
        self._engines: dict[str, Engine] = {}

    # -- narration and commands --------------------------------------------------------

    def chapter(self, title: str) -> None:
        say(f"\n== [{time.monotonic() - self.started:5.1f}s] {title}")

    def cli(self, *args: str, expect: tuple[int, ...] = (0,)) -> int:
        """Run ``strangler ARGS`` against the stack, its output shown as it comes."""
        say(f"$ strangler {' '.join(args)}")
        env = {**os.environ, **self.stack.env()}
        if not sys.stdout.isatty():
            env.setdefault("COLUMNS", "120")
        code = subprocess.run(
            strangler_argv(*args), env=env, stderr=subprocess.STDOUT, timeout=300, check=False
        ).returncode
        if code not in expect:
            raise StoryFailed(f"`strangler {' '.join(args)}` exited with {code}")
        return code

    def engine(self, url: str) -> Engine:
        if url not in self._engines:
            self._engines[url] = database.engine(url)
        return self._engines[url]

    def rows(self, url: str, sql: str, **params: Any) -> list[Any]:
        with self.engine(url).connect().execution_options(sqlite_begin="DEFERRED") as connection:
            return list(connection.execute(text(sql), params))

    def monolith_prices(self, ids: list[int]) -> dict[int, int]:
        found = self.rows(
            self.config.monolith_db,
            f"SELECT id, price FROM catalog_product WHERE id IN ({_ids(ids)})",
        )
        return {int(i): int(Decimal(str(price)) * 100) for i, price in found}

    def service_prices(self, ids: list[int]) -> dict[int, int]:
        found = self.rows(
            self.config.service_dbs[CONTEXT],
            f"SELECT id, price_cents FROM products WHERE id IN ({_ids(ids)})",
        )
        return {int(i): int(cents) for i, cents in found}

    def wait(self, what: str, condition: Callable[[], bool], timeout: float = 60) -> float:
        """Seconds until ``condition`` held; :class:`StoryFailed` after ``timeout``."""
        started = time.monotonic()
        try:
            wait_until(condition, timeout=timeout, interval=0.1, what=what)
        except TimeoutError as exc:
            raise StoryFailed(str(exc)) from exc
        return time.monotonic() - started

    # -- chapters ----------------------------------------------------------------------

    def run(self) -> int:
        self.start_stack()
        assert self.traffic is not None
        with self.traffic:
            self.shared_phase()
            self.enter_dual_write()
            self.writes_cross()
            self.planted_divergence()
            self.enter_split()
            self.traffic.pause_writes()
        return self.verdict()

    def start_stack(self) -> None:
        self.chapter("1. The stack: monolith, services, relays, proxy, Celery, on SQLite")
        self.stack.prepare(services=[])
        seed = [f"--{name}={value}" for name, value in SEED.items()]
        self.cli("monolith", "seed", *seed)
        self.stack.start()
        for name, process in self.stack.processes.items():
            say(f"  {name:<17} pid {process.pid:<7} log {process.log_path.name}")
        say(f"  proxies {', '.join(self.config.proxy_urls)} -> monolith "
            f"{self.config.monolith_url}, catalog {', '.join(self.config.service_urls(CONTEXT))}")  # fmt: skip
        token = httpx.post(
            f"{self.config.proxy_url}/api/v1/auth/token/",
            json={"username": "customer000001", "password": "password"},
            timeout=30,
        ).json()["token"]
        self.traffic = Traffic(self.config.proxy_urls, token=token, products=SEED["products"])
        say("  traffic generator started over both proxies: product, category and stock "
            "reads, orders (each reserves stock in the monolith)")  # fmt: skip

    def shadow_gate(self) -> tuple[float, int]:
        """``(match rate, compared requests)`` the dual_write gate asks for."""
        for gate in self.stack.plans()[CONTEXT].gates_to_enter(Phase.DUAL_WRITE):
            if gate.metric == "shadow_match_rate":
                return float(gate.value), gate.min_samples
        return 0.0, 0

    def shadow_counts(self) -> tuple[float | None, int]:
        return match_rate(context=CONTEXT)

    def shared_phase(self) -> None:
        self.chapter(
            "2. catalog in shared: reads answered by the monolith, mirrored to the service"
        )
        required, samples = self.shadow_gate()
        say(f"  the dual_write gate wants a match rate >= {required} over >= {samples} "
            "compared requests")  # fmt: skip
        last_print = 0.0

        def enough() -> bool:
            nonlocal last_print
            rate, compared = self.shadow_counts()
            if time.monotonic() - last_print > 5:
                last_print = time.monotonic()
                shown = "-" if rate is None else f"{rate:.2%}"
                say(f"  compared {compared:>5} requests, match rate {shown}")
            return compared >= samples

        seconds = self.wait("shadow comparisons", enough, timeout=120)
        assert self.traffic is not None
        say(f"  {samples} comparisons in {seconds:.1f}s "
            f"({self.traffic.rate():.0f} requests/s through the proxy)")  # fmt: skip
        self.cli("shadow", "report")

    def failing_gates(self) -> list[str]:
        """The gates of the next transition that do not hold now, as ``plan status`` says."""
        env = Environment.from_env()
        _, results = check_gates(env, env.plan(CONTEXT))
        return [result.describe() for result in results if not result.passed]

    def advance(self, patience: float) -> None:
        """``strangler plan advance``; gates that can still pass get ``patience`` seconds.

        A gate that does not pass by then is reported and the step forced with the
        measured values as the recorded reason: the output says so.
        """
        failing = self.failing_gates()
        if failing and patience > 0:
            say("  waiting for: " + "; ".join(failing))
            with suppress(StoryFailed):
                self.wait("the gates", lambda: not self.failing_gates(), timeout=patience)
        plan = self.stack.plans()[CONTEXT]
        with self.cut_over(f"{plan.phase} -> {plan.next_phase}"):
            if self.cli("plan", "advance", CONTEXT, expect=(0, 1)) == 0:
                return
            failing = self.failing_gates()
            say("  GATE NOT PASSED, forcing the step (recorded with the reason): "
                + "; ".join(failing))  # fmt: skip
            reason = "demo: " + "; ".join(failing)
            self.cli("plan", "advance", CONTEXT, "--force", "--reason", reason)

    @contextmanager
    def cut_over(self, name: str) -> Iterator[None]:
        """Count the requests that fail while a transition runs; check nothing restarted."""
        assert self.traffic is not None
        pids = {n: p.pid for n, p in self.stack.processes.items()}
        failed_before = self.failed()
        started = time.monotonic()
        yield
        time.sleep(1.0)  # requests sent just before the flip are answered (or fail) by now
        failed = self.failed() - failed_before
        self.transition_failures[name] = failed
        restarted = [n for n, p in self.stack.processes.items() if pids.get(n) != p.pid]
        say(f"  cut over live in {time.monotonic() - started - 1.0:.1f}s: "
            f"{failed} requests failed meanwhile, "
            f"{'no process restarted' if not restarted else 'RESTARTED: ' + ', '.join(restarted)}")  # fmt: skip
        if restarted:
            raise StoryFailed(f"the transition restarted {', '.join(restarted)}")

    def enter_dual_write(self) -> None:
        self.chapter("3. strangler plan advance catalog: shared -> dual_write")
        self.advance(patience=0)
        assert self.traffic is not None
        self.traffic.allow_writes()
        say("  price edits through the proxy start now: they go to the catalog service")

    def failed(self) -> int:
        assert self.traffic is not None
        return self.traffic.stats.total("5xx") + self.traffic.stats.total("no answer")

    def writes_cross(self) -> None:
        self.chapter("4. dual_write: writes cross between the databases")
        before = self.monolith_prices(BULK_IDS)
        code = (
            "from decimal import Decimal; from django.db.models import F; "
            "from legacy_monolith.catalog.models import Product; "
            f"n = Product.objects.filter(pk__in={BULK_IDS!r})"
            ".update(price=F('price') + Decimal('1.00')); print(n)"
        )
        say("  inside the monolith, an admin's bulk change: "
            "Product.objects.filter(pk__in=[...]).update(price=F('price') + 1)")  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "legacy_monolith.manage", "shell", "-c", code],
            env={**os.environ, **self.stack.env()},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise StoryFailed(f"the bulk update failed:\n{done.stderr[-2000:]}")
        changed = int(done.stdout.strip().splitlines()[-1])
        after = self.monolith_prices(BULK_IDS)
        raised = sum(after[i] == before[i] + 100 for i in BULK_IDS)
        say(f"  {changed} rows updated by QuerySet.update ({raised} now 1.00 dearer)")
        seconds = self.wait(
            "the bulk update in the service",
            lambda: self.service_prices(BULK_IDS) == after,
            timeout=90,
        )
        lag = time.monotonic() - started
        say(f"  all {changed} changes captured by the trigger and in the catalog service "
            f"{seconds:.1f}s after the update finished ({lag:.1f}s after it started)")  # fmt: skip
        traffic = self.traffic
        assert traffic is not None
        self.wait("price edits through the proxy", lambda: len(traffic.snapshot()[1]) >= 20)
        traffic.pause_writes()  # a still moving target cannot be checked
        _, acked, unknown = traffic.snapshot()
        checked = [i for i in acked if i not in unknown]
        seconds = self.wait(
            "service writes in the monolith",
            lambda: self.monolith_prices(checked) == {i: acked[i] for i in checked},
            timeout=60,
        )
        say(f"  {len(checked)} products edited through the proxy -> catalog service -> outbox "
            f"-> relay: all in the monolith within {seconds:.1f}s of the check")  # fmt: skip
        traffic.allow_writes()

    def planted_divergence(self) -> None:
        self.chapter("5. A planted divergence: raw SQL on the service database, no outbox")
        service_db = self.config.service_dbs[CONTEXT]
        statements = [
            f"UPDATE products SET price_cents = price_cents + 1 WHERE id = {PLANTED_CHANGED}",
            f"DELETE FROM products WHERE id = {PLANTED_DELETED}",
        ]
        with self.engine(service_db).begin() as connection:
            for statement in statements:
                changed = connection.execute(text(statement)).rowcount
                say(f"  {statement};  -- {changed} row")
        self.cli("reconcile", CONTEXT, "--repair", expect=(1,))
        found = self.save_reconcile_report("reconcile-divergent")
        say(f"  found {found}; repaired from the monolith (the source of truth in dual_write)")
        for _ in range(6):
            self.cli("reconcile", CONTEXT, expect=(0, 1))
            if self.clean_streak() >= 3:
                break
        say(f"  clean runs in a row now: {self.clean_streak()}")
        self.save_reconcile_report("reconcile-clean")

    def clean_streak(self) -> int:
        return clean_streak(CONTEXT)

    def save_reconcile_report(self, name: str) -> str:
        """The newest stored run as ``reports/NAME.json`` and ``.html``; what it found."""
        latest = recent_runs(CONTEXT, limit=1)
        report = load_report(latest[0].run_id) if latest else None
        if report is None:
            raise StoryFailed("no reconcile run was stored")
        self.reports.mkdir(parents=True, exist_ok=True)
        (self.reports / f"{name}.json").write_text(to_json(report), encoding="utf-8")
        (self.reports / f"{name}.html").write_text(to_html(report), encoding="utf-8")
        return _findings(report)

    def enter_split(self) -> None:
        self.chapter("6. Gates, then strangler plan advance catalog: dual_write -> split")
        self.cli("plan", "status")
        self.advance(patience=60)
        edits = self._edits()
        self.wait("price edits in split", lambda: self._edits() >= edits + 10)
        say("  reads and writes of the catalog now go to the service; reverse sync keeps the "
            "monolith current (rollback stays possible)")  # fmt: skip

    def _edits(self) -> int:
        assert self.traffic is not None
        return sum(
            n
            for kind, outcomes in self.traffic.stats.by_kind().items()
            if kind == "price edit"
            for outcome, n in outcomes.items()
            if outcome == "ok"
        )

    def verdict(self) -> int:
        self.chapter("7. Final parity: traffic stopped, every acknowledged write accounted for")
        assert self.traffic is not None
        orders, acked, unknown = self.traffic.snapshot()
        checked = [i for i in acked if i not in unknown]
        expected = {i: acked[i] for i in checked}
        seconds = self.wait(
            "acknowledged writes in both databases",
            lambda: (
                self.service_prices(checked) == expected
                and self.monolith_prices(checked) == expected
            ),
            timeout=60,
        )
        found_orders = self.rows(
            self.config.monolith_db,
            f"SELECT count(*) FROM orders_order WHERE id IN ({_ids(orders)})",
        )[0][0]
        code = self.cli("reconcile", CONTEXT, expect=(0, 1))
        findings = self.save_reconcile_report("final-parity")
        self.cli(
            "shadow", "report", "--format", "json", "--output", str(self.reports / "shadow.json")
        )
        self.cli(
            "shadow", "report", "--format", "html", "--output", str(self.reports / "shadow.html")
        )
        for kind, outcomes in self.traffic.stats.by_kind().items():
            say(f"  {kind:<14} " + ", ".join(f"{o} {n}" for o, n in outcomes.items()))
        at_transitions = sum(self.transition_failures.values())
        say(f"  {self.failed()} requests failed in all, {at_transitions} of them during the "
            "cut-overs: " + ", ".join(f"{n}: {c}" for n, c in self.transition_failures.items()))  # fmt: skip
        say(f"  orders acknowledged {len(orders)}, in the monolith {found_orders}")
        say(f"  price edits acknowledged on {len(acked)} products ({len(unknown)} with an "
            f"unanswered write left out), all in both databases after {seconds:.1f}s")  # fmt: skip
        say(f"  final reconcile: {findings}")
        lost = len(orders) - int(found_orders)
        ok = code == 0 and lost == 0 and at_transitions == 0
        say(f"\nReports: {self.reports}/")
        for path in sorted(self.reports.iterdir()):
            say(f"  {path}")
        total = time.monotonic() - self.started
        verdict = "zero divergence, no lost writes" if ok else "FAILED"
        say(f"\nstrangler demo: {verdict} ({total:.0f}s)")
        return 0 if ok else 1


def _ids(ids: list[int]) -> str:
    return ",".join(str(int(i)) for i in ids) or "NULL"


def _findings(report: Any) -> str:
    """``clean`` or the counts of missing, extra and differing rows per table."""
    if str(report.verdict) == "clean":
        return "clean (0 divergent rows)"
    parts = []
    for table in report.tables:
        counts = {
            "missing in service": table.missing_in_service,
            "missing in monolith": table.missing_in_monolith,
            "differing": table.differing,
        }
        shown = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
        if shown:
            parts.append(f"{table.name}: {shown}")
    return f"{report.verdict}: " + "; ".join(parts)


def run_demo(*, var_dir: Path | None = None) -> int:
    """Run the demo; returns the process exit code.

    ``var_dir`` defaults to ``$STRANGLER_VAR_DIR/demo`` (``./var/demo``); it is
    emptied first. The proxy listens on ``STRANGLER_DEMO_PORT`` (8000).
    """
    var_dir = var_dir or Path(os.environ.get("STRANGLER_VAR_DIR", "var")) / "demo"
    try:
        fresh_var_dir(var_dir)
    except StoryFailed as exc:
        say(f"strangler demo: {exc}")
        return 1
    config = demo_config(var_dir)
    busy = config.busy_ports()
    if busy:
        names = ", ".join(f"{name} {port}" for name, port in busy.items())
        say(f"strangler demo: port(s) already in use: {names}; stop whatever listens there or "
            "set STRANGLER_DEMO_PORT (proxy), STRANGLER_MONOLITH_PORT, STRANGLER_CATALOG_PORT, "
            "STRANGLER_INVENTORY_PORT, STRANGLER_PAYMENTS_PORT to free ports.")  # fmt: skip
        return 1
    os.environ.update(
        Stack(config, extra_env=DEMO_ENV).env()
    )  # in-process reads see the stack's stores
    try:
        with Stack(config, extra_env=DEMO_ENV) as stack:
            try:
                return Story(stack).run()
            finally:
                say("stopping the stack...")
    except (StoryFailed, ProcessStartError, subprocess.TimeoutExpired) as exc:
        say(f"\nstrangler demo: failed: {exc}")
        say(f"logs: {var_dir / 'log'}")
        return 1
