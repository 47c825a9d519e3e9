"""Launch the rollback job once for each new `rollback_requests` row.

The cursor is the (requested_at, request_id) of the last request launched, and each request
is claimed (pending -> running) before its run is requested, so no request runs twice even if
two sensor ticks overlap.
"""

import json
from datetime import date
from typing import Any

import dagster as dg
from psycopg.rows import dict_row

from strangler.resources.postgres import PostgresResource
from strangler.rollback.job import JOB_NAME, ROLLBACK_TAG, jobs_for
from strangler.settings import get_settings
from strangler.spec import current_spec

_INTERVAL = get_settings().rollback_sensor_interval_s


def _is_day(key: str) -> bool:
    try:
        date.fromisoformat(key)
    except ValueError:
        return False
    return True


def request_run_config(row: dict[str, Any]) -> dict[str, Any]:
    """Job config for one request row (days as a range; or its time / code-version scope)."""
    days = sorted(k for k in row["partition_keys"] if _is_day(k))
    config: dict[str, Any] = {
        "services": list(row["services"] or ["all"]),
        "dry_run": bool(row["dry_run"]),
        "request_id": str(row["request_id"]),
        "reason": str(row["reason"]),
    }
    if days:
        config["from_day"], config["to_day"] = days[0], days[-1]
    if row["after_ts"] is not None:
        config["after"] = row["after_ts"].isoformat()
    if row["code_version"] is not None:
        config["code_version"] = str(row["code_version"])
    return {"ops": {"rollback_plan": {"config": config}}}


def build_rollback_sensors(rollback_job: dg.JobDefinition) -> list[dg.SensorDefinition]:
    """The request sensor, launching this rollback job (`build_rollback_jobs`)."""

    @dg.sensor(
        name="rollback_requests_sensor",
        job=rollback_job,
        minimum_interval_seconds=_INTERVAL,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=__doc__,
    )
    def rollback_requests_sensor(
        context: dg.SensorEvaluationContext, postgres: PostgresResource
    ) -> dg.SensorResult | dg.SkipReason:
        cursor = json.loads(context.cursor) if context.cursor else {"at": None, "id": ""}
        with postgres.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            rows = cur.execute(
                "SELECT request_id, partition_keys, services, after_ts, code_version, dry_run, reason,"
                " requested_at FROM migration_state.rollback_requests WHERE status = 'pending'"
                " AND (%(at)s::timestamptz IS NULL OR (requested_at, request_id::text) > (%(at)s, %(id)s))"
                " ORDER BY requested_at, request_id::text LIMIT 20",
                {"at": cursor["at"], "id": cursor["id"]},
            ).fetchall()
            requests: list[dg.RunRequest] = []
            for row in rows:
                claimed = conn.execute(
                    "UPDATE migration_state.rollback_requests SET status = 'running', started_at = now()"
                    " WHERE request_id = %s AND status = 'pending'",
                    (row["request_id"],),
                ).rowcount
                cursor = {"at": row["requested_at"].isoformat(), "id": str(row["request_id"])}
                if not claimed:
                    context.log.info(f"request {row['request_id']} was claimed elsewhere; skipped")
                    continue
                context.log.info(
                    f"launching {JOB_NAME} for request {row['request_id']}: days {row['partition_keys']},"
                    f" services {row['services']}, reason {row['reason']!r}"
                )
                requests.append(
                    dg.RunRequest(
                        run_key=f"rollback:{row['request_id']}",
                        run_config=request_run_config(row),
                        tags={ROLLBACK_TAG: str(row["request_id"])},
                    )
                )
            conn.commit()
        if not requests:
            return dg.SkipReason("no new rollback requests")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return [rollback_requests_sensor]


def __getattr__(name: str) -> Any:
    """The settings' spec's sensors, built on first use: `rollback_sensors`,
    `rollback_requests_sensor`."""
    if name in ("rollback_sensors", "rollback_requests_sensor"):
        sensors = build_rollback_sensors(jobs_for(current_spec())[0])
        return sensors if name == "rollback_sensors" else sensors[0]
    raise AttributeError(name)
