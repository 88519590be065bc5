"""Stop signals of a worker: SIGTERM/SIGINT finish the job in progress, then stop.

Used by :func:`element_pose.ops.worker.run_worker` and ``element-pose worker``
(:mod:`element_pose.cli.worker`); see :mod:`element_pose.ops.worker` ("Stopping").
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["STOP_SIGNALS", "StopSignals", "block_stop_signals", "keep_our_handlers"]

log = logging.getLogger("element_pose.ops.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """SIGTERM/SIGINT set a flag, and are only let in between jobs.

    The stop signals stay blocked while the worker runs and are unblocked for an
    instant at each :meth:`checkpoint` (between jobs, and every 0.25 s while idle).  Threads
    started meanwhile (numexpr, torch, ...) inherit the blocked mask, so the
    signal can only be delivered to the main thread at a checkpoint: never in the
    middle of a job, where DataJoint's own SIGTERM handler would abort it.
    """

    def __init__(self, flag: threading.Event) -> None:
        self.flag = flag
        self.active = threading.current_thread() is threading.main_thread()
        self.masking = self.active and hasattr(signal, "pthread_sigmask")
        self.signal_name = ""
        self._previous: dict[int, Any] = {}
        self._old_mask: set | None = None

    def _handler(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if not self.flag.is_set():
            log.warning("%s received: stopping after the current job", name)
        self.signal_name = name
        self.flag.set()

    def __enter__(self) -> StopSignals:
        if self.active:
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        if self.masking:
            self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        return self

    def __exit__(self, *exc) -> None:
        if self._old_mask is not None:
            self.checkpoint()  # a late signal still reaches our handler, not the caller's
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
            self._old_mask = None
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def checkpoint(self) -> None:
        """Let pending stop signals in (our handler sets the flag)."""
        if self.masking:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


class _SignalModuleKeepingHandlers:
    """Stands in for :mod:`signal` inside ``datajoint.autopopulate`` during a worker's job.

    DataJoint's distributed populate installs a SIGTERM handler that raises
    ``SystemExit`` and so aborts the job in progress (recording it as an error).
    A worker wants the opposite: finish the job, then stop.  Threads that exist
    before the worker blocks the signals (e.g. the BLAS thread pool that numpy
    starts at import) can receive SIGTERM, and the main thread then runs whatever
    Python handler is installed; so while a job runs, DataJoint's calls to
    ``signal.signal`` are made no-ops and the worker's own handler stays in place.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(signal, name)

    @staticmethod
    def signal(signum: int, handler: Any) -> Any:
        return signal.getsignal(signum)


@contextlib.contextmanager
def keep_our_handlers(active: bool) -> Iterator[None]:
    """While a job runs, DataJoint's populate cannot replace the worker's signal handlers."""
    module = sys.modules.get("datajoint.autopopulate")
    if not active or module is None or getattr(module, "signal", None) is not signal:
        yield
        return
    module.signal = _SignalModuleKeepingHandlers()
    try:
        yield
    finally:
        module.signal = signal


def block_stop_signals() -> None:
    """Hold SIGTERM/SIGINT back in this thread and the threads it starts from now on.

    Call it first thing in a worker process (``element-pose worker`` does), before
    imports start threads: :func:`run_worker` then lets the signals in between jobs.
    """
    if hasattr(signal, "pthread_sigmask") and \
            threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
