"""Reading a stream of lines as they come, for ``apply``.

Owns :class:`LineReader`: it reads from the file descriptor itself (not through a buffer that would read ahead
and hide what is waiting), so that it can tell whether a further line can be read without waiting — what
``apply --batch-size`` needs to answer a program that waits for an answer before it writes its next line.
"""

from __future__ import annotations

import os
import select
from typing import BinaryIO

__all__ = ["LineReader"]

_CHUNK = 1 << 16


class LineReader:
    """The lines of a binary stream, read as they come: :meth:`readline` waits only for the next line, and
    :meth:`ready` says whether one can be read without waiting (a pipe whose writer waits for an answer has
    none)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        try:
            self._fd: int | None = stream.fileno()
        except (OSError, ValueError, AttributeError):
            self._fd = None
        self._buffer = bytearray()
        self._eof = False

    def _fill(self) -> None:
        if self._fd is not None:
            chunk = os.read(self._fd, _CHUNK)
        else:
            read1 = getattr(self._stream, "read1", None)
            chunk = read1(_CHUNK) if callable(read1) else self._stream.read(_CHUNK)
        if chunk:
            self._buffer += chunk
        else:
            self._eof = True

    def ready(self) -> bool:
        """Whether :meth:`readline` would return at once."""
        if self._eof or b"\n" in self._buffer or self._fd is None:
            return True
        try:
            readable, _, _ = select.select([self._fd], [], [], 0)
        except (OSError, ValueError):  # no select on this kind of file: take it as waiting
            return False
        return bool(readable)

    def readline(self) -> bytes | None:
        """The next line (without its end), or ``None`` at the end of the stream."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[:end + 1]
                return line
            if self._eof:
                if not self._buffer:
                    return None
                line = bytes(self._buffer)
                self._buffer.clear()
                return line
            self._fill()
