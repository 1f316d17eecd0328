"""Tracing without a script: ``processtap -t syscalls[=NAME,...]`` and
``-t functions=GLOB[,GLOB...]``.

::

    $ processtap -t syscalls=openat,read,close -- cat /etc/hostname
    openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3
    read(3, "myhost\\n", 131072)            = 7
    ...

The launcher turns ``-t`` and the options that shape it (``-s``, ``-T``,
``-tt``, ``-c``) into a one-line program that calls :func:`start`, which
registers the probes; the lines are written by :mod:`ptap.strace`. Each
line is printed when its call returns, whole, so the calls of several
threads never cut into each other (strace's ``<unfinished ...>``); a call
that does not return (``exit_group``) is printed when it is made, with
``= ?``. The lines go to the tracer's stderr, as strace's do, or with
``-o FILE`` to FILE.

As strace does, a process prefixes its lines with ``[pid TID]`` once the
trace has more than one task: in every process but the first, and in the
first after it started a thread or a child. At a process's exit a line
says how it ended (``+++ exited with 0 +++``). With ``-c``, instead of the
lines, each process prints a table of its calls at its exit.
"""

import errno
import fnmatch
import os
import sys
import time

from . import hooks, jsonlines, strace
from .errors import MissingPrototype
from .predicates import function_name, module_name, syscall_name
from .probes import function_entry, function_exit, process_exit, syscall_entry, syscall_exit

__all__ = ["start", "Summary"]

#: System calls that do not return when they succeed.
NO_RETURN = ("exit", "exit_group")
#: System calls after which a process has another task.
NEW_TASK = ("clone", "clone3", "fork", "vfork")
#: Functions that do not return, printed when they are called.
NO_RETURN_FUNCTIONS = ("exit", "_exit", "_Exit", "quick_exit", "abort", "pthread_exit",
                       "__assert_fail", "__stack_chk_fail", "longjmp", "siglongjmp",
                       "__longjmp_chk", "execve", "execv", "execvp", "execl", "execlp")


def start(*, syscalls=None, functions=(), string_size=32, durations=False, timestamps=False,
          summary=False, to_output=False, first_parent=None, json=False):
    """Trace the system calls named in *syscalls* (every one if None, none
    if empty) and the functions that *functions* name: globs of function
    names, ``MODULE:GLOB`` for those of one module.

    *string_size* is ``-s``, *durations* ``-T``, *timestamps* ``-tt`` and
    *summary* ``-c``; *to_output* sends the lines to the tracer's stdout
    (the ``-o`` file) instead of its stderr; *first_parent* is the pid
    whose children are the first processes of the trace; *json*
    (``--json``) writes each call as a JSON object instead.
    """
    label = "function" if syscalls == [] else "syscall" if not functions else "call"
    tracer = _Tracer(string_size, durations, timestamps, summary and label, to_output, first_parent, json)
    if syscalls is None or syscalls:
        chosen = None if syscalls is None else syscall_name >> list(syscalls)
        syscall_exit(chosen)(tracer.returned)
        endless = [n for n in NO_RETURN if syscalls is None or n in syscalls]
        if endless:
            syscall_entry(syscall_name >> endless)(tracer.made)
    if functions:
        chosen = _functions_predicate(functions)
        function_exit(chosen)(tracer.function_returned)
        endless = [n for n in NO_RETURN_FUNCTIONS if any(fnmatch.fnmatchcase(n, g.rpartition(":")[2]) for g in functions)]
        if endless:
            function_entry(chosen & (function_name >> endless))(tracer.function_called)
    syscall_exit(syscall_name >> _existing(NEW_TASK))(tracer.task_started)
    process_exit(tracer.exited)
    return tracer


def _functions_predicate(globs):
    """The predicate of ``-t functions=``'s globs: any of them."""
    predicate = None
    for glob in globs:
        module, _, name = glob.rpartition(":")
        one = function_name.like(name) if any(c in name for c in "*?[") else function_name == name
        if module:
            one = (module_name == module) & one
        predicate = one if predicate is None else predicate | one
    return predicate


def _existing(names):
    """Those of *names* this architecture has."""
    from . import syscalls

    present = []
    for name in names:
        try:
            syscalls.syscall(name)
        except ValueError:
            continue
        present.append(name)
    return present


