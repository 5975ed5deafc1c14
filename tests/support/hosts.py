"""A "host" of sessionflow, as real processes: one ``sessionflow serve`` and one ``sessionflow worker`` on a shared
database, with an environment and a working directory of their own, for the several-hosts tests and figures.

Each process is started in a session of its own (``start_new_session``), so :meth:`Host.kill` can SIGKILL every
process of the host at once, as a machine that is lost would: no graceful stop, no reply to what is in flight.
:meth:`Host.stop` is the orderly end (SIGTERM, then SIGKILL after a timeout).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from tests.support.postgres import free_port

__all__ = ["Host", "running_hosts"]


def _environment(url: str, name: str, extra: Mapping[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
    env.update({"SESSIONFLOW_DATABASE_URL": url, "SESSIONFLOW_PERFORMER": name, **extra})
    return env


class Host:
    """``serve`` on its own loopback port and ``worker`` beside it, both on ``url``; started by the constructor,
    which returns once ``/readyz`` answers 200."""

    def __init__(self, name: str, url: str, directory: Path, *, env: Mapping[str, str] | None = None,
                 worker_interval: str = "1s", ready_within: float = 60.0) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.directory = directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        environment = _environment(url, name, env or {})
        self.processes: list[subprocess.Popen[bytes]] = []
        self._spawn(environment, "serve", "--port", str(self.port), "--log-level", "warning",
                    "--grace-period", "10s")
        self._spawn(environment, "worker", "--interval", worker_interval)
        self._wait_ready(ready_within)

    def _spawn(self, env: dict[str, str], *argv: str) -> None:
        log = (self.directory / f"{argv[0]}.log").open("wb")
        try:
            process = subprocess.Popen([sys.executable, "-m", "sessionflow", *argv], cwd=self.directory, env=env,
                                       stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        finally:
            log.close()
        self.processes.append(process)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            exited = [p for p in self.processes if p.poll() is not None]
            if exited or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"host {self.name} did not start: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the host's processes' standard error."""
        tails = []
        for log in sorted(self.directory.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(tails)

    def kill(self) -> None:
        """SIGKILL every process of the host at once (each process group), and reap them."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait()

    def stop(self, timeout: float = 30.0) -> list[int | None]:
        """SIGTERM every process (SIGKILL what is left after ``timeout``); their exit codes."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
        codes = [process.poll() for process in self.processes]
        self.kill()
        return codes


@contextlib.contextmanager
def running_hosts(count: int, url: str, directory: Path, *, env: Mapping[str, str] | None = None,
                  worker_interval: str = "1s") -> Iterator[list[Host]]:
    """``count`` hosts on ``url`` (named ``host-a``, ``host-b``, ...), killed on exit."""
    hosts: list[Host] = []
    try:
        for index in range(count):
            hosts.append(Host(f"host-{chr(ord('a') + index)}", url, directory, env=env,
                              worker_interval=worker_interval))
        yield hosts
    finally:
        for host in hosts:
            host.kill()
