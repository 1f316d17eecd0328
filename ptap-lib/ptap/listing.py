"""Listing probe points without running the target: ``processtap -l``.

::

    $ processtap -l 'libc.so.6:str*' -- /bin/ls
    libc.so.6:strlen      +0x9d7c0  281  size_t strlen(const char *__s);
    ...
    $ processtap -l 'syscall:open*'
    syscall:open          2         long open(const char *pathname, int flags, mode_t mode);
    syscall:openat        257       long openat(int dirfd, const char *pathname, int flags, mode_t mode);

The functions are those of the executable and of every library it would
load (:mod:`ptap.libraries`), read from the files (:mod:`ptap.elf`): a
module's name and the function's, its address (an offset from the load
address, ``+0x...``, for a PIE or a library), its size, and its C
prototype when a header gives one (those ``-t functions`` includes, and
the script's ``include()`` and ``declare()``). The system calls are this
architecture's, with the prototypes of :mod:`ptap.syscalls`.

A PATTERN is a glob of function names (``'malloc*'``), ``MODULE:GLOB``
(``'libc.so.6:str*'``, the module a glob too), or ``syscall:GLOB``; a
bare glob matches system calls too. With a script, what each probe's
predicate would match is listed under the probe instead, decided as the
client decides it when modules load; what only the running program can
decide (a thread, a process, a memory address) is said to be.

Run by the launcher as ``python3 -m ptap.listing``, outside the target.
"""

import argparse
import fnmatch
import os
import sys

from . import cdecl, libraries, predicates, prototypes, syscalls
from .elf import ElfError, ElfFile
from .errors import MissingPrototype

__all__ = ["main", "Function", "functions_of", "system_calls", "matches"]

#: The headers whose prototypes the listing shows (as ``-t functions``).
HEADERS = ("stdlib.h", "string.h", "stdio.h", "unistd.h")
#: Probe kinds whose predicates are decided against functions, and system calls.
FUNCTION_KINDS = ("function_entry", "function_exit")
SYSCALL_KINDS = ("syscall_entry", "syscall_exit")
#: The variables a function's listing knows; the rest are the running program's.
_STATIC_FUNCTION_VARIABLES = {"module_name", "function_name", "function_address", "instruction_address"}


class Function:
    """A function of a module: *module* (its file's name), *name*,
    *value* (an offset when *relative*), *size*."""

    __slots__ = ("module", "name", "value", "size", "relative")

    def __init__(self, module, name, value, size, relative):
        self.module, self.name, self.value, self.size, self.relative = module, name, value, size, relative

    @property
    def address_text(self):
        return f"+{self.value:#x}" if self.relative else f"{self.value:#x}"


def functions_of(executable):
    """The functions of *executable* and of the libraries it would load,
    module by module in load order; and the names of libraries not found."""
    found, missing = [], []
    for name, path in libraries.load_order(executable):
        if path is None:
            missing.append(name)
            continue
        try:
            elf = ElfFile(path)
        except (OSError, ElfError):
            missing.append(name)
            continue
        module = os.path.basename(path)
        found += [Function(module, s.name, s.value, s.size, elf.is_pie) for s in elf.symbols() if s.code]
    return found, missing


def system_calls(pointer_size):
    """``[(number, name), ...]`` of the system calls of the architecture
    whose pointers are *pointer_size* bytes, by number."""
    return sorted((number, name) for name, number in syscalls.numbers(pointer_size).items())


def matches(pattern, module, name):
    """Whether *pattern* (see the module docstring) names *name* of
    *module* (``"syscall"`` for a system call)."""
    if pattern is None:
        return True
    scope, _, glob = pattern.rpartition(":")
    if not scope:
        return fnmatch.fnmatchcase(name, glob)
    return fnmatch.fnmatchcase(module, scope) and fnmatch.fnmatchcase(name, glob)


def decide(predicate, fields):
    """*predicate* on an event of which *fields* are known: True, False,
    or None when it depends on what only the running program knows."""
    if isinstance(predicate, predicates.And):
        left, right = decide(predicate.left, fields), decide(predicate.right, fields)
        if left is False or right is False:
            return False
        return True if left and right else None
    if isinstance(predicate, predicates.Or):
        left, right = decide(predicate.left, fields), decide(predicate.right, fields)
        if left or right:
            return True
        return False if left is False and right is False else None
    if isinstance(predicate, predicates.Not):
        inner = decide(predicate.inner, fields)
        return None if inner is None else not inner
    if not predicate.variables() <= fields.keys():
        return None
    return bool(predicate.evaluate(fields))


