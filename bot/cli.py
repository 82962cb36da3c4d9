"""`assistant-bridge`: run (Socket Mode), serve (HTTP), check (settings, Slack, model), copy-store
(a SQLite store into PostgreSQL)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import __version__
from bot.settings import DEFAULT_DATABASE_URL, DEFAULT_PORT, ConfigError, Settings, load_settings
from bot.settings.parsing import port_number

EXIT_CONFIG = 2

DESCRIPTION = """\
One shared AI assistant per Slack channel: everybody in a channel talks to the same conversation,
the assistant knows who said what, and its replies land in the channel for everyone.

Settings come from the environment, then .env in the working directory, then config/bridge.toml
(the environment wins). See README.md for every setting; .env.example lists the secrets.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant-bridge", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--env-file", default=".env", metavar="PATH",
                        help="read secrets from this file too (default: .env; the environment wins)")
    parser.add_argument("--config", default=None, metavar="PATH",
                        help="behaviour settings file (default: config/bridge.toml, or $BRIDGE_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="serve Slack over Socket Mode (needs SLACK_BOT_TOKEN and SLACK_APP_TOKEN)")
    serve = sub.add_parser("serve", help="serve Slack's HTTP events at POST /slack/events, with GET /healthz, "
                                         "/readyz and /metrics, on $PORT (needs SLACK_BOT_TOKEN and "
                                         "SLACK_SIGNING_SECRET)")
    serve.add_argument("--port", type=_port, default=None, metavar="N", help="listen on port N (default: $PORT "
                       f"or {DEFAULT_PORT})")
    sub.add_parser("check", help="validate the settings, call Slack's auth.test and the model endpoint, "
                                 "print a report; exit 0 only if every check passed")
    copy = sub.add_parser("copy-store", help="copy a SQLite store (every channel's conversation, pending messages, "
                                             "journal) into an empty PostgreSQL database; stop the bridge first")
    copy.add_argument("--from", dest="source", default=None, metavar="URL",
                      help="the SQLite store (default: $DATABASE_URL if it names one, else "
                           f"{DEFAULT_DATABASE_URL})")
    copy.add_argument("--to", dest="target", required=True, metavar="URL",
                      help="the PostgreSQL database, postgresql://user:password@host:5432/database")
    return parser


def _port(text: str) -> int:
    problems: list[str] = []
    port = port_number(problems, "the port", text)  # (the same rule as PORT's)
    if port is None:
        raise argparse.ArgumentTypeError(problems[0].removeprefix("the port ").rstrip("."))
    return port


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "copy-store":
        return _copy_store(args.source, args.target, env_file=args.env_file)
    try:
        settings = load_settings(args.command, env_file=args.env_file, config_file=args.config)
    except ConfigError as error:
        print("assistant-bridge: the settings are not usable:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if getattr(args, "port", None) is not None:
        settings = dataclasses.replace(settings, port=args.port)

    from bot import logs  # imported late so `--help` stays fast

    logs.configure(settings.log_level, settings.log_format)
    if args.command == "check":
        from bot.check import run_checks

        return asyncio.run(run_checks(settings))
    from bot.wiring.serving import run_socket_mode, serve_http

    runner = run_socket_mode if args.command == "run" else serve_http
    return _run(runner, settings)


def _run(runner, settings: Settings) -> int:  # type: ignore[no-untyped-def]
    from bot.wiring import StartupError

    try:
        return asyncio.run(runner(settings))
    except StartupError as error:
        print(f"assistant-bridge: {error}", file=sys.stderr)
        return EXIT_CONFIG if error.config else 1
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130


def _copy_store(source: str | None, target: str, *, env_file: str) -> int:
    """`copy-store`: every table of a SQLite store into an empty PostgreSQL database, or exit 2 saying
    why not (nothing is copied then)."""
    import os

    from dotenv import dotenv_values

    from bot.settings import POSTGRES_SCHEMES, sqlite_path
    from bot.settings.parsing import redact_url
    from bot.store import OPEN_ERRORS, StoreInUse
    from bot.store.copy import TargetNotEmpty, copy_store

    if source is None:
        configured = os.environ.get("DATABASE_URL") or (
            dotenv_values(env_file).get("DATABASE_URL") if Path(env_file).is_file() else None) or ""
        source = configured if sqlite_path(configured) else DEFAULT_DATABASE_URL
    path = sqlite_path(source)
    problem = None
    if path is None:
        problem = f"--from must name a SQLite store (sqlite:///relative/path), not {redact_url(source)!r}."
    elif not target.startswith(POSTGRES_SCHEMES):
        problem = (f"--to must be a PostgreSQL URL (postgresql://user:password@host/database), "
                   f"not {redact_url(target)!r}.")
    elif not path.is_file():
        problem = f"there is no SQLite store at {path} (--from)."
    else:
        try:
            copied = asyncio.run(copy_store(path, target))
        except StoreInUse as exc:
            problem = f"{exc}: stop the bridge, then copy its store."
        except TargetNotEmpty as exc:
            problem = f"{exc}; copy-store copies only into an empty database."
        except OPEN_ERRORS as exc:
            problem = f"{redact_url(target)} cannot be used: {str(exc).rstrip('.') or type(exc).__name__}."
    if problem is not None:
        print(f"assistant-bridge: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    rows = ", ".join(f"{table} {count}" for table, count in copied.items())
    print(f"copied {path} into {redact_url(target)}: {rows} rows. Set DATABASE_URL to it and start the bridge.")
    return 0
