"""The services a rollback knows, by their service_health names, and their aliases (light:
the CLI parses them before any store client loads)."""

from __future__ import annotations

SEARCH = "search-service"
ANALYTICS = "analytics-service"
RELAY = "outbox-relay"
EVENT_STORE = "event-store"
SERVICES: tuple[str, ...] = (SEARCH, ANALYTICS, RELAY, EVENT_STORE)
"""Downstream first: the order a rollback executes in."""
ALIASES: dict[str, str] = {
    "weaviate": SEARCH,
    "clickhouse": ANALYTICS,
    "kafka": RELAY,
    "event_store": EVENT_STORE,
    "eventstore": EVENT_STORE,
    "postgres": EVENT_STORE,
}


def resolve_services(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Service names as in service_health (or their aliases, or `all`), in execution order."""
    wanted: set[str] = set()
    for raw in names:
        for name in (n.strip().lower() for n in raw.split(",")):
            if not name:
                continue
            if name == "all":
                wanted.update(SERVICES)
            elif name in SERVICES:
                wanted.add(name)
            elif name in ALIASES:
                wanted.add(ALIASES[name])
            else:
                raise ValueError(
                    f"unknown service {name!r}; use one of {', '.join(SERVICES)}, "
                    f"{', '.join(sorted(ALIASES))} or all"
                )
    if not wanted:
        raise ValueError("no service given; use all to roll back every service")
    return tuple(s for s in SERVICES if s in wanted)
