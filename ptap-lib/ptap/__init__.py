"""ProcessTap scripts: probes, predicates and the names scripts use.

ProcessTap is a dynamic tracer for closed-source Linux programs, in the
manner of DTrace and SystemTap. A script declares probes: a kind of event
(a function entered, a system call made, memory read, ...), a predicate
choosing which of those events matter, and a Python handler::

    @function_entry(function_name == "malloc")
    def malloc_entry(ctx):
        print("malloc(%u)" % ctx.args[0])

The script runs inside the traced program, in CPython embedded by the
native client (``libptap.so``). This package is the pure-Python side:

- :mod:`ptap.predicates` -- the predicate language, built as data;
- :mod:`ptap.probes` -- the probe decorators and the registry of probes;
- :mod:`ptap.script` -- loading a script and collecting its probes;
- :mod:`ptap.prototypes` -- ``include()``, ``declare()``, ``prototype()``:
  C prototypes, modelled by :mod:`ptap.cdecl`, parsed by :mod:`ptap.cparse`,
  from headers prepared by :mod:`ptap.headers` and :mod:`ptap.prepare`
  and kept by :mod:`ptap.cache`;
- :mod:`ptap.syscalls` -- system calls' numbers, names and prototypes;
- :mod:`ptap.legacy` -- translating scripts for the original ProcessTap;
- :mod:`ptap.aggregations` -- counts and histograms printed at exit;
- :mod:`ptap.jsonlines` -- ``emit()`` and ``--json``: JSON lines;
- :mod:`ptap.tracing`, :mod:`ptap.strace` -- ``-t``: strace's and ltrace's lines;
- :mod:`ptap.output` -- where what handlers print goes;
- :mod:`ptap.errors` -- the exceptions.

Every name in ``__all__`` is also in a script's globals without an import.
"""

from .addresses import AddressSet, symbol_range
from .aggregations import avg, count, hist, lhist, max, min, sum
from .cdecl import Prototype
from .errors import MemoryFault, MissingPrototype, PrototypeError
from .helpers import module, symbol
from .jsonlines import emit
from .predicates import (
    Predicate,
    branch_taken,
    function_address,
    function_name,
    instruction_address,
    memory_address,
    memory_size,
    memory_value,
    module_name,
    process_id,
    syscall_name,
    syscall_num,
    thread_id,
)
from .probes import (
    Probe,
    branch,
    function_entry,
    function_exit,
    memory_execute,
    memory_read,
    memory_write,
    module_load,
    process_exit,
    syscall_entry,
    syscall_exit,
    thread_exit,
    thread_start,
)
from .prototypes import declare, include, prototype
from .syscalls import syscall

__all__ = [
    # Probe decorators.
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
    # Predicate variables.
    "process_id",
    "thread_id",
    "module_name",
    "function_name",
    "function_address",
    "syscall_num",
    "syscall_name",
    "memory_address",
    "memory_size",
    "memory_value",
    "branch_taken",
    "instruction_address",
    # Helpers.
    "symbol",
    "module",
    "syscall",
    "include",
    "declare",
    "prototype",
    "AddressSet",
    "symbol_range",
    # Aggregations (sum, min and max are Python's own when given arguments).
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "hist",
    "lhist",
    # JSON lines.
    "emit",
    # Types.
    "Predicate",
    "Probe",
    "Prototype",
    # Exceptions.
    "MissingPrototype",
    "MemoryFault",
    "PrototypeError",
]
