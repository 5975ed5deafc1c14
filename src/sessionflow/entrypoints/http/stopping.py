"""How the service stops: :class:`Stopping`, the app's one flag "a stop began", and what sets and reads it.

On SIGTERM (or SIGINT) the service goes through these steps, in order:

1. the flag is set (:func:`relay_stop_signals`): ``/readyz`` answers 503 ``{"status": "stopping"}``, every
   response carries ``Connection: close`` (:class:`CloseWhenStopping`) so clients open their next connection
   elsewhere, and each Server-Sent Events stream ends after the message in hand;
2. for the drain time (``http.drain_seconds``, default 0) the service goes on serving, so that a load balancer
   polling ``/readyz`` stops sending it requests;
3. the server (uvicorn) stops accepting connections and answers the requests in flight, waiting at most what is
   left of the grace period (uvicorn's ``timeout_graceful_shutdown``, which ``serve`` sets);
4. the app's lifespan ends: the timeout waker stops after the batch in hand, the change watcher and the store are
   closed;
5. when the grace period is over and the process is still there (a request's thread stuck, say on a database
   lock, which no one can interrupt), a process that asked for it (``serve``) ends itself, exit status 0.

:func:`relay_stop_signals` puts its own handler in front of the server's (uvicorn's ``handle_exit``): it sets the
flag, then hands the signal on, after the drain time for the first one and at once for a second one (a second
Ctrl-C still forces uvicorn out). It only does so in the main thread and over a Python handler; elsewhere the
flag is left to the host.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CloseWhenStopping", "Stopping", "relay_stop_signals", "stopping_of"]

logger = logging.getLogger("sessionflow.http")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopping:
    """Whether the service began to stop: set once, never cleared. Thread-safe."""

    def __init__(self) -> None:
        self._event = threading.Event()

    @property
    def begun(self) -> bool:
        """True once :meth:`begin` was called."""
        return self._event.is_set()

    def begin(self) -> None:
        """Say the service is stopping (idempotent): ``/readyz`` answers 503 from now on."""
        self._event.set()


def stopping_of(app: FastAPI) -> Stopping:
    """The :class:`Stopping` flag ``create_app`` keeps on ``app.state.stopping``."""
    stopping: Stopping = app.state.stopping
    return stopping


class CloseWhenStopping:
    """ASGI middleware: once the service is stopping, every HTTP response says ``Connection: close``, so a
    client's next request opens a connection (to another instance, behind a load balancer)."""

    def __init__(self, app: ASGIApp, *, stopping: Stopping) -> None:
        self.app = app
        self.stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.stopping.begun:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)


def relay_stop_signals(stopping: Stopping, drain_seconds: float = 0.0, *,
                       exit_after: float | None = None) -> Callable[[], None]:
    """Set ``stopping`` on SIGINT/SIGTERM, then hand the signal to the handler in place before (the server's):
    after ``drain_seconds`` for the first signal, at once for a later one. Returns a function that puts the
    previous handlers back (call it from the main thread). Does nothing outside the main thread, and for a
    signal whose handler is not a Python function (nothing to hand it to).

    ``exit_after``: seconds after the first signal at which the process ends itself (``os._exit(0)``, after a
    log line and a flush of the standard streams) if it is still running then, whatever its threads are doing;
    that watch stays armed until the process ends.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Callable[[int, FrameType | None], Any]] = {}
    for sig in _SIGNALS:
        current = signal.getsignal(sig)
        if callable(current):
            previous[sig] = current
    timers: list[threading.Timer] = []

    def relay(signum: int, frame: FrameType | None) -> None:
        first = not stopping.begun
        stopping.begin()
        if first and exit_after is not None:
            watch = threading.Timer(exit_after, _exit_overdue, args=(exit_after,))
            watch.daemon = True
            watch.start()
        handed = previous[signum]
        if first and drain_seconds > 0:
            logger.info("stopping: /readyz answers 503; serving on for %g s before closing", drain_seconds)
            timer = threading.Timer(drain_seconds, handed, args=(signum, None))
            timer.daemon = True
            timers.append(timer)
            timer.start()
            return
        for timer in timers:
            timer.cancel()
        handed(signum, frame)

    for number in previous:
        signal.signal(number, relay)

    def restore() -> None:
        for timer in timers:
            timer.cancel()
        for sig, handed in previous.items():
            if signal.getsignal(sig) is relay:
                signal.signal(sig, handed)

    return restore


def _exit_overdue(grace_seconds: float) -> None:
    """End the process: its grace period is over."""
    running = sum(1 for thread in threading.enumerate() if thread.is_alive() and not thread.daemon) - 1
    logger.error("the grace period (%g s) is over: exiting with %d thread(s) still running", grace_seconds,
                 max(running, 0))
    for handler in logging.getLogger().handlers + logger.handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)