class _Tracer:
    """The state of ``-t`` in one process."""

    def __init__(self, string_size, durations, timestamps, summary, to_output, first_parent, json):
        self.json = json
        self.string_size = string_size
        self.durations = durations
        self.timestamps = timestamps
        # summary: the label of -c's table's last column, or False.
        self.summary_label = summary
        self.summary = Summary(summary) if summary else None
        self.to_output = to_output
        self.first_parent = first_parent
        self.several = False
        self.params = {}
        hooks.at_fork(self.forked)
        if self.summary is not None:
            hooks.at_exit(self.print_summary)

    # Handlers.

    def returned(self, ctx):
        """At a system call's exit: its line, or its count with -c."""
        name = ctx.syscall_name
        if name in NEW_TASK and ctx.retval == 0:
            # The child's return from its own creation: strace shows only
            # the parent's.
            return
        if self.summary is not None:
            self.summary.add(name, ctx.duration, ctx.errno != 0)
            return
        args = self.arguments(ctx)
        if self.json:
            record = self.record(ctx, name, args, ctx.retval, ctx.duration)
            if ctx.errno:
                record["error"] = errno.errorcode.get(ctx.errno, str(ctx.errno))
            return self.write_record(record)
        call = strace.call_text(name, args, self.string_size, ctx.mem.read, ctx.errno != 0)
        self.print(ctx, call, strace.result_text(name, ctx.retval, args), ctx.timestamp - ctx.duration, ctx.duration)

    def made(self, ctx):
        """At the entry of a call that will not return."""
        name = ctx.syscall_name
        if self.summary is not None:
            return  # strace's table counts calls that return.
        if self.json:
            return self.write_record(self.record(ctx, name, self.arguments(ctx), None, None))
        self.print(ctx, strace.call_text(name, self.arguments(ctx), self.string_size, ctx.mem.read), "?", ctx.timestamp, None)

    def function_returned(self, ctx):
        """At a function's exit: its line, as ltrace writes it."""
        name = ctx.function_name
        if ctx.unwound and name in NO_RETURN_FUNCTIONS:
            return  # Printed when it was called.
        if self.summary is not None:
            self.summary.add(name, ctx.duration, False)
            return
        args = self.function_arguments(ctx)
        if self.json:
            record = self.record(ctx, name, args, None if ctx.unwound else ctx.retval, ctx.duration)
            record["module"] = ctx.module
            if ctx.unwound:
                record["unwound"] = True
            return self.write_record(record)
        call = strace.function_call_text(name, args, self.string_size)
        if ctx.unwound:
            result = "<unwound>"
        else:
            result = strace.function_result_text(ctx.retval, self.return_kind(ctx), self.string_size)
        self.print(ctx, call, result, ctx.timestamp - ctx.duration, ctx.duration)

    def function_called(self, ctx):
        """At the entry of a function that will not return."""
        if self.summary is not None:
            return
        if self.json:
            record = self.record(ctx, ctx.function_name, self.function_arguments(ctx), None, None)
            record["module"] = ctx.module
            return self.write_record(record)
        call = strace.function_call_text(ctx.function_name, self.function_arguments(ctx), self.string_size)
        self.print(ctx, call, "<no return ...>", ctx.timestamp, None)

    def function_arguments(self, ctx):
        """A function call's arguments as :class:`ptap.strace.Arg` objects."""
        prototype = ctx.prototype
        if prototype is None:
            # No prototype: the six integer argument words (ctx.args's).
            return [strace.Arg("", "pointer", raw, raw) for raw in (ctx.args.raw(i) for i in range(6))]
        args = []
        for i, param in enumerate(prototype.params):
            kind, _size, signed, _detail = param.to_data()
            try:
                value = ctx.args[i]
                raw = ctx.args.raw(i) if kind not in ("float", "double") else value
            except TypeError:
                value = raw = "?"  # An argument ProcessTap cannot place.
            args.append(strace.Arg(param.name or f"arg{i}", kind, value, raw, signed))
        if prototype.variadic:
            args.append(strace.Arg("...", "ellipsis", "...", 0))
        return args

    def return_kind(self, ctx):
        """How the function's result decodes: its return type's kind."""
        prototype = ctx.prototype
        if prototype is None:
            return None
        return prototype.restype.to_data()[0]

    def task_started(self, ctx):
        """After clone, fork or vfork: a second task exists."""
        if ctx.retval > 0:
            self.several = True

    def exited(self, ctx):
        """At the process's exit: how it ended, as strace says it."""
        if self.summary is not None:
            return
        if self.json:
            return self.write_record({"pid": ctx.pid, "tid": ctx.tid, "ts": ctx.timestamp, "event": "process_exit",
                                      "exit_code": ctx.exit_code, "signal": ctx.signal})
        if ctx.signal is not None:
            ending = f"+++ killed by {strace.signal_name(ctx.signal)} +++"
        else:
            ending = f"+++ exited with {ctx.exit_code} +++"
        self.write(self.prefix(ctx) + ending)

    def forked(self):
        """In a forked child: another process of the trace, counting anew."""
        self.several = True
        if self.summary is not None:
            self.summary = Summary(self.summary_label)

    # Lines.

    def arguments(self, ctx):
        """The call's arguments as :class:`ptap.strace.Arg` objects."""
        params = self.params.get(ctx.syscall)
        if params is None:
            params = self.params[ctx.syscall] = _params(ctx)
        if not params:
            return []
        if params[0] is None:
            # No prototype: the six parameter words, as strace shows a
            # call it does not know.
            return [strace.Arg("", "pointer", raw, raw) for raw in (ctx.args.raw(i) for i in range(6))]
        return [strace.Arg(name, kind, ctx.args[i], ctx.args.raw(i), signed) for i, (name, kind, signed) in enumerate(params)]

    def prefix(self, ctx):
        """``[pid TID] `` once the trace has several tasks."""
        if self.several or (self.first_parent is not None and os.getppid() != self.first_parent):
            return f"[pid {ctx.tid:5d}] "
        return ""

    def print(self, ctx, call, result, started_ns, duration_ns):
        """Print one call's line; *started_ns* is when it was made (monotonic)."""
        prefix = self.prefix(ctx)
        if self.timestamps:
            prefix += _wall_clock(started_ns) + " "
        self.write(strace.line(call, result, prefix, duration_ns if self.durations else None))

    def write(self, text):
        print(text, file=sys.stdout if self.to_output else sys.stderr)

    def record(self, ctx, name, args, retval, duration):
        """A call as a JSON object (``--json``): the decoded arguments, the
        result (None for one that did not return), ``duration`` in ns."""
        record = {"pid": ctx.pid, "tid": ctx.tid, "ts": ctx.timestamp, "event": ctx.event, "name": name,
                  "args": [None if a.kind == "ellipsis" else jsonlines.jsonable(a.value) for a in args],
                  "retval": jsonlines.jsonable(retval)}
        if duration is not None:
            record["duration"] = duration
        return record

    def write_record(self, record):
        jsonlines.write(record, sys.stdout if self.to_output else sys.stderr)

    def print_summary(self):
        if self.summary is None:
            return
        if self.json:
            if self.summary.calls:
                calls = {name: {"calls": c, "errors": e, "seconds": ns / 1e9} for name, (c, e, ns) in self.summary.calls.items()}
                self.write_record({"pid": os.getpid(), "event": "summary", "calls": calls})
            return
        lines = self.summary.lines()
        if lines:
            if self.several or (self.first_parent is not None and os.getppid() != self.first_parent):
                lines.insert(0, f"[pid {os.getpid()}]")
            self.write("\n".join(lines))


