"""`assistant-bridge check`: can this configuration work? A short report, exit 0 only if it can."""

from __future__ import annotations

from bot.backends.base import BackendError
from bot.outbound.slack_errors import SLACK_FAILURES, reason
from bot.settings import Settings
from bot.settings.parsing import redact_url
from bot.store.postgres import POSTGRES_ERRORS, describe, is_postgres_url
from bot.wiring import StartupError, build_slack_client, load_toolbox, open_backend

OK, FAIL = "ok  ", "FAIL"


async def run_checks(settings: Settings, *, out=print) -> int:  # type: ignore[no-untyped-def]
    results: list[bool] = []

    def report(ok: bool, what: str, detail: str) -> None:
        results.append(ok)
        out(f"[{OK if ok else FAIL}] {what}: {detail}")

    model = (f"assistant={settings.openai_assistant_id}" if settings.assistant_backend == "assistants"
             else f"model={settings.openai_model}")
    report(True, "settings", f"backend={settings.assistant_backend} {model} "
                             f"database={redact_url(settings.database_url)} "
                             f"instructions from {settings.instructions_source}"
                             + (f"; channels={','.join(sorted(settings.channels))}" if settings.channels else ""))
    if is_postgres_url(settings.database_url):
        await _check_postgres(settings.database_url, report)
    slack = build_slack_client(settings)
    try:
        auth = await slack.auth_test()
        report(True, "slack", f"connected to {auth.get('team')} as @{auth.get('user')} ({auth.get('user_id')})")
    except SLACK_FAILURES as exc:
        report(False, "slack", f"auth.test failed: {reason(exc)}")
    if settings.slack_app_token:
        try:
            await slack.apps_connections_open(app_token=settings.slack_app_token)
            report(True, "socket mode", "the app-level token can open connections")
        except SLACK_FAILURES as exc:
            report(False, "socket mode", f"apps.connections.open failed: {reason(exc)}")
    try:
        toolbox = load_toolbox(settings)
        if settings.tools_module:
            report(True, "tools", f"{settings.tools_module}: {', '.join(toolbox.names) or 'no public functions'}")
    except StartupError as exc:
        report(False, "tools", str(exc))
    backend = await open_backend(settings)
    try:
        chosen = f" (ASSISTANT_BACKEND=auto chose {backend.name})" if settings.assistant_backend == "auto" else ""
        report(True, "model", await backend.check() + chosen)
    except BackendError as exc:
        detail = f"{exc.message}" + (f" (HTTP {exc.status}" + (f", {exc.code})" if exc.code else ")")
                                     if exc.status else "")
        report(False, "model", detail)
    finally:
        await backend.aclose()
    passed = all(results)
    out("all checks passed" if passed else "some checks failed")
    return 0 if passed else 1


async def _check_postgres(url: str, report) -> None:  # type: ignore[no-untyped-def]
    """Is the server reachable, does it take our credentials, is the schema ours (nothing written)?"""
    try:
        report(True, "database", await describe(url))
    except POSTGRES_ERRORS as exc:
        report(False, "database", f"cannot use {redact_url(url)}: {str(exc) or type(exc).__name__}")
