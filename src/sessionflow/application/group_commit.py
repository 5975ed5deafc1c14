"""Group commit: the concurrent single writes of many threads share one transaction, hence one commit.

At real durability a commit waits for the disk (an ``fsync``), and that wait, not the statements, bounds how
many writes a store takes per second. :class:`GroupCommit` sits between the manager and the store: the first
thread to write becomes the leader and commits its change alone; the writes that arrive while that commit is
under way queue up, and the next leader commits all of them in one transaction
(:meth:`~sessionflow.application.ports.EventStore.append_many`). No thread waits for a timer, so a lone writer
is not slowed down; under load, one commit carries as many writes as arrived during the previous one.

Each call returns only once its own change is committed, with the outcome it would have had alone: a change the
store refuses (a lost race, another session of the user in progress) is taken out of the group and its thread
gets the error, while the others are committed without it. A failure of the store itself reaches every thread of
the group; so does a lost commit whose outcome is unknown (each thread gets an
:class:`~sessionflow.errors.OutcomeUnknown` naming its own change). Enable it with
``SessionManager(..., group_commit=True)``.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Final

from sessionflow.application.ports import Change, EventStore
from sessionflow.errors import ActiveSessionExists, BatchRejected, ConcurrencyConflict, OutcomeUnknown

__all__ = ["DEFAULT_MAX_GROUP", "GroupCommit"]

#: The most changes one group commits (the rest wait for the next commit).
DEFAULT_MAX_GROUP: Final = 256


class _Waiter:
    """One thread's change waiting for its commit; ``lead`` when the thread is handed the next commit."""

    __slots__ = ("change", "done", "error", "lead")

    def __init__(self, change: Change) -> None:
        self.change = change
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.lead = False


class GroupCommit:
    """Commits the changes of concurrent threads in shared transactions (see the module's docstring).

    Args:
        store: where the groups are appended.
        max_group: the most changes in one transaction.
    """

    __slots__ = ("_busy", "_lock", "_max", "_queue", "commits", "store")

    def __init__(self, store: EventStore, *, max_group: int = DEFAULT_MAX_GROUP) -> None:
        if max_group < 1:
            raise ValueError("max_group must be >= 1")
        self.store = store
        self._max = max_group
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()
        self._busy = False
        #: How many transactions were committed (with :attr:`store`'s ``append`` or ``append_many``).
        self.commits = 0

    def append(self, change: Change) -> None:
        """Append ``change`` in the next group and return once that group is committed; raises what the
        store's ``append`` would have raised for it alone."""
        waiter = _Waiter(change)
        with self._lock:
            self._queue.append(waiter)
            lead = not self._busy
            self._busy = True
        if not lead:
            waiter.done.wait()
            if waiter.lead:  # the previous leader handed us the next commit (ours is in it)
                self._lead()
        else:
            self._lead()
        if waiter.error is not None:
            raise waiter.error

    def _lead(self) -> None:
        """Commit the queued changes (this thread's first among them), then hand the next commit to the first
        thread still waiting, or stand down."""
        with self._lock:
            group = [self._queue.popleft() for _ in range(min(len(self._queue), self._max))]
        try:
            self._commit(group)
        finally:
            with self._lock:
                if self._queue:
                    following = self._queue[0]
                    following.lead = True
                    following.done.set()
                else:
                    self._busy = False
            for waiter in group:
                waiter.done.set()

    def _commit(self, group: list[_Waiter]) -> None:
        pending = list(group)
        while pending:
            try:
                if len(pending) == 1:
                    self.store.append(pending[0].change)
                else:
                    self.store.append_many([waiter.change for waiter in pending])
            except BatchRejected as rejected:  # one change refused: it leaves the group, the others go on
                pending.pop(rejected.index).error = rejected.error
                continue
            except (ConcurrencyConflict, ActiveSessionExists) as refused:
                pending[0].error = refused
            except OutcomeUnknown as unknown:  # the group may have been committed: each thread is told so
                for waiter in pending:
                    change = waiter.change
                    waiter.error = OutcomeUnknown(unknown.operation, session_ids=[change.session.id],
                                                  record_ids=[change.events[0].record_id], reason=unknown.reason)
                    waiter.error.__cause__ = unknown
            except BaseException as error:  # the store failed: nothing of the group was written
                for waiter in pending:
                    waiter.error = error
            else:
                self.commits += 1
            return
