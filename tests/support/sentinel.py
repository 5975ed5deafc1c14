"""A Redis primary, its replica and three Sentinels, started and thrown away by the tests (``redis-server``
runs as a Sentinel with ``--sentinel``: no package beyond Debian's ``redis-server``)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.postgres import free_port
from tests.support.redis import RedisServer, find_redis_server

__all__ = ["SERVICE", "SentinelSetup", "sentinel_setup"]

#: The name the Sentinels monitor the primary under.
SERVICE = "sessionflow"
_READY_TIMEOUT = 30.0


@dataclass
class SentinelSetup:
    """The servers of one setup; ``url`` is the ``redis+sentinel://`` URL naming its primary."""

    primary: RedisServer
    replica: RedisServer
    sentinel_ports: list[int]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def primary_port(self) -> int:
        """The port of the primary the Sentinels name now."""
        import redis

        for port in self.sentinel_ports:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True)
            try:
                address = client.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
                return int(address[1])
            except redis.RedisError:
                continue
            finally:
                client.close()
        raise RuntimeError("no Sentinel answers")

    def wait_until(self, ready: str, timeout: float = _READY_TIMEOUT) -> None:
        """Wait until every Sentinel knows the replica (``ready="replica"``) or names the former replica as the
        primary (``ready="failover"``)."""
        import redis

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = 0
            for port in self.sentinel_ports:
                client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True)
                try:
                    if ready == "replica":
                        replicas = client.execute_command("SENTINEL", "replicas", SERVICE)
                        done += bool(replicas) and not any("s_down" in str(r) for r in replicas)
                    else:
                        address = client.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
                        done += int(address[1]) == self.replica.port
                except redis.RedisError:
                    pass
                finally:
                    client.close()
            if done == len(self.sentinel_ports):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Sentinels did not reach {ready!r} in {timeout} s")


def _wait_online(port: int, timeout: float = _READY_TIMEOUT) -> None:
    """Wait until the primary on ``port`` has its replica online (synchronised, acknowledging)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = client.info("replication")
            if info.get("connected_slaves", 0) >= 1 and "online" in str(info.get("slave0", "")):
                return
            time.sleep(0.1)
    finally:
        client.close()
    raise RuntimeError(f"the replica did not come online in {timeout} s")


def _sentinel(directory: Path, port: int, primary_port: int) -> subprocess.Popen[bytes]:
    config = directory / f"sentinel-{port}.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {directory}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n"
        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        f"sentinel failover-timeout {SERVICE} 10000\n"
        f"sentinel parallel-syncs {SERVICE} 1\n", encoding="utf-8")
    log = open(directory / f"sentinel-{port}.log", "ab")  # noqa: SIM115 - handed to the process
    try:
        return subprocess.Popen([str(find_redis_server()), str(config), "--sentinel"], stdout=log,
                                stderr=subprocess.STDOUT)
    finally:
        log.close()


@contextlib.contextmanager
def sentinel_setup() -> Iterator[SentinelSetup]:
    """A primary (AOF, ``appendfsync always``), a replica of it, and three Sentinels (quorum 2) watching it, the
    replica known to all of them; everything killed and removed on exit."""
    root = Path(tempfile.mkdtemp(prefix="sessionflow-sentinel-"))
    (root / "primary").mkdir()
    (root / "replica").mkdir()
    primary = RedisServer(root / "primary")
    setup: SentinelSetup | None = None
    try:
        primary.start()
        replica = RedisServer(root / "replica", extra=("--replicaof", "127.0.0.1", str(primary.port)))
        replica.start()
        setup = SentinelSetup(primary, replica, [free_port() for _ in range(3)])
        setup.processes = [_sentinel(root, port, primary.port) for port in setup.sentinel_ports]
        setup.wait_until("replica")
        _wait_online(primary.port)
        yield setup
    finally:
        if setup is not None:
            for process in setup.processes:
                process.kill()
                process.wait(10)
            setup.replica.kill()
        primary.kill()
        shutil.rmtree(root, ignore_errors=True)
