"""`assistant-bridge`: run (Socket Mode), serve (HTTP), check (settings, Slack, model)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence

from bot import __version__
from bot.settings import DEFAULT_PORT, ConfigError, Settings, load_settings

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
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"must be a number between 1 and 65535, not {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
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
