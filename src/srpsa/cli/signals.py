"""SIGTERM handled like Ctrl-C, so `kill PID` of a running command shuts it down cleanly.

Python's default SIGTERM action ends the process at once: no ``finally`` runs, and a process pool's
workers are left behind. Raised as :class:`Terminated` (a :class:`KeyboardInterrupt`) instead, it
unwinds the command (the batch runner terminates its workers); the command then prints one line and
exits with status 143 (128 + SIGTERM), as a shell reports a process ended by SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived."""


EXIT_TERMINATED = 143


def _raise(signum: int, frame: object) -> None:
    raise Terminated(f"signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
