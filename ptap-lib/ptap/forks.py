"""Handlers run inside the target; they cannot fork it.

``os.fork()`` in the tracer's Python would copy the target in the middle
of DynamoRIO's own code, behind its back: the child died inside
DynamoRIO ("Tool internal crash", or "Cannot correctly handle received
signal 11" at a script's top level). Forking raises ``RuntimeError``
instead, which the handler can catch. Starting a program is fine:
``subprocess`` and ``os.posix_spawn`` create a new process that runs
untraced, without copying the target.
"""

import os

__all__ = ["refuse_forks", "FORK_MESSAGE"]

FORK_MESSAGE = (
    "the script runs inside the target and cannot fork it "
    "(use subprocess or os.posix_spawn to start a program)"
)


def _refuse(*args, **kwargs):
    """Stand in for ``os.fork`` and ``os.forkpty``: always refuse."""
    raise RuntimeError(FORK_MESSAGE)


def refuse_forks():
    """Make ``os.fork`` and ``os.forkpty`` (and so ``pty.fork`` and
    multiprocessing's fork start method) raise ``RuntimeError``."""
    os.fork = _refuse
    if hasattr(os, "forkpty"):
        os.forkpty = _refuse