def _prototype_text(name, syscall=False):
    """The C declaration of function (or system call) *name*, or ""."""
    try:
        proto = syscalls.declared_prototype(name) if syscall else prototypes.prototype(name)
    except MissingPrototype:
        return ""
    return "" if proto is None else str(proto)


def _rows_of_functions(functions, pattern):
    """The rows of the functions *pattern* names."""
    return [(f"{f.module}:{f.name}", f.address_text, str(f.size), _prototype_text(f.name))
            for f in functions if matches(pattern, f.module, f.name)]


def _rows_of_syscalls(calls, pattern):
    """The rows of the system calls *pattern* names."""
    return [(f"syscall:{name}", str(number), "", _prototype_text(name, syscall=True))
            for number, name in calls if matches(pattern, "syscall", name)]


def _print_rows(rows, file):
    """Print *rows* in aligned columns, the prototype last."""
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3]
        print(line.rstrip(), file=file)


def _probe_rows(probe, functions, calls):
    """The rows of what *probe* would match, and a note if it is decided as the program runs."""
    if probe.kind in FUNCTION_KINDS or probe.kind in SYSCALL_KINDS:
        static = _STATIC_FUNCTION_VARIABLES if probe.kind in FUNCTION_KINDS else {"syscall_name", "syscall_num"}
        running = sorted(probe.predicate.variables() - static)
        note = f"{', '.join(running)} decided as the program runs" if running else None
    if probe.kind in FUNCTION_KINDS:
        rows = []
        for f in functions:
            fields = {"module_name": f.module, "function_name": f.name}
            if not f.relative:
                fields["function_address"] = fields["instruction_address"] = f.value
            if decide(probe.predicate, fields) is not False:
                rows.append((f"{f.module}:{f.name}", f.address_text, str(f.size), _prototype_text(f.name)))
        return rows, note
    if probe.kind in SYSCALL_KINDS:
        rows = [(f"syscall:{name}", str(number), "", _prototype_text(name, syscall=True))
                for number, name in calls
                if decide(probe.predicate, {"syscall_name": name, "syscall_num": number}) is not False]
        return rows, note
    return [], "decided as the program runs"


def main(argv=None, out=None):
    """List what *argv* asks for; return the exit status."""
    out = sys.stdout if out is None else out
    parser = argparse.ArgumentParser(prog="processtap -l", description="List probe points without running the target.")
    parser.add_argument("--pattern", help="a glob: NAME, MODULE:NAME or syscall:NAME")
    parser.add_argument("--data-model", choices=sorted(cdecl.DATA_MODELS), default=cdecl.native_data_model().name)
    parser.add_argument("--script", help="the script whose probes to list what they match")
    parser.add_argument("--name", help="the script's name as the user gave it")
    parser.add_argument("--program", dest="programs", action="append", default=[], metavar="PROGRAM")
    parser.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR")
    parser.add_argument("executable", nargs="?", help="the command's executable (its functions are listed)")
    options = parser.parse_args(argv)
    model = cdecl.DATA_MODELS[options.data_model]
    functions, missing = ([], []) if options.executable is None else functions_of(options.executable)
    calls = system_calls(model.pointer_size)
    probes = None
    if options.script or options.programs:
        from . import script

        try:
            probes = script.run_script(options.script, exe=options.executable or "", argv=[options.executable or ""],
                                       include_dirs=options.include_dirs, name=options.name, programs=options.programs)
        except script.ScriptError:
            return 2
    for header in HEADERS:
        try:
            prototypes.include(header)
        except Exception:  # noqa: BLE001 - no prototypes shown, the listing still is.
            pass
    for name in missing:
        print(f"# {name}: not found where the dynamic loader would look", file=out)
    if probes is None:
        pattern = options.pattern
        rows = _rows_of_functions(functions, pattern) + _rows_of_syscalls(calls, pattern)
        _print_rows(rows, out)
        return 0 if rows else 1
    for probe in probes:
        rows, note = _probe_rows(probe, functions, calls)
        if options.pattern:
            rows = [row for row in rows if matches(options.pattern, *row[0].split(":", 1))]
        if probe.kind in FUNCTION_KINDS + SYSCALL_KINDS:
            suffix = f" ({len(rows)} {'may match: ' + note if note else 'match'})"
        else:
            suffix = f" ({note})"
        print(f"{probe.kind} {probe.describe()}{suffix}", file=out)
        _print_rows([("  " + row[0], *row[1:]) for row in rows], out)
    return 0


if __name__ == "__main__":
    import signal

    # A reader that stops early (| head) ends the listing quietly.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
