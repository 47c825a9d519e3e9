"""The embedded engine admits one process per data dir; the resource serializes them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from strangler.settings import Settings

WORKER = textwrap.dedent(
    """
    import sys, time
    from strangler.resources.clickhouse import ClickHouseResource
    ch = ClickHouseResource(dsn=sys.argv[1], lock_timeout_s=120)
    db, tag = sys.argv[2], sys.argv[3]
    for i in range(3):
        with ch.client() as c:
            c.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
            c.command(f"CREATE TABLE IF NOT EXISTS `{db}`.hits (tag String, i UInt8) ENGINE = MergeTree ORDER BY tag")
            c.insert(f"{db}.hits", [[tag, i]], column_names=["tag", "i"])
            time.sleep(0.3)
    print("ok", tag)
    """
)


def test_two_processes_open_embedded_clickhouse(
    stack: object, settings: Settings, unique: str
) -> None:
    dsn = settings.clickhouse_url
    assert dsn.startswith("chdb://")
    db = f"procs_{unique}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, dsn, db, tag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.startswith("ok")
    from strangler.resources.clickhouse import ClickHouseResource

    with ClickHouseResource(dsn=dsn).client() as c:
        rows = c.query(
            f"SELECT tag, count() FROM `{db}`.hits GROUP BY tag ORDER BY tag"
        ).result_rows
        c.command(f"DROP DATABASE `{db}`")
    assert [tuple(r) for r in rows] == [("a", 3), ("b", 3)]
