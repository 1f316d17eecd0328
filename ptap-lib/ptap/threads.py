"""Handlers run on the target's own threads; they cannot start threads.

A thread started inside the target by the ``threading`` or ``_thread``
modules would run where DynamoRIO does not know it and crash the target.
Starting one raises ``RuntimeError`` instead, which the handler can catch.
"""

import _thread
import sys

__all__ = ["refuse_new_threads", "NEW_THREAD_MESSAGE"]

NEW_THREAD_MESSAGE = (
    "handlers run on the target's threads and cannot start threads of their own "
    "(a thread started inside the target would crash it)"
)


def _start_new_thread(function, args, kwargs=None):
    """Stand in for ``_thread.start_new_thread``: always refuse."""
    raise RuntimeError(NEW_THREAD_MESSAGE)


def refuse_new_threads():
    """Make every way of starting a thread raise ``RuntimeError``."""
    _thread.start_new_thread = _thread.start_new = _start_new_thread
    threading = sys.modules.get("threading")
    if threading is not None:
        # threading keeps its own reference, taken when it was imported.
        threading._start_new_thread = _start_new_thread
