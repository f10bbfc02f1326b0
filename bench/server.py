"""Start the server the way the README's production section runs it, for the benchmarks.

``production`` (what the README documents): gunicorn with uvicorn's ASGI workers
(``skilltrial.asgi``), a psycopg connection pool per worker (``DB_POOL_SIZE``). Run, Check and
the assistant are async views there: a participant waiting on a sandbox slot or an LLM stream
holds no worker. ``sync`` is the configuration before that (gunicorn sync workers on
``skilltrial.wsgi``, persistent connections), kept so that a benchmark can print both.

    with serve(env, config="production", workers=4) as server:
        ...  # server.port, server.describe()

The server's output goes to a temporary file; ``server.log_tail()`` returns its end (printed
by the benchmarks when something failed). The server is stopped on the way out, whatever
happened.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
CONFIGS = ("production", "threads", "sync")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(config: str, workers: int, port: int) -> tuple[list[str], dict[str, str]]:
    """The command line and the environment it needs on top of the caller's."""
    common = ["-w", str(workers), "-b", f"{HOST}:{port}", "--timeout", "120"]
    if config == "production":
        return (
            [sys.executable, "-m", "gunicorn", "skilltrial.asgi:application"]
            + ["-k", "uvicorn_worker.UvicornWorker", *common],
            {"DB_POOL_SIZE": "8"},
        )
    if config == "threads":
        return (
            [sys.executable, "-m", "gunicorn", "skilltrial.wsgi", "-k", "gthread"]
            + ["--threads", "32", "--keep-alive", "5", *common],
            {"DB_POOL_SIZE": "8"},
        )
    if config == "sync":
        return (
            [sys.executable, "-m", "gunicorn", "skilltrial.wsgi", *common],
            {"DB_POOL_SIZE": "0", "DB_CONN_MAX_AGE": "60"},
        )
    raise ValueError(f"unknown server config {config!r} ({', '.join(CONFIGS)})")


@dataclass
class Server:
    config: str
    workers: int
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def describe(self) -> str:
        kind = {
            "production": "uvicorn ASGI workers, psycopg pool of 8 per worker",
            "threads": "gthread workers of 32 threads, psycopg pool of 8 per worker",
            "sync": "sync workers, DB_CONN_MAX_AGE=60",
        }[self.config]
        return f"gunicorn, {self.workers} {kind}, on {HOST}:{self.port} ({self.config})"

    def log_tail(self, chars: int = 4000) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-chars:]


def wait_until_serving(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"the server exited with status {server.process.returncode}:\n" + server.log_tail()
            )
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection(HOST, server.port, timeout=2)
            conn.request("GET", "/favicon.ico")
            conn.getresponse().read()
            conn.close()
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer on {HOST}:{server.port} within {timeout:.0f} s")


@contextlib.contextmanager
def serve(
    env: Mapping[str, str], *, config: str = "production", workers: int = 4
) -> Iterator[Server]:
    """Run the server with ``env`` (DATABASE_URL and the rest) until the block ends."""
    port = free_port()
    command, extra = server_command(config, workers, port)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = Server(config=config, workers=workers, port=port, process=process, log=log)
        try:
            wait_until_serving(server)
            yield server
        finally:
            process.terminate()  # gunicorn: graceful shutdown of the master and its workers
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
