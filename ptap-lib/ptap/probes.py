"""Probes: the decorators a script declares them with, and the registry.

A probe joins a kind of event (``function_entry``, ``syscall_exit``, ...),
a predicate choosing which of those events matter, and a handler called
with a ctx object for each one::

    @function_entry(function_name == "malloc")
    def malloc_entry(ctx):
        ...

Each decorator may be written ``@kind(predicate)``, ``@kind()`` or bare
``@kind``, and may also be called as ``kind(handler)``. It records a
:class:`Probe` in the current :class:`Registry` and returns the handler
unchanged, so several decorators can be stacked on one handler.

:data:`PROBE_KINDS` is the one table of probe kinds: it says which predicate
variables each kind provides (checked when the decorator runs), how the
banner names it and what it offers the handler. A system call that a
predicate names must exist (``syscall_name == "opnat"`` is an error).
"""

from ._record import Record, init
from .predicates import ALWAYS, Not, Predicate, _Junction

__all__ = [
    "ProbeKind",
    "PROBE_KINDS",
    "Probe",
    "Registry",
    "current_registry",
    "use_registry",
    "function_entry",
    "function_exit",
    "syscall_entry",
    "syscall_exit",
    "memory_read",
    "memory_write",
    "memory_execute",
    "branch",
    "process_exit",
    "thread_start",
    "thread_exit",
    "module_load",
]


class ProbeKind(Record):
    """One kind of probe: when it fires and what it provides.

    *name* is the decorator's name, such as ``"function_entry"``; *fires*
    says when the handler is called; *variables* are the names of the
    predicate variables this kind provides, and *ctx_fields* the ctx
    fields it has beyond those every ctx has.
    """

    __slots__ = ("name", "fires", "variables", "ctx_fields")

    def __init__(self, name, fires, variables, ctx_fields):
        init(self, name, fires, variables, ctx_fields)

    @property
    def banner_name(self):
        """The name as the banner prints it: ``function.entry``."""
        return self.name.replace("_", ".")


_FUNCTION_VARIABLES = (
    "process_id", "thread_id", "module_name", "function_name",
    "function_address", "instruction_address",
)
_SYSCALL_VARIABLES = ("process_id", "thread_id", "syscall_num", "syscall_name")
_MEMORY_VARIABLES = (
    "process_id", "thread_id", "module_name", "function_name",
    "instruction_address", "memory_address", "memory_size", "memory_value",
)
_MEMORY_FIELDS = (
    "address", "size", "access", "pc", "instruction", "function_name",
    "module", "value", "regs", "backtrace",
)
_LIFECYCLE_VARIABLES = ("process_id", "thread_id")

#: Every probe kind by name, in the order of the documentation.
PROBE_KINDS = {
    kind.name: kind
    for kind in (
        ProbeKind(
            "function_entry", "at the first instruction of a function",
            _FUNCTION_VARIABLES,
            ("function", "pc", "function_name", "module", "caller", "args",
             "prototype", "regs", "backtrace"),
        ),
        ProbeKind(
            "function_exit", "when a call of a function returns",
            _FUNCTION_VARIABLES,
            ("function", "pc", "function_name", "module", "caller", "args",
             "prototype", "regs", "backtrace", "retval", "unwound"),
        ),
        ProbeKind(
            "syscall_entry", "before a system call",
            _SYSCALL_VARIABLES,
            ("syscall", "syscall_name", "args", "prototype", "regs", "backtrace",
             "skip"),
        ),
        ProbeKind(
            "syscall_exit", "after a system call",
            _SYSCALL_VARIABLES,
            ("syscall", "syscall_name", "args", "prototype", "regs", "backtrace",
             "retval", "errno"),
        ),
        ProbeKind(
            "memory_read", "before an instruction reads memory",
            _MEMORY_VARIABLES,
            _MEMORY_FIELDS,
        ),
        ProbeKind(
            "memory_write", "after an instruction writes memory",
            _MEMORY_VARIABLES,
            _MEMORY_FIELDS + ("old_value",),
        ),
        ProbeKind(
            "memory_execute", "before the instruction at an address runs",
            ("process_id", "thread_id", "module_name", "function_name",
             "instruction_address", "memory_address", "memory_size"),
            _MEMORY_FIELDS,
        ),
        ProbeKind(
            "branch", "at a conditional branch, before control moves",
            ("process_id", "thread_id", "module_name", "function_name",
             "instruction_address", "branch_taken"),
            ("taken", "target", "fallthrough", "pc", "instruction", "condition",
             "function_name", "module", "regs", "backtrace"),
        ),
        ProbeKind(
            "process_exit", "when the process exits",
            _LIFECYCLE_VARIABLES,
            ("exit_code", "signal"),
        ),
        ProbeKind(
            "thread_start", "when a thread starts",
            _LIFECYCLE_VARIABLES,
            (),
        ),
        ProbeKind(
            "thread_exit", "when a thread exits",
            _LIFECYCLE_VARIABLES,
            (),
        ),
        ProbeKind(
            "module_load", "when a module (executable or shared library) is loaded",
            ("process_id", "thread_id", "module_name"),
            ("module", "module_path", "module_base", "module_end"),
        ),
    )
}

