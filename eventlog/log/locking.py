"""The single-writer lock of a lake: an advisory file lock that a second writer waits for, within a bound."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eventlog.errors import LockBusyError


class WriterLock:
    """Exclusive lock on <lake>/log/writer.lock, held for the length of one write (a batch, a seal).

    Threads of one process queue on an in-process lock first; processes queue on flock. A waiter gives up after
    `timeout` seconds with LockBusyError naming the holder's pid.
    """

    def __init__(self, path: Path, *, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._thread_lock = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=max(self.timeout, 0)):
            raise LockBusyError(f"another thread is writing to {self.path.parent.parent}; "
                                f"gave up after {self.timeout:g} s")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                self._acquire(fd, deadline)
                try:
                    # Fixed width, so no truncation is needed (one costs up to a millisecond after a sync).
                    os.pwrite(fd, f"{os.getpid():<20}\n".encode(), 0)
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        finally:
            self._thread_lock.release()

    def _acquire(self, fd: int, deadline: float) -> None:
        pause = 0.002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    raise LockBusyError(
                        f"another process (pid {holder}) is writing to the lake at {self.path.parent.parent}; "
                        f"gave up after waiting {self.timeout:g} s") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
