"""Exceptions of ProcessTap.

:exc:`MissingPrototype` and :exc:`MemoryFault` are raised to handlers by the
ctx object (the native side raises them; they are defined here so that
scripts can catch them by name). :exc:`PrototypeError` is raised by
``include()`` and ``declare()``. :exc:`ScriptError` is raised by the script
loader when a script cannot be loaded.
"""

__all__ = ["MissingPrototype", "MemoryFault", "PrototypeError", "ScriptError"]


class MissingPrototype(LookupError):
    """No C prototype is known for a function, so its arguments cannot be decoded.

    Raised, for example, by ``len(ctx.args)`` and by ``prototype(name)``.
    Use ``include()`` or ``declare()`` to supply the prototype.
    """


class MemoryFault(OSError):
    """A read or write of the target's memory touched an unmapped address.

    The target itself is not harmed: the access is not performed.
    """


class PrototypeError(Exception):
    """C declarations could not be had: a syntax error, or a header not found or not parsed.

    The message quotes the line at fault where there is one.
    """


class ScriptError(Exception):
    """A script failed to compile or raised an exception at its top level.

    By the time this is raised the loader has already printed a traceback
    naming the script's lines to ``sys.stderr``; the caller only has to stop
    (ProcessTap exits with status 2). The original exception is chained as
    ``__cause__``. The script's path is in :attr:`path`.
    """

    def __init__(self, path, message):
        super().__init__(f"{path}: {message}")
        self.path = path
