"""Type stubs for ``_ptap``, the private native module.

The native module is provided by libptap.so (the Rust runtime) inside the
traced program; it cannot be imported anywhere else.
"""

from typing import Any

def pid() -> int:
    """The target's process id."""

def tid() -> int:
    """The calling thread's id."""

class Context:
    """``ctx`` in a handler: one per event, valid while the handler runs.

    Every event has ``event``, ``pid``, ``tid`` and ``timestamp`` (ns of
    CLOCK_MONOTONIC); exits of calls have ``duration``; the rest depend on the
    event (``exit_code`` and ``signal`` for process_exit; ``module``,
    ``module_path``, ``module_base``, ``module_end`` for module_load). Asking
    for a field the event lacks raises AttributeError naming those it has.
    """

    event: str
    pid: int
    tid: int
    timestamp: int

    def __getattr__(self, name: str) -> Any: ...