def _params(ctx):
    """``(name, kind, signed)`` of each parameter of the call's prototype,
    ``[None]`` without one."""
    try:
        count = len(ctx.args)
    except MissingPrototype:
        return [None]
    prototype = ctx.prototype
    params = []
    for i in range(count):
        param = prototype.params[i]
        kind, _size, signed, _detail = param.to_data()
        params.append((param.name or f"arg{i}", kind, signed))
    return params


def _wall_clock(monotonic_ns):
    """The wall-clock time of a CLOCK_MONOTONIC instant, as ``-tt`` writes
    it: ``14:02:09.123456``."""
    ns = time.time_ns() - (time.monotonic_ns() - monotonic_ns)
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{fraction // 1000:06d}"


class Summary:
    """``-c``: calls, errors and time by system call, printed as strace's table."""

    HEADER = "% time     seconds  usecs/call     calls    errors "
    RULE = "------ ----------- ----------- --------- --------- ----------------"

    def __init__(self, label="syscall"):
        self.label = label
        self.calls = {}

    def add(self, name, duration_ns, failed):
        """Count one call of *name* that took *duration_ns*."""
        calls, errors, total = self.calls.get(name, (0, 0, 0))
        self.calls[name] = (calls + 1, errors + bool(failed), total + duration_ns)

    def lines(self):
        """The table, most time first; no lines if nothing was counted."""
        if not self.calls:
            return []
        total_ns = sum(t for _, _, t in self.calls.values())
        rows = sorted(self.calls.items(), key=lambda item: (-item[1][2], -item[1][0], item[0]))
        lines = [self.HEADER + self.label, self.RULE]
        for name, (calls, errors, ns) in rows:
            lines.append(self._row(ns * 100 / total_ns if total_ns else 0.0, ns, calls, errors, name))
        lines.append(self.RULE)
        all_calls = sum(c for c, _, _ in self.calls.values())
        all_errors = sum(e for _, e, _ in self.calls.values())
        lines.append(self._row(100.0, total_ns, all_calls, all_errors, "total"))
        return lines

    @staticmethod
    def _row(percent, ns, calls, errors, name):
        return f"{percent:6.2f} {ns / 1e9:11.6f} {ns // 1000 // calls:11d} {calls:9d} {errors or '':>9} {name}"
