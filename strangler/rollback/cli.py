"""`strangler rollback`: the old rollback-microservices.sh, through Dagster (runs show in the UI).

strangler rollback SERVICE [VERSION] [-t "2024-01-15 10:00:00"] [-d] [--from D --to D]
strangler rollback undo REQUEST_OR_REPORT_ID
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.markdown import Markdown

from strangler.cli_errors import RunFailed
from strangler.cli_options import FromOpt, ToOpt
from strangler.preflight import Service, require
from strangler.rollback.scope import Scope, scope_of
from strangler.rollback.services import ANALYTICS, EVENT_STORE, RELAY, SEARCH
from strangler.settings import get_settings

if TYPE_CHECKING:
    import dagster as dg

rollback_app = typer.Typer(
    help="Roll days back in every store (or undo a rollback), as Dagster runs.",
    invoke_without_command=True,
    # Options may follow SERVICE VERSION, as with the old script (groups forbid that by default).
    context_settings={"allow_interspersed_args": True},
)
console = Console()

SERVICE_STORES: dict[str, Service] = {
    EVENT_STORE: "postgres",
    RELAY: "kafka",
    ANALYTICS: "clickhouse",
    SEARCH: "weaviate",
}


@rollback_app.callback()
def rollback(
    ctx: typer.Context,
    service: Annotated[
        str | None,
        typer.Argument(help="all, a service_health name or clickhouse/weaviate/kafka; or `undo`."),
    ] = None,
    version: Annotated[
        str | None,
        typer.Argument(
            help="Undo what code versions newer than this wrote (or, after `undo`, the report id)."
        ),
    ] = None,
    timestamp: Annotated[
        str | None, typer.Option("-t", "--timestamp", help="Everything migrated after this time.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("-d", "--dry-run", help="Print the plan only.")] = False,
    from_day: FromOpt = None,
    to_day: ToOpt = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the request).")] = "cli",
) -> None:
    """Plan, snapshot, execute, validate and report a rollback as one Dagster run."""
    if ctx.invoked_subcommand is not None:
        return
    if service is None:
        console.print(ctx.get_help())
        raise typer.Exit(2)
    settings = get_settings()
    if service == "undo":
        if not version:
            raise typer.BadParameter("give the id: strangler rollback undo REQUEST_OR_REPORT_ID")
        _undo(_valid_ref(version))
        return
    try:
        after = datetime.fromisoformat(timestamp) if timestamp else None
        if after is not None and after.tzinfo is None:
            after = after.astimezone()
        scope = scope_of(
            [service],
            from_day=from_day.isoformat() if from_day else None,
            to_day=to_day.isoformat() if to_day else None,
            after=after,
            code_version=None if version in (None, "", "-") else version,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    require(settings, ["dagster", "postgres", *(SERVICE_STORES[s] for s in scope.services)])
    password = settings.postgres_password.get_secret_value() if settings.postgres_password else None
    from strangler.rollback.job import JOB_NAME
    from strangler.rollback.report import create_request

    with psycopg.connect(settings.postgres_url, password=password) as conn:
        request_id = create_request(
            conn,
            scope,
            [],
            reason=reason,
            requested_by=f"cli:{os.environ.get('USER', 'unknown')}",
            dry_run=dry_run,
            status="running",
        )
        conn.commit()
    result = _run(JOB_NAME, "rollback_plan", job_config(scope, request_id, dry_run, reason))
    folder = (get_settings().rollback_snapshot_dir or settings.home / "rollbacks") / request_id
    report = folder / "report.md"
    if report.exists():
        console.print(Markdown(report.read_text(encoding="utf-8")))
    console.print(f"request {request_id}, Dagster run {result.run_id}", soft_wrap=True)
    if not result.success:
        raise RunFailed(f"rollback {request_id} failed (Dagster run {result.run_id}, see the UI)")


def job_config(scope: Scope, request_id: str, dry_run: bool, reason: str) -> dict[str, Any]:
    """The rollback job's run config for a parsed command line."""
    return {
        "services": list(scope.services),
        "dry_run": dry_run,
        "request_id": request_id,
        "reason": reason,
        "from_day": scope.from_day,
        "to_day": scope.to_day,
        "after": scope.after.isoformat() if scope.after else None,
        "code_version": scope.code_version,
    }


def _valid_ref(ref: str) -> str:
    """A request uuid or a report number that exists, else a usage error (nothing runs)."""
    if not ref.isdigit():
        try:
            uuid.UUID(ref)
        except ValueError as exc:
            raise typer.BadParameter(
                f"{ref!r} is neither a rollback request id (a uuid) nor a report number",
                param_hint="REQUEST_OR_REPORT_ID",
            ) from exc
    settings = get_settings()
    require(settings, ["dagster", "postgres"])
    password = settings.postgres_password.get_secret_value() if settings.postgres_password else None
    with psycopg.connect(settings.postgres_url, password=password) as conn:
        try:
            from strangler.rollback.undo import resolve_request

            resolve_request(conn, ref)
        except LookupError as exc:
            raise typer.BadParameter(str(exc), param_hint="REQUEST_OR_REPORT_ID") from exc
    return ref


def _run(name: str, op: str, config: dict[str, Any]) -> dg.ExecuteInProcessResult:
    """The job, run in the stack's instance (Dagster loads here, not for `--help`)."""
    import dagster as dg

    from strangler.dagster_preview import resolving_definitions

    settings = get_settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    from strangler.definitions import defs

    with resolving_definitions():
        job = defs.get_job_def(name)
    with dg.DagsterInstance.get() as instance:
        return job.execute_in_process(
            instance=instance,
            run_config={
                "ops": {op: {"config": config}},
                "loggers": {"console": {"config": {"log_level": "INFO"}}},
            },
            raise_on_error=False,
        )


def _undo(ref: str) -> None:
    from strangler.rollback.job import UNDO_JOB_NAME

    result = _run(UNDO_JOB_NAME, "rollback_undo_op", {"ref": ref})
    if not result.success:
        reasons = [
            event.step_failure_data.error.message.strip().splitlines()[0]
            for event in result.all_events
            if event.is_step_failure and event.step_failure_data.error
        ]
        reason = f": {reasons[0]}" if reasons else ""
        raise RunFailed(f"undo of {ref} failed (Dagster run {result.run_id}){reason}")
    console.print(result.output_for_node("rollback_undo_op"))
