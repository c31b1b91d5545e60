"""Graceful stop on SIGTERM / SIGINT (Slurm pre-emption, `scancel`, the time limit, Ctrl-C).

The first signal only sets a flag: training stops at the next safe point (the end of the current
optimizer step), the run is recorded as `interrupted` and its last per-epoch checkpoint stays on
disk, so re-running the suite resumes it. A second SIGINT raises KeyboardInterrupt at once.
SIGALRM stays with `engine.time_limit`; nothing here touches it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

EXIT_INTERRUPTED = 3  # the suite stopped on a signal; re-run it to resume

_received: list[str] = []  # names of the stop signals received in this process


class Interrupted(Exception):
    """A stop signal arrived; raised at a safe point, never from inside a handler."""


def stop_requested() -> str | None:
    """The name of the first stop signal received (e.g. "SIGTERM"), or None."""
    return _received[0] if _received else None


def check() -> None:
    """Raise `Interrupted` if a stop signal has arrived: call it only where stopping is safe."""
    if _received:
        raise Interrupted(f"stopped by {_received[0]}")


def request_stop(name: str) -> None:
    """Ask the current process to stop at its next safe point (what the handlers do)."""
    _received.append(name)


@contextlib.contextmanager
def graceful_stop(log: Callable[[str], None] = print) -> Iterator[None]:
    """Within this block SIGTERM and SIGINT request a stop instead of killing the process.

    Outside the main thread (where handlers cannot be installed) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame) -> None:
        name = signal.Signals(signum).name
        if _received and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: the user means it
        first = not _received
        request_stop(name)
        if first:
            log(f"{name} received: stopping after the current step (a second Ctrl-C "
                "stops at once); re-run to resume")

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    _received.clear()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received.clear()  # the caller has read it inside the block
