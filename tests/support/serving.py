"""Waiting for a ``sessionflow serve`` process of a test to answer."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import httpx
import pytest

__all__ = ["wait_until_serving"]


def wait_until_serving(base: str, server: subprocess.Popen[Any], seconds: float = 60) -> None:
    """Return once ``base/readyz`` answers 200; fail the test if ``server`` exits first (with its standard error)
    or nothing answers within ``seconds`` (the server is then killed)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            pytest.fail(f"serve exited early ({server.returncode}):\n{server.communicate()[1]}")
        if time.monotonic() > deadline:
            server.kill()
            server.communicate(timeout=30)
            pytest.fail(f"serve did not answer within {seconds} s")
        time.sleep(0.05)
