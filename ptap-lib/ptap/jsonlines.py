"""JSON lines: ``emit(**fields)`` and ``--json``.

::

    @syscall_exit(syscall_name == "openat")
    def opened(ctx):
        emit(path=ctx.args[1], fd=ctx.retval)

writes one line to the tracer's output (its stdout, or the ``-o`` file)::

    {"pid":4242,"tid":4242,"ts":81732049223,"path":"/etc/hostname","fd":3}

``pid``, ``tid`` and ``ts`` (ns of CLOCK_MONOTONIC, the clock of
``ctx.timestamp``) come first; the fields follow in the order given and
may replace them. Values are made JSON's: bytes as text (UTF-8, other
bytes as ``\\xNN``), tuples and sets as lists, anything else JSON does not
have as its ``str()``.

``--json`` (:func:`enable`) also makes ``-t`` print one object per call
(:mod:`ptap.tracing`) and the aggregations print at exit as objects, one
per aggregation (:mod:`ptap.aggregations`).
"""

import os
import sys
import _thread
import time

__all__ = ["emit", "enable", "enabled", "write", "jsonable"]

_enabled = False


def enable():
    """Make ``-t`` and the aggregations printed at exit write JSON lines (``--json``)."""
    global _enabled
    _enabled = True


def enabled():
    """Whether ``--json`` was given."""
    return _enabled


def emit(**fields):
    """Write one JSON object of *fields*, after ``pid``, ``tid`` and ``ts``, to the tracer's output."""
    record = {"pid": os.getpid(), "tid": _thread.get_native_id(), "ts": time.monotonic_ns()}
    record.update(fields)
    write(record)


def write(record, file=None):
    """Write *record* (a dict) as one JSON line to *file* (by default the tracer's stdout)."""
    import json  # Imported by the first line: every script would pay ~2 ms for it.

    text = json.dumps(record, default=_default, separators=(",", ":"), ensure_ascii=False)
    print(text, file=sys.stdout if file is None else file)


def jsonable(value):
    """*value* as JSON can hold it (see the module docstring)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (tuple, list, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _default(value):
    """json's hook for what it cannot write: JSON's form of it."""
    converted = jsonable(value)
    return converted if converted is not value else str(value)