class Probe(Record):
    """A handler to call for the events of one kind that match a predicate.

    *kind* is the probe kind's name, such as ``"module_load"``;
    *predicate* chooses the events the handler is called for
    (:data:`~ptap.predicates.ALWAYS` when the probe was declared without
    one); *handler* is the function called with the ctx object, and
    *name* its qualified name, as the banner prints it. *once* (branch
    probes only) asks for one event per direction of each branch. *count*
    (``"function"``, ``"caller"``, ``"thread"``, ``"syscall"``,
    ``"module"``) makes a probe without a handler that counts its events
    by that key in native code (``handler`` is None).
    """

    __slots__ = ("kind", "predicate", "handler", "name", "once", "count")

    def __init__(self, kind, predicate, handler, name, once=False, count=None):
        init(self, kind, predicate, handler, name, once, count)

    @property
    def banner_kind(self):
        """The kind as the banner prints it: ``module.load``."""
        return PROBE_KINDS[self.kind].banner_name

    def describe(self):
        """Return the banner's line for the probe: ``(module.name like "libc*") on_load``."""
        once = " once" if self.once else ""
        return f"{self.predicate}{once} {self.name}"


#: The keys ``count=`` takes, by the probe kinds that have them.
COUNT_KEYS = {
    "function_entry": ("function", "caller", "thread", "module"),
    "function_exit": ("function", "caller", "thread", "module"),
    "syscall_entry": ("syscall", "thread"),
    "syscall_exit": ("syscall", "thread"),
    "memory_read": ("function", "thread", "module"),
    "memory_write": ("function", "thread", "module"),
    "memory_execute": ("function", "thread", "module"),
    "branch": ("function", "thread", "module"),
}


class Registry:
    """The probes a script has declared, in the order it declared them."""

    def __init__(self):
        self._probes = []

    def add(self, probe):
        """Record *probe*."""
        self._probes.append(probe)

    @property
    def probes(self):
        """A new list of the probes, in registration order."""
        return list(self._probes)

    def __iter__(self):
        return iter(self._probes)

    def __len__(self):
        return len(self._probes)

    def __repr__(self):
        return f"<Registry of {len(self._probes)} probes>"


class _ClosedRegistry(Registry):
    """The registry once a script's top level has run: the client has
    instrumented the target for the probes it had, and takes no more."""

    def add(self, probe):
        raise RuntimeError(
            f"probe {probe.name} ({probe.kind}) declared after the script's top level: "
            "probes are declared at the top level, before the target runs"
        )


_current_registry = Registry()


def current_registry():
    """Return the registry that the decorators add probes to."""
    return _current_registry


def close_registration():
    """Make declaring a probe from now on raise ``RuntimeError``.

    The script loader calls this once a script's top level has run: a
    probe declared later (in a handler) would never fire.
    """
    global _current_registry
    _current_registry = _ClosedRegistry()


def use_registry(registry):
    """Make *registry* the current registry for the ``with`` block.

    The previous registry is restored on leaving the block, and ``as``
    gives *registry*. The script loader uses this to collect one script's
    probes; tests use it to keep their probes apart.
    """
    return _RegistryInUse(registry)


