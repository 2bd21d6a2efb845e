"""One gateway per listen address and per data dir.

Two gateways on one port would split new connections between them, and two on one
data dir would run two Valkey servers on the same append-only files (duplicate job
ids, lost jobs). Both are refused at startup with :class:`StartupRefused`, naming the
process in the way when it can be found (Linux: through ``/proc``; elsewhere the
message just has no pid).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from pathlib import Path

from notigate.errors import StartupRefused

LOCK_NAME = "notigate.lock"
_TCP_LISTEN = "0A"

# What an operator should read for the errors a data dir gives; others keep strerror.
_DATA_DIR_PROBLEMS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file size limit reached",
    errno.EEXIST: "not a directory",
    errno.ENOTDIR: "not a directory",
}


def data_dir_refusal(directory: Path, exc: OSError) -> StartupRefused:
    """The one-line refusal for a data dir that cannot be written: the path that failed
    (``directory`` when the error names none), why, and this user when it lacks rights."""
    problem = _DATA_DIR_PROBLEMS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    if exc.errno in (errno.EACCES, errno.EPERM):
        problem += f" for this user (uid {os.geteuid()})"
    failed = os.fsdecode(exc.filename) if exc.filename else str(directory)
    return StartupRefused(
        f"cannot write to {failed}: {problem}; the gateway and its embedded Valkey keep "
        "their files in the data dir: fix that or choose another --data-dir / "
        "NOTIGATE_DATA_DIR"
    )


def check_writable(directory: Path) -> None:
    """Raise :class:`OSError` naming ``directory`` unless a file can be created and
    written in it (a read-only or full file system, missing rights, a file in its place)."""
    probe = directory / f".notigate-write-test-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"\n")
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                probe.unlink()
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(directory)) from exc


def describe_pid(pid: int) -> str:
    """``pid 123 (notigate serve --listen ...)``, or just ``pid 123`` when unreadable."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return f"pid {pid}"
    # Interpreter and script paths are long and say little; their names are enough.
    words[:2] = [Path(w).name if w.startswith("/") else w for w in words[:2]]
    text = " ".join(words)
    return f"pid {pid} ({text[:117] + '...' if len(text) > 120 else text})"


def listening_pids(port: int) -> list[int]:
    """Pids of the processes holding a TCP socket that listens on ``port`` (best effort:
    only processes whose ``/proc/<pid>/fd`` this user may read are found)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            listening = len(fields) > 9 and fields[3] == _TCP_LISTEN
            if listening and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return []
    targets = {f"socket:[{inode}]" for inode in inodes}
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(fd) in targets:
                    pids.append(int(proc.name))
                    break
    return sorted(pids)


def address_in_use(listen: str, port: int) -> StartupRefused:
    """The refusal for ``listen`` whose ``port`` another socket listens on."""
    owners = listening_pids(port)
    who = f" by {', '.join(describe_pid(p) for p in owners)}" if owners else ""
    return StartupRefused(
        f"address {listen} is already in use{who}; stop it or choose another "
        "--listen / NOTIGATE_LISTEN"
    )


def check_listen_free(listen: str) -> None:
    """Raise :class:`StartupRefused` if ``listen`` (host:port) cannot be bound exclusively.

    Binds and closes a probe socket for each address the host resolves to, the way the
    gRPC server binds (SO_REUSEADDR, no SO_REUSEPORT), so a conflict is refused before
    the gateway starts anything. Port 0 always succeeds. The gRPC server's own bind,
    also without SO_REUSEPORT, stays the final word (a race between two starts).
    """
    host, _, port_text = listen.rpartition(":")
    port = int(port_text)
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise StartupRefused(f"cannot listen on {listen}: {exc.strerror}") from exc
    for family, kind, proto, _, address in infos:
        try:
            probe = socket.socket(family, kind, proto)
        except OSError:
            continue  # e.g. IPv6 disabled: gRPC skips that address too
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # gRPC binds [::] dual-stack: it conflicts with IPv4 listeners too.
                with contextlib.suppress(OSError):
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise address_in_use(listen, port) from exc
                raise StartupRefused(f"cannot listen on {listen}: {exc.strerror}") from exc


class DataDirLock:
    """An exclusive ``flock`` on ``<data dir>/notigate.lock``, held while the gateway runs.

    The kernel drops the lock when the holder dies, even by ``kill -9``, so a stale lock
    never blocks a restart (unlike a pid file). The holder's pid is written inside only
    for the message another gateway prints.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StartupRefused` naming the dir and its holder."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # O_CLOEXEC: a child (the embedded Valkey) must not inherit the lock, or an
            # orphaned child would keep holding it for a dead gateway.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise data_dir_refusal(self.directory, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            who = describe_pid(int(holder)) if holder.isdigit() else "another process"
            raise StartupRefused(
                f"data dir {self.directory} is in use by {who}, another gateway; stop it "
                "or choose another --data-dir / NOTIGATE_DATA_DIR (one gateway per data "
                "dir; replicas share a REDIS_URL)"
            ) from None
        except OSError as exc:
            # No locking on this file system: running unprotected could corrupt the data.
            os.close(fd)
            raise StartupRefused(f"cannot lock data dir {self.directory}: {exc.strerror}") from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:  # e.g. a full disk
            os.close(fd)
            raise data_dir_refusal(self.directory, exc) from exc
        self._fd = fd

    def release(self) -> None:
        """Drop the lock. The file stays: unlinking it would let a newcomer lock a fresh
        file while a third process still waits on the old one."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
