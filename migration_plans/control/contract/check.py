"""Run the contract check of one context: every case to both sides, compared, counted.

report = check_context(plan, plans_dir, load_allowances(), examples=20, seed=1)
report.server_errors, report.differences   # both 0: the service keeps the contract
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from migration_plans.control.contract.allowances import Allowances
from migration_plans.control.contract.cases import Case, build_cases
from migration_plans.control.contract.compare import Answer, EffectComparer, compare_answers
from migration_plans.control.contract.environment import ContractEnvironment
from migration_plans.control.contract.exceptions import ContractError
from migration_plans.control.contract.openapi import SCHEMA_PATH, select_operations, unserved
from migration_plans.control.contract.report import ContractReport, Finding
from migration_plans.core.http import SAFE_METHODS
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan

NO_ANSWER = 599
"""The status recorded when a side closed the connection instead of answering."""


def _send(client: httpx.Client, case: Case, headers: dict[str, str]) -> Answer:
    sent = dict(headers) if case.authenticated else {}
    if case.content_type:
        sent["Content-Type"] = case.content_type
    try:
        response = client.request(case.method, case.target, content=case.body, headers=sent)
    except httpx.TransportError:
        # a kept-alive connection the server closed meanwhile: once more on a new one
        try:
            response = client.request(case.method, case.target, content=case.body, headers=sent)
        except httpx.TransportError as exc:
            note = f"no answer: {type(exc).__name__}: {exc}".encode()
            return Answer(NO_ANSWER, {}, note, str(client.base_url).rstrip("/"))
    return Answer(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        content=response.content,
        base=str(client.base_url).rstrip("/"),
    )


def check_context(
    plan: Plan,
    plans_dir: Path,
    allowances: Allowances,
    *,
    examples: int,
    seed: int,
    pg_server: str | None = None,
    only: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
    phase: Phase = Phase.DUAL_WRITE,
    staff: bool = False,
) -> ContractReport:
    """Start the two sides on two copies of the same data and compare every case.

    ``phase``: the service's (dual_write by default). In shared it reads the monolith's
    copy and only the reads are compared: the proxy sends shared writes to the monolith.
    ``staff``: the check's user is staff (sees every row where views narrow them per user).
    """
    say = progress or (lambda _message: None)
    say(f"{plan.context}: preparing databases and starting the monolith and the service")
    with ContractEnvironment.start(
        plan, plans_dir, seed=seed, pg_server=pg_server, phase=phase, staff=staff
    ) as env:
        return _check_running(env, allowances, examples=examples, seed=seed, only=only, say=say)


def _check_running(
    env: ContractEnvironment,
    allowances: Allowances,
    *,
    examples: int,
    seed: int,
    only: Sequence[str],
    say: Callable[[str], None],
) -> ContractReport:
    plan = env.plan
    with (
        httpx.Client(base_url=env.monolith_url, timeout=60) as monolith,
        httpx.Client(base_url=env.service_url, timeout=60) as service,
    ):
        schema = monolith.get(SCHEMA_PATH)
        if schema.status_code != 200:
            raise ContractError(f"the monolith's {SCHEMA_PATH} answered {schema.status_code}")
        operations = select_operations(schema.json(), plan, only)
        if env.phase is Phase.SHARED:  # writes go to the monolith in shared
            operations = [op for op in operations if op.method in SAFE_METHODS]
        skipped = unserved(schema.json(), plan)
        cases = build_cases(operations, examples=examples, seed=seed)
        say(f"{plan.context}: {len(operations)} operations, {len(cases)} cases")
        report = ContractReport(plan.context, seed, examples, len(operations), len(cases))
        report.unserved = skipped
        effects = EffectComparer.open(plan.mapping, env.databases.monolith, env.databases.service)
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:  # both sides at once
                run = _Run(env, allowances, monolith, service, effects, report, pool)
                documented = {operation.label: operation.statuses for operation in operations}
                for case in cases:
                    run.case(case, documented[case.operation])
        finally:
            effects.close()
    return report


@dataclass
class _Run:
    """What every case of one check is sent through and counted in."""

    env: ContractEnvironment
    allowances: Allowances
    monolith: httpx.Client
    service: httpx.Client
    effects: EffectComparer
    report: ContractReport
    pool: ThreadPoolExecutor

    def case(self, case: Case, documented: frozenset[int]) -> None:
        """Send ``case`` to both sides at once; count server errors and differences."""
        env, report = self.env, self.report
        applying = self.allowances.for_case(
            env.plan.context, case.operation, case.method, case.kind
        )
        sent = (
            self.pool.submit(_send, self.monolith, case, env.monolith_headers()),
            self.pool.submit(_send, self.service, case, env.service_headers()),
        )
        left, right = (future.result() for future in sent)

        def finding(what: str) -> Finding:
            return Finding(case, what, left.status, right.status)

        for side, answer in (("monolith", left), ("service", right)):
            if answer.status >= 500:
                report.add_server_error(finding(f"{side} answered {answer.status}"))
        if left.status not in documented and left.status != NO_ANSWER:
            report.add_undocumented(
                finding(f"monolith answered {left.status}, not in its OpenAPI document")
            )
        verdict = compare_answers(left, right, applying, head=case.method == "HEAD")
        if case.writes and (left.status < 400 or right.status < 400):
            verdict.differences += [
                f"database: {d}" for d in self.effects.new_divergences(applying)
            ]
        report.allowed += len(verdict.allowed)
        for difference in verdict.differences:
            report.add_difference(finding(difference))