class _RegistryInUse:
    """The context manager of :func:`use_registry`.

    A class rather than :func:`contextlib.contextmanager`, which would
    import ``contextlib`` (and ``functools``, ``collections``) into every
    traced process.
    """

    def __init__(self, registry):
        self._registry = registry
        self._previous = None

    def __enter__(self):
        global _current_registry
        self._previous = _current_registry
        _current_registry = self._registry
        return self._registry

    def __exit__(self, *exception):
        global _current_registry
        _current_registry = self._previous


# ---------------------------------------------------------------------------
# The decorators


def function_entry(predicate=None, /, *, count=None):
    """Call the handler at the first instruction of each matching function."""
    return _declare("function_entry", predicate, count=count)


def function_exit(predicate=None, /, *, count=None):
    """Call the handler when a call of a matching function returns."""
    return _declare("function_exit", predicate, count=count)


def syscall_entry(predicate=None, /, *, count=None):
    """Call the handler before each matching system call."""
    return _declare("syscall_entry", predicate, count=count)


def syscall_exit(predicate=None, /, *, count=None):
    """Call the handler after each matching system call."""
    return _declare("syscall_exit", predicate, count=count)


def memory_read(predicate=None, /, *, count=None):
    """Call the handler before each matching memory read."""
    return _declare("memory_read", predicate, count=count)


def memory_write(predicate=None, /, *, count=None):
    """Call the handler after each matching memory write."""
    return _declare("memory_write", predicate, count=count)


def memory_execute(predicate=None, /, *, count=None):
    """Call the handler before the instruction at each matching address runs."""
    return _declare("memory_execute", predicate, count=count)


def branch(predicate=None, /, *, once=False, count=None):
    """Call the handler at each matching conditional branch.

    With *once* true, the handler is called the first time each branch
    goes each way (at most twice per branch), and that direction then
    runs uninstrumented.
    """
    if not isinstance(once, bool):
        raise TypeError(f"branch(once=...) takes True or False, not {once!r}")
    return _declare("branch", predicate, once, count=count)


def process_exit(predicate=None, /):
    """Call the handler when the process exits."""
    return _declare("process_exit", predicate)


def thread_start(predicate=None, /):
    """Call the handler when a thread starts."""
    return _declare("thread_start", predicate)


def thread_exit(predicate=None, /):
    """Call the handler when a thread exits."""
    return _declare("thread_exit", predicate)


def module_load(predicate=None, /):
    """Call the handler when a matching module is loaded."""
    return _declare("module_load", predicate)


def _declare(kind, argument, once=False, count=None):
    """Do the work of the decorator *kind* called with *argument*.

    *argument* is a predicate (return a decorator), ``None`` (likewise, with
    :data:`ALWAYS`) or the handler itself (register it and return it).
    *once* is the probe's :attr:`Probe.once`. With *count*, there is no
    handler: the probe is registered at once, counting natively, and the
    :class:`~ptap.aggregations.NativeCount` that reads its counts is
    returned.
    """
    if count is not None:
        return _register_count(kind, argument, count, once)
    if argument is None:
        predicate = ALWAYS
    elif isinstance(argument, Predicate):
        predicate = argument
    elif callable(argument):
        return _register(kind, ALWAYS, argument, once)
    else:
        raise TypeError(
            f"{kind}() takes a predicate such as (function_name == \"malloc\") "
            f"or a handler, not {type(argument).__name__}: {argument!r}"
        )

    def decorator(handler):
        return _register(kind, predicate, handler, once)

    return decorator


def _register(kind, predicate, handler, once=False):
    """Check a probe, add it to the current registry and return *handler*."""
    if not callable(handler):
        raise TypeError(
            f"{kind} decorates a handler function, not "
            f"{type(handler).__name__}: {handler!r}"
        )
    name = getattr(handler, "__qualname__", repr(handler))
    _check_handler(kind, name, handler)
    _check_depth(kind, name, predicate)
    _check_variables(kind, name, predicate)
    _check_syscall_names(kind, name, predicate)
    probe = Probe(kind=kind, predicate=predicate, handler=handler, name=name, once=once)
    _current_registry.add(probe)
    return handler


