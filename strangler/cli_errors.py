"""How `strangler` fails: one line on stderr and an exit code a script can branch on.

Exit codes: 0 done; 1 a run or a check failed (the run is in Dagster, the report is stored);
2 a usage error (bad option, day or id; Click's own code); 3 a service or the Dagster instance
is unreachable or not set up (no DAGSTER_HOME, an unmigrated database), so nothing ran; a
STRANGLER_* setting that does not parse is a usage error. Anything else is a bug on our side:
one line naming the exception, and `strangler --debug ...` (or STRANGLER_DEBUG=1) shows the
traceback.
Messages never carry a password: URLs are shown without their credentials.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pydantic
import typer
import typer.main

FAILED = 1
USAGE = 2
UNAVAILABLE = 3

DEBUG_ENV = "STRANGLER_DEBUG"

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)
_PASSWORD_ASSIGNMENT = re.compile(r"(password\s*=\s*)\S+", re.IGNORECASE)


class ServiceUnavailable(typer.TyperException):
    """A store the command needs does not answer: which one, where, and how to fix it."""

    exit_code = UNAVAILABLE

    def __init__(self, service: str, address: str, setting: str, reason: str, hint: str) -> None:
        super().__init__(f"{service} is unreachable at {address} ({setting}): {reason}. {hint}")
        self.service = service


class RunFailed(typer.TyperException):
    """A Dagster run or a check did not pass; the message says where to read more."""

    exit_code = FAILED


def redact(text: str) -> str:
    """Drop credentials from URLs and `password=` pairs (libpq conninfo) in a message."""
    return _PASSWORD_ASSIGNMENT.sub(r"\1***", _URL_CREDENTIALS.sub(r"\g<scheme>", text))


@dataclass
class CliState:
    """Set by the root callback (`--debug`), read by `run` after the command returns."""

    debug: bool = False


state = CliState(debug=os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes"))


def _say(message: str) -> None:
    typer.echo(f"strangler: {redact(message)}", err=True)


def _setting_error(exc: pydantic.ValidationError) -> str:
    """The variable and pydantic's reason, never the value (it may be a password)."""
    first = exc.errors()[0]
    name = "_".join(str(part) for part in first["loc"]).upper()
    return f"setting STRANGLER_{name}: {first['msg']}"


def run(load_app: Callable[[], typer.Typer], args: list[str] | None = None) -> int:
    """Run the CLI with every error as one line on stderr; returns the exit code.

    Typer's standalone mode would print usage errors as a framed block and anything else as a
    multi-screen traceback; here Typer's exceptions keep their exit codes and get one line.
    """
    try:
        result = typer.main.get_command(load_app()).main(
            args=args, prog_name="strangler", standalone_mode=False
        )
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help is already printed
            return exc.exit_code
        ctx = getattr(exc, "ctx", None)
        if exc.exit_code == USAGE and ctx is not None:
            where = ctx.command_path
            typer.echo(f"{where}: {exc.format_message()} (see `{where} --help`)", err=True)
        else:
            _say(exc.format_message())
        return exc.exit_code
    except pydantic.ValidationError as exc:
        if exc.title != "Settings" or state.debug:
            raise
        _say(_setting_error(exc))
        return USAGE
    except psycopg.errors.UndefinedTable as exc:
        if state.debug:
            raise
        first = str(exc).strip().splitlines()[0]
        _say(f"PostgreSQL: {first}: the schema is not migrated; `strangler db migrate` applies it")
        return UNAVAILABLE
    except typer.Abort:
        _say("aborted")
        return FAILED
    except Exception as exc:
        if state.debug:
            raise
        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        _say(
            f"{type(exc).__name__}: {first} "
            f"(run `strangler --debug ...` or set {DEBUG_ENV}=1 for the traceback)"
        )
        return FAILED
    return result if isinstance(result, int) else 0


def _app() -> typer.Typer:
    from strangler.cli import app

    return app


def main() -> None:
    """The console script `strangler`: the CLI is imported inside the handler, so even a
    setting that fails to parse while the commands load is one line."""
    state.debug = state.debug or sys.argv[1:2] == ["--debug"]  # before Click has parsed it
    sys.exit(run(_app))
