"""pytest fixtures: `postgres_server` (one cluster for the session) and `postgres_url` (a fresh,
empty database per test, dropped afterwards). Without PostgreSQL installed the tests that need it
(they use these fixtures, or carry the `postgresql` mark) skip, with one line saying how to get it."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from .server import HOW_TO_GET_IT, PostgresServer, find_binaries, running_server

_names = itertools.count(1)
REQUIRE = "REQUIRE_POSTGRES"  # set (by .ci/run): a missing PostgreSQL fails these tests instead of skipping them


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgresql: needs the PostgreSQL server the test suite starts")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if (item.get_closest_marker("postgresql") or "postgres_server" in item.fixturenames) and find_binaries() is None:
        # Raised here, not in the fixture: every such test skips from this one place, so the summary
        # says it in one line rather than once per test. CI (REQUIRE_POSTGRES=1) never skips them.
        if os.environ.get(REQUIRE):
            pytest.fail(f"{REQUIRE} is set but {HOW_TO_GET_IT[0].lower()}{HOW_TO_GET_IT[1:]}")
        raise pytest.skip.Exception(HOW_TO_GET_IT)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_binaries()
    if bin_dir is None:
        pytest.skip(HOW_TO_GET_IT)
    with running_server(bin_dir) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of an empty database of its own. (A plain fixture, so that a parametrized fixture can
    ask for it by name; it runs its statements on a loop of its own.)"""
    name = f"bridge_test_{next(_names)}"
    admin_sql(postgres_server, f"CREATE DATABASE {name}")
    yield postgres_server.url(name)
    admin_sql(postgres_server, f"DROP DATABASE {name} WITH (FORCE)")


def admin_sql(server: PostgresServer, sql: str) -> None:
    """Run one statement on the cluster's `postgres` database, from any thread or loop."""
    async def run() -> None:
        connection = await asyncpg.connect(server.url())
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, run()).result()