def _register_count(kind, predicate, key, once):
    """Register a ``count=`` probe of *kind*; return its NativeCount."""
    keys = COUNT_KEYS[kind]
    if key not in keys:
        raise TypeError(f"{kind}(count={key!r}): {kind} probes count by {', '.join(repr(k) for k in keys)}")
    if predicate is None:
        predicate = ALWAYS
    elif not isinstance(predicate, Predicate):
        raise TypeError(f"{kind}(..., count={key!r}) takes a predicate and no handler, not {type(predicate).__name__}")
    name = f"count({key})"
    _check_depth(kind, name, predicate)
    _check_variables(kind, name, predicate)
    _check_syscall_names(kind, name, predicate)
    probe = Probe(kind=kind, predicate=predicate, handler=None, name=name, once=once, count=key)
    _current_registry.add(probe)
    from .aggregations import NativeCount

    return NativeCount(len(_current_registry) - 1, key)


def _check_handler(kind, name, handler):
    """Raise TypeError unless *handler* can be called with one argument (ctx)."""
    if _takes_one_argument(handler):
        return
    import inspect  # Tens of milliseconds: only for handlers of other shapes.

    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return  # Some builtins have no signature; let them be.
    try:
        signature.bind(None)
    except TypeError:
        raise TypeError(
            f"{kind} probe {name!r}: the handler must take one argument (ctx), "
            f"but its signature is {signature}"
        ) from None


def _takes_one_argument(handler):
    """Whether *handler* is a plain function that surely takes one positional argument.

    False means "ask :func:`inspect.signature`", which also knows builtins,
    bound methods, ``functools.partial`` and the ``__wrapped__`` and
    ``__signature__`` that decorators leave; a plain function is read from
    its code object.
    """
    if type(handler) is not _FUNCTION or hasattr(handler, "__wrapped__") or hasattr(handler, "__signature__"):
        return False
    code = handler.__code__
    positional = code.co_argcount  # Positional-only ones included.
    required = positional - len(handler.__defaults__ or ())
    keywords = code.co_varnames[positional:positional + code.co_kwonlyargcount]
    defaults = handler.__kwdefaults__ or {}
    if any(keyword not in defaults for keyword in keywords):
        return False
    takes_more = bool(code.co_flags & _VARARGS)
    return required <= 1 and (positional >= 1 or takes_more)


#: The type of functions written in Python (``types.FunctionType``).
_FUNCTION = type(_takes_one_argument)
#: ``inspect.CO_VARARGS``: the code takes ``*args``.
_VARARGS = 0x04


#: How deeply a predicate may nest ``&``, ``|`` and ``~`` (a chain
#: ``a & b & c ...`` of any length is one level). The client decides
#: predicates by recursion, some of it on DynamoRIO's small stacks.
MAX_PREDICATE_DEPTH = 100


def _check_depth(kind, name, predicate):
    """Raise ValueError if *predicate* nests deeper than MAX_PREDICATE_DEPTH."""

    pending = [(predicate, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_PREDICATE_DEPTH:
            raise ValueError(
                f"{kind} probe {name!r}: predicate nested more than {MAX_PREDICATE_DEPTH} "
                "levels deep (chains such as a & b & c ... count as one level)"
            )
        if isinstance(node, _Junction):
            pending.extend((operand, depth + 1) for operand in node._chain())
        elif isinstance(node, Not):
            pending.append((node.inner, depth + 1))


def _check_variables(kind, name, predicate):
    """Raise ValueError if *predicate* uses a variable that *kind* does not provide."""
    provided = PROBE_KINDS[kind].variables
    missing = sorted(predicate.variables() - set(provided))
    if missing:
        raise ValueError(
            f"{kind} probe {name!r}: predicate uses {', '.join(missing)}, "
            f"which {kind} does not provide (it provides: {', '.join(provided)})"
        )


def _check_syscall_names(kind, name, predicate):
    """Raise ValueError if *predicate* names a system call this machine does not have."""
    if "syscall_name" not in predicate.variables():
        return
    from . import syscalls  # The system-call table: read only when a predicate names one.

    for value in _values_of("syscall_name", predicate.to_data()):
        try:
            syscalls.syscall(value)
        except ValueError as error:
            raise ValueError(f"{kind} probe {name!r}: {error}") from None


def _values_of(variable, data):
    """Yield the values that the predicate *data* (``to_data()``) compares *variable* with."""
    tag = data[0]
    if tag in ("and", "or", "not"):
        for operand in data[1:]:
            yield from _values_of(variable, operand)
    elif tag == "cmp" and data[1] == variable:
        yield data[3]
    elif tag == "in" and data[1] == variable:
        yield from data[2]
