"""A redis-server of a test's own, to inject faults a shared one must not see.

READONLY (REPLICAOF a primary that never answers: the data stays), MISCONF (a background
save into a directory that was removed), BUSY (a long script), LOADING (DEBUG RELOAD of a
padded dataset, loaded slowly): each spell is started and ended by the test.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from redis.asyncio import Redis

from tests.conftest import free_port

REDIS_SERVER = shutil.which("redis-server") or "redis-server"


class RedisServer:
    """``redis-server`` on a free 127.0.0.1 port, data in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--save", "3600 1",
                "--appendonly", "no",
                "--stop-writes-on-bgsave-error", "yes",
                "--maxmemory-policy", "noeviction",
                "--enable-protected-configs", "yes",
                "--enable-debug-command", "yes",
                # A script counts as BUSY after 100 ms, not the default 5 s.
                "--busy-reply-threshold", "100",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = self.client()
        try:
            for _ in range(200):
                try:
                    await client.ping()
                    return
                except OSError:
                    await asyncio.sleep(0.02)
                except Exception:  # redis-py's ConnectionError while it binds
                    await asyncio.sleep(0.02)
            raise RuntimeError("redis-server did not start")
        finally:
            await client.aclose()

    def client(self, db: int = 0, timeout_s: float = 30.0) -> Redis:
        return Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=timeout_s)

    async def stop(self) -> None:
        if self.proc is not None:
            # Not SIGTERM: Redis refuses to shut down while its save fails or a script runs.
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait, 10)
            self.proc = None

    # -- spells ----------------------------------------------------------------

    async def become_replica(self) -> None:
        """READONLY: follow a primary that never answers (nothing listens there)."""
        async with self.client() as c:
            await c.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))

    async def become_primary(self) -> None:
        async with self.client() as c:
            await c.execute_command("REPLICAOF", "NO", "ONE")

    async def break_saving(self) -> None:
        """MISCONF: a background save fails (its directory vanished; root is refused too)."""
        gone = self.directory / "gone"
        gone.mkdir()
        async with self.client() as c:
            await c.config_set("dir", str(gone))
            gone.rmdir()
            await c.bgsave()
            while (await c.info("persistence"))["rdb_last_bgsave_status"] != "err":
                await asyncio.sleep(0.02)

    async def fix_saving(self) -> None:
        async with self.client() as c:
            await c.config_set("dir", str(self.directory))
            while True:
                info = await c.info("persistence")
                if info["rdb_last_bgsave_status"] == "ok":
                    return
                if not info["rdb_bgsave_in_progress"]:
                    await c.bgsave()
                await asyncio.sleep(0.05)

    async def run_busy_script(self, seconds: int) -> None:
        """BUSY: a script that only reads, spinning ``seconds`` (ended early by SCRIPT KILL)."""
        spin = (
            "local t = tonumber(redis.call('TIME')[1]) "
            "while tonumber(redis.call('TIME')[1]) < t + tonumber(ARGV[1]) do end return 1"
        )
        async with self.client(timeout_s=seconds + 10) as c:
            try:
                await c.eval(spin, 0, seconds)
            except Exception as exc:  # "Script killed by user"
                if "killed" not in str(exc):
                    raise

    async def kill_script(self) -> None:
        async with self.client() as c:
            await c.script_kill()

    async def reload_slowly(self, filler_keys: int = 20_000, delay_us: int = 100) -> None:
        """LOADING: save and load the dataset again, padded (in db 9) and slowed down, so
        that other clients are answered LOADING meanwhile."""
        async with self.client(db=9, timeout_s=120) as c:
            await c.execute_command("DEBUG", "POPULATE", filler_keys, "filler")
            await c.config_set("loading-process-events-interval-bytes", 1024)
            await c.config_set("key-load-delay", delay_us)
            try:
                await c.execute_command("DEBUG", "RELOAD")
            finally:
                await c.config_set("key-load-delay", 0)
                await c.flushdb()
