"""A throwaway PostgreSQL cluster on loopback: Debian's binaries, a temporary data directory.

initdb and the server refuse to run as root, so as root (CI) they run as the `postgres` user that
Debian's package creates; as anyone else, as that user. The cluster Debian sets up itself (port 5432)
is never used.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOW_TO_GET_IT = "PostgreSQL is not installed: `apt-get install postgresql` (Debian/Ubuntu) runs these tests"
START_TIMEOUT = 30  # seconds pg_ctl waits for the server to accept connections
# Settings for speed: a test cluster need not survive a power loss.
SERVER_OPTIONS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
                  " -c listen_addresses=127.0.0.1")


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster: connect as `postgres` (trust authentication) on 127.0.0.1:`port`."""

    port: int
    data: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@functools.cache
def find_binaries() -> Path | None:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextlib.contextmanager
def running_server(bin_dir: Path) -> Iterator[PostgresServer]:
    """initdb + pg_ctl start on a free port; stopped and deleted when the block ends."""
    root = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
    data, log = root / "data", root / "server.log"
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    try:
        _run(as_user + [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-sync"])
        port = _free_port()
        _run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(START_TIMEOUT),
                        "-o", f"{SERVER_OPTIONS} -p {port} -k {data}", "start"], log=log)
        try:
            yield PostgresServer(port=port, data=data)
        finally:
            subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(command: list[str], log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        server_log = log.read_text() if log is not None and log.exists() else ""
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}{server_log}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
