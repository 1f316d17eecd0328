#!/usr/bin/env python3
"""Hostile probe scripts: a seeded generator, a checker and a campaign (issue 11).

Each generated script is hostile to the tracer (bad ``ctx`` values on every
probe kind, every kind of exception escaping a handler, huge output, closed
streams, stale ``ctx``, odd predicates, odd top levels, ...) and states in
its header, as JSON, what must happen when it traces its target: the
target's exit status and stdout (those of the untraced run, or the change
the script asks for), the tracebacks its handlers' errors print (file,
line, function, exception), the ``ok`` tags its checked operations must
report, the warnings the tracer must give, and whether the ``process_exit``
marker must be printed. :func:`check` holds a run to that statement and to
what no run may show ("Tool internal crash", a Rust panic, "Fatal Python
error", ...).

The full campaign, from the repository root::

    /usr/bin/python3.11 tests/hostile_scripts.py --seed 1 --count 300 --jobs 2 [--keep DIR]

and one script of it, with its text and output::

    /usr/bin/python3.11 tests/hostile_scripts.py --seed 1 --index 17

``tests/test_hostile_scripts.py`` runs a fixed seed and 60 scripts in the
normal suite.

Extending: a new probe kind is one entry of :data:`PROBE_KINDS` (its
fields, where it fires on each target, whether this version runs it); a
new hostile operation is one entry of :data:`OPS` (or of
:data:`ESCAPES` for an exception that leaves a handler).
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Every handler line starts with this, so that it can be told from the target's.
PREFIX = "[hs] "

#: What no run may show on stderr.
CRASH_MARKERS = (
    "Tool internal crash",
    "panicked",
    "Fatal Python error",
    "Segmentation fault",
    "Cannot correctly handle",
    "Tool stack overflow",
    "Internal Error",
    "Unrecoverable error",
    "lost sys.stderr",
)

#: The python3 target's program: "ppid-magic" is True only when getppid is changed to 4242.
PYTHON_PROGRAM = (
    'import os, json; print(json.dumps({"a": [1, 2, 3]})); '
    'print("ppid-magic", os.getppid() == 4242); print("done")'
)


# ---------------------------------------------------------------------------
# Targets: what runs, and which sites fire there (at least once: "rare" ones
# at most a few dozen times, "hot" ones hundreds or thousands of times)


@dataclass(frozen=True)
class Target:
    name: str
    #: argv, given the fixture paths (see :func:`fixture`).
    argv: object
    functions: dict
    syscalls: dict
    #: how many threads it starts (thread_start/thread_exit events)
    threads: int = 0
    #: its exit status untraced
    status: int = 0


TARGETS = {
    "ls": Target(
        "ls",
        lambda fx: ["/bin/ls", "-l", fx["dir"]],
        functions={"setlocale": "rare", "opendir": "rare", "closedir": "rare", "isatty": "rare",
                   "fflush": "rare", "realloc": "rare", "calloc": "rare",
                   "malloc": "hot", "free": "hot", "strlen": "hot", "getenv": "hot", "strcmp": "hot"},
        syscalls={"write": "rare", "getdents64": "rare", "read": "rare", "brk": "rare", "ioctl": "rare",
                  "openat": "hot", "close": "hot", "mmap": "hot", "newfstatat": "hot"},
    ),
    "cat": Target(
        "cat",
        lambda fx: ["/bin/cat", fx["file"]],
        functions={"setlocale": "rare", "fflush": "rare", "fclose": "rare", "realloc": "rare",
                   "textdomain": "rare", "malloc": "hot", "free": "hot", "strlen": "hot", "getenv": "hot"},
        syscalls={"write": "rare", "read": "rare", "fadvise64": "rare", "brk": "rare",
                  "openat": "hot", "close": "hot", "mmap": "hot"},
    ),
    "python3": Target(
        "python3",
        lambda fx: ["/usr/bin/python3", "-c", PYTHON_PROGRAM],
        functions={"setlocale": "rare", "opendir": "rare", "closedir": "rare", "fflush": "rare",
                   "getenv": "rare", "isatty": "rare", "malloc": "hot", "free": "hot", "realloc": "hot"},
        syscalls={"getppid": "rare", "write": "rare", "brk": "rare", "getdents64": "rare",
                  "mmap": "hot", "openat": "hot", "close": "hot", "read": "hot", "newfstatat": "hot"},
    ),
    "threads": Target(
        "threads",
        lambda fx: [fx["targets"] + "/threads", "4"],
        functions={"pthread_create": "rare", "pthread_join": "rare", "work": "rare", "printf": "rare",
                   "calloc": "rare", "free": "rare", "malloc": "rare"},
        syscalls={"clone3": "rare", "write": "rare", "mmap": "rare", "mprotect": "rare", "brk": "rare"},
        threads=4,
    ),
    "workers": Target(
        "workers",
        lambda fx: [fx["targets"] + "/workers", "3", "200", "100"],
        functions={"alpha": "rare", "beta": "rare", "delta": "rare", "worker": "rare", "wor": "rare",
                   "pthread_create": "rare", "printf": "rare", "calloc": "rare", "work": "hot"},
        syscalls={"clone3": "rare", "write": "rare", "mmap": "rare", "mprotect": "rare"},
        threads=3,
    ),
}


# ---------------------------------------------------------------------------
# Probe kinds: one table. A kind that this version refuses (runs=False) is
# generated as a top level that must be refused with exit status 2; when
# it lands, give it runs=True, its fields and its sites.


def _function_sites(target, heat):
    return [f'function_name == "{n}"' for n, h in target.functions.items() if h == heat or heat == "any"]


def _syscall_sites(target, heat):
    return [f'syscall_name == "{n}"' for n, h in target.syscalls.items() if h == heat or heat == "any"]


def _memory_sites(target, heat):
    # Every access of a function the target calls a few times: memory
    # events are many, so never a hot function's. Each function reads (its
    # ret reads the stack) and executes.
    if heat == "hot":
        return []
    return [f'function_name == "{n}"' for n, h in target.functions.items() if h != "hot" and n not in MEMORY_HOT]


#: Functions called rarely whose code loops over memory: threads.c's work()
#: reads its volatile sum 100,000 times a call, far too many events for a
#: handler of costly operations within the campaign's time limit.
MEMORY_HOT = {"work"}


#: Functions of the targets whose code writes no memory (workers.c's
#: `lea 0x14(%rdi),%rax; ret`): no memory_write event is theirs.
NO_WRITES = {"alpha", "beta", "delta", "worker", "wor", "work"}


#: Functions whose own bytes read no memory and branch nowhere: glibc's
#: pthread_join is `mov $1,%r8d; xor %ecx,%ecx; xor %edx,%edx; jmp` into
#: __pthread_clockjoin_ex, which the stripped libc does not name (an
#: instruction's function_name is the symbol whose bytes hold it).
NO_READS = {"pthread_join"}


def _memory_read_sites(target, heat):
    return [p for p in _memory_sites(target, heat) if p.split('"')[1] not in NO_READS]


def _memory_write_sites(target, heat):
    return [p for p in _memory_sites(target, heat) if p.split('"')[1] not in NO_WRITES | NO_READS]


def _branch_sites(target, heat):
    # The branches of functions the target calls a few times, never a hot
    # function's; workers.c's straight-line functions have none.
    return [p for p in _memory_sites(target, heat) if p.split('"')[1] not in NO_WRITES | NO_READS]


def _module_sites(target, heat):
    return ['module_name == "libc.so.6"', 'module_name.like("l*")', None] if heat != "hot" else []


def _thread_sites(target, heat):
    return [None] if target.threads and heat != "hot" else []


def _process_sites(target, heat):
    return [None] if heat != "hot" else []


@dataclass(frozen=True)
class ProbeKind:
    name: str
    runs: bool
    #: sites(target, heat) -> predicates (None: no predicate) that fire on target
    sites: object = None
    #: fields of its ctx beyond event, pid, tid, mem, symbolize
    fields: tuple = ()
    #: of those, the ones a handler may assign
    writable: tuple = ()
    #: an expression for an address of code that cannot be written
    code_addr: str = "next(iter(symbol('malloc')))"
    #: how the decorator is written with a predicate, for refused kinds
    decl: str = ""


MEMORY_FIELDS = ("address", "size", "access", "pc", "instruction", "function_name", "module", "value", "regs",
                 "backtrace")

PROBE_KINDS = {
    "function_entry": ProbeKind(
        "function_entry", True, _function_sites,
        fields=("function", "pc", "function_name", "module", "caller", "args", "prototype", "regs", "backtrace"),
        code_addr="ctx.function",
    ),
    "function_exit": ProbeKind(
        "function_exit", True, _function_sites,
        fields=("function", "pc", "function_name", "module", "caller", "args", "prototype", "regs", "backtrace",
                "retval", "unwound"),
        writable=("retval",), code_addr="ctx.function",
    ),
    "syscall_entry": ProbeKind(
        "syscall_entry", True, _syscall_sites,
        fields=("syscall", "syscall_name", "args", "prototype", "regs", "backtrace", "skip"),
        code_addr="ctx.regs.RIP",
    ),
    "syscall_exit": ProbeKind(
        "syscall_exit", True, _syscall_sites,
        fields=("syscall", "syscall_name", "args", "prototype", "regs", "backtrace", "retval", "errno"),
        writable=("retval",), code_addr="ctx.regs.RIP",
    ),
    "module_load": ProbeKind(
        "module_load", True, _module_sites,
        fields=("module", "module_path", "module_base", "module_end"),
        code_addr="ctx.module_base",
    ),
    "thread_start": ProbeKind("thread_start", True, _thread_sites),
    "thread_exit": ProbeKind("thread_exit", True, _thread_sites),
    "process_exit": ProbeKind("process_exit", True, _process_sites, fields=("exit_code", "signal")),
    "memory_read": ProbeKind(
        "memory_read", True, _memory_read_sites, fields=MEMORY_FIELDS, writable=("value",), code_addr="ctx.pc",
    ),
    "memory_write": ProbeKind(
        "memory_write", True, _memory_write_sites, fields=MEMORY_FIELDS + ("old_value",), writable=("value",),
        code_addr="ctx.pc",
    ),
    "memory_execute": ProbeKind(
        "memory_execute", True, _memory_sites, fields=MEMORY_FIELDS, code_addr="ctx.pc",
    ),
    "branch": ProbeKind(
        "branch", True, _branch_sites,
        fields=("taken", "target", "fallthrough", "pc", "instruction", "condition", "function_name", "module", "regs",
                "backtrace"),
        writable=("taken",), code_addr="ctx.pc",
    ),
}

#: Every field some kind has: reading one a kind lacks is an AttributeError.
#: (Not the methods skip and backtrace: every ctx has them, hasattr() is
#: True, and calling them where the event lacks them is the AttributeError:
#: see "skip-elsewhere" and "backtrace-elsewhere".)
METHODS = {"skip", "backtrace"}
ALL_FIELDS = sorted({f for k in PROBE_KINDS.values() for f in k.fields} - METHODS)


def has(kind, *fields):
    return all(f in PROBE_KINDS[kind].fields for f in fields)


# ---------------------------------------------------------------------------
# Hostile operations in a handler. Each is (tag, applies(kind, site), make(rng, kind) -> (statement, expected)),
# where expected is an exception name (the statement must raise it) or None
# (it must not raise). Each runs in its own try: an unexpected outcome prints
# "BAD tag ...", the expected one records "ok tag", printed at exit.

BAD_WORDS = ["'x'", "1 << 64", "-(1 << 63) - 1", "1.5", "None", "b'\\x00'", "[1]", "10 ** 30", "float('nan')"]
STR_WORD = '"str"'
REGS = ["RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15"]
BAD_REGS = ["XMM0", "rax", "EAX", "FOO", "ZMM31", "RAX_", "AX", "R16", "__class__x"]


def _any(kind, site):
    return True


#: System calls of no parameters: ctx.args[0] is an IndexError there.
NO_ARGS = ("getppid",)


def _args(kind, site):
    return has(kind, "args") and not any(f'"{n}"' in (site or "") for n in NO_ARGS)


def _op(tag, applies, make):
    return (tag, applies, make)


OPS = [
    # ctx.mem with bad addresses and lengths
    _op("mem-null-byte", _any, lambda r, k: ("ctx.mem[0]", "MemoryFault")),
    _op("mem-null-read", _any, lambda r, k: (f"ctx.mem.read({r.choice([0, 8, 4095])}, {r.randint(1, 4096)})", "MemoryFault")),
    _op("mem-top-u64", _any, lambda r, k: ("ctx.mem.u64(0xfffffffffffffffc)", "MemoryFault")),
    _op("mem-kernel-read", _any, lambda r, k: ("ctx.mem.read(0xffff800000000000, 8)", "MemoryFault")),
    _op("mem-null-string", _any, lambda r, k: ("ctx.mem.string(0)", "MemoryFault")),
    _op("mem-null-ptr", _any, lambda r, k: (f"ctx.mem.{r.choice(['ptr', 'i64', 'u32', 'i8'])}(16)", "MemoryFault")),
    _op("mem-negative-length", _any, lambda r, k: (f"ctx.mem.read(_hs_addr(), -{r.randint(1, 1 << 40)})", "OverflowError")),
    _op("mem-huge-length", _any, lambda r, k: (f"ctx.mem.read(_hs_addr(), 1 << {r.randint(27, 62)})", "ValueError")),
    _op("mem-address-past-64-bits", _any, lambda r, k: (f"ctx.mem.read(1 << {r.randint(64, 200)}, 1)", "OverflowError")),
    _op("mem-negative-address", _any, lambda r, k: (f"ctx.mem.read(-{r.randint(1, 1 << 63)}, 1)", "OverflowError")),
    _op("mem-reversed-slice", _any, lambda r, k: ("ctx.mem[_hs_addr() + 8:_hs_addr()]", "TypeError")),
    _op("mem-open-slice", _any, lambda r, k: ("ctx.mem[_hs_addr():]", "TypeError")),
    _op("mem-step-slice", _any, lambda r, k: ("ctx.mem[_hs_addr():_hs_addr() + 8:2]", "TypeError")),
    _op("mem-str-index", _any, lambda r, k: ("ctx.mem['x']", "TypeError")),
    _op("mem-float-length", _any, lambda r, k: ("ctx.mem.read(_hs_addr(), 1.5)", "TypeError")),
    _op("mem-negative-max", _any, lambda r, k: ("ctx.mem.string(_hs_addr(), max=-1)", "OverflowError")),
    _op("mem-write-code", _any, lambda r, k: (f"ctx.mem.write({PROBE_KINDS[k].code_addr}, b'\\xcc')", "MemoryFault")),
    _op("mem-write-null", _any, lambda r, k: (f"ctx.mem.write(0, b'x' * {r.randint(1, 100)})", "MemoryFault")),
    _op("mem-write-str", _any, lambda r, k: ("ctx.mem.write(_hs_buffer(), 'text')", "TypeError")),
    _op("mem-byte-too-big", _any, lambda r, k: (f"ctx.mem[_hs_buffer()] = {r.choice([256, 1 << 70])}", "OverflowError")),
    _op("mem-byte-negative", _any, lambda r, k: ("ctx.mem[_hs_buffer()] = -1", "OverflowError")),
    _op("mem-slice-wrong-length", _any, lambda r, k: ("ctx.mem[_hs_buffer():_hs_buffer() + 4] = b'xx'", "ValueError")),
    _op("mem-roundtrip", _any, lambda r, k: (
        "ctx.mem.write(_hs_buffer(), b'hostile!'); assert _hs_ctypes.string_at(_hs_buffer(), 8) == b'hostile!'; "
        "assert ctx.mem.read(_hs_buffer(), 8) == b'hostile!' and ctx.mem.u8(_hs_buffer()) == 104", None)),
    # fields: read-only, missing, odd helpers
    _op("set-event", _any, lambda r, k: ("ctx.event = 'x'", "AttributeError")),
    _op("set-pid", _any, lambda r, k: (f"ctx.{r.choice(['pid', 'tid'])} = 1", "AttributeError")),
    _op("del-tid", _any, lambda r, k: ("del ctx.tid", "AttributeError")),
    _op("set-mem", _any, lambda r, k: ("ctx.mem = None", "AttributeError")),
    _op("set-new-field", _any, lambda r, k: ("ctx.hostile = 1", "AttributeError")),
    _op("get-missing-field", _any, lambda r, k: ("ctx.no_such_field", "AttributeError")),
    _op("get-other-kinds-field", lambda k, s: any(f not in PROBE_KINDS[k].fields for f in ALL_FIELDS),
        lambda r, k: (f"ctx.{r.choice([f for f in ALL_FIELDS if f not in PROBE_KINDS[k].fields])}", "AttributeError")),
    _op("set-read-only-field", lambda k, s: any(f not in PROBE_KINDS[k].writable for f in PROBE_KINDS[k].fields),
        lambda r, k: (f"ctx.{r.choice([f for f in PROBE_KINDS[k].fields if f not in PROBE_KINDS[k].writable])} = 0",
                      "AttributeError")),
    _op("symbolize-str", _any, lambda r, k: ("ctx.symbolize('x')", "TypeError")),
    _op("symbolize-negative", _any, lambda r, k: ("ctx.symbolize(-1)", "OverflowError")),
    _op("symbolize-huge", _any, lambda r, k: ("ctx.symbolize(1 << 70)", "OverflowError")),
    _op("fields-fine", _any, lambda r, k: (
        f"repr(ctx); dir(ctx); assert ctx.event == {k!r} and ctx.pid == os.getpid(); ctx.symbolize(0)", None)),
    # registers
    _op("reg-bad-name", lambda k, s: has(k, "regs"), lambda r, k: (f"ctx.regs.{r.choice(BAD_REGS)}", "AttributeError")),
    _op("reg-set-bad-name", lambda k, s: has(k, "regs"), lambda r, k: (f"ctx.regs.{r.choice(BAD_REGS)} = 0", "AttributeError")),
    _op("reg-bad-value", lambda k, s: has(k, "regs"),
        lambda r, k: (f"ctx.regs.{r.choice(REGS)} = {r.choice(BAD_WORDS)}", "TypeError")),
    _op("reg-same-value", lambda k, s: has(k, "regs"),
        lambda r, k: ("; ".join(f"ctx.regs.{g} = ctx.regs.{g}" for g in r.sample(REGS + ["RSP", "RFLAGS"], 4)), None)),
    _op("reg-delete", lambda k, s: has(k, "regs"), lambda r, k: (f"del ctx.regs.{r.choice(REGS)}", "AttributeError")),
    _op("reg-rip-refused", lambda k, s: k in ("function_entry", "syscall_entry", "syscall_exit"),
        lambda r, k: ("ctx.regs.RIP = ctx.regs.RIP", "TypeError")),
    _op("reg-rip-same", lambda k, s: k == "function_exit", lambda r, k: ("ctx.regs.RIP = ctx.regs.INSTPTR", None)),
    _op("backtrace-with-argument", lambda k, s: has(k, "backtrace"), lambda r, k: ("ctx.backtrace(5)", "TypeError")),
    _op("backtrace-elsewhere", lambda k, s: not has(k, "backtrace"), lambda r, k: ("ctx.backtrace()", "AttributeError")),
    _op("backtrace-fine", lambda k, s: has(k, "backtrace"),
        lambda r, k: ("assert all(isinstance(a, int) for a in ctx.backtrace()); [ctx.symbolize(a) for a in ctx.backtrace()]", None)),
    _op("entry-invariant", lambda k, s: k == "function_entry",
        lambda r, k: ("assert ctx.mem.ptr(ctx.regs.RSP) == ctx.caller and ctx.regs.RIP == ctx.function", None)),
    _op("syscall-invariant", lambda k, s: k == "syscall_entry", lambda r, k: ("assert ctx.regs.RAX == ctx.syscall", None)),
    # arguments
    _op("args-huge-index", lambda k, s: has(k, "args"), lambda r, k: (f"ctx.args[1 << {r.randint(63, 100)}]", "OverflowError")),
    _op("args-str-index", lambda k, s: has(k, "args"), lambda r, k: ("ctx.args['x']", "TypeError")),
    _op("args-bad-value", _args,
        lambda r, k: (f"ctx.args[{r.randint(0, 2)}] = {r.choice(BAD_WORDS + [STR_WORD])}", "TypeError")),
    _op("args-set-at-exit", lambda k, s: k in ("function_exit", "syscall_exit") and _args(k, s), lambda r, k: ("ctx.args[0] = 0", "TypeError")),
    _op("args-same-value", lambda k, s: k in ("function_entry", "syscall_entry") and _args(k, s),
        lambda r, k: ("ctx.args[0] = ctx.args.raw(0)", None)),
    _op("args-raw-negative", lambda k, s: has(k, "args"), lambda r, k: (f"ctx.args.raw(-{r.randint(1, 9)})", "IndexError")),
    _op("args-delete", _args, lambda r, k: ("del ctx.args[0]", "NotImplementedError")),
    _op("args-past-the-six-kept", lambda k, s: k == "function_exit", lambda r, k: (f"ctx.args[{r.randint(6, 99)}]", "IndexError")),
    _op("args-past-the-prototype", lambda k, s: k.startswith("syscall"), lambda r, k: (f"ctx.args[{r.randint(6, 99)}]", "IndexError")),
    _op("args-no-prototype", lambda k, s: k.startswith("function"), lambda r, k: ("len(ctx.args)", "MissingPrototype")),
    _op("args-fine", lambda k, s: k.startswith("syscall"), lambda r, k: ("len(ctx.args); list(ctx.args); repr(ctx.args); str(ctx.prototype)", None)),
    # return values, errno, skip
    _op("retval-bad-value", lambda k, s: "retval" in PROBE_KINDS[k].writable,
        lambda r, k: (f"ctx.retval = {r.choice(BAD_WORDS)}", "TypeError")),
    _op("retval-same-value", lambda k, s: "retval" in PROBE_KINDS[k].writable, lambda r, k: ("ctx.retval = ctx.retval", None)),
    _op("retval-delete", lambda k, s: "retval" in PROBE_KINDS[k].writable, lambda r, k: ("del ctx.retval", "AttributeError")),
    _op("errno-fine", lambda k, s: k == "syscall_exit",
        lambda r, k: ("assert ctx.errno == (-ctx.retval if -4096 < ctx.retval < 0 else 0)", None)),
    _op("skip-bad-value", lambda k, s: k == "syscall_entry", lambda r, k: (f"ctx.skip({r.choice(BAD_WORDS)})", "TypeError")),
    _op("skip-bad-call", lambda k, s: k == "syscall_entry",
        lambda r, k: (r.choice(["ctx.skip()", "ctx.skip(0, 0)", "ctx.skip(retval='x')", "ctx.skip(nope=0)"]), "TypeError")),
    _op("skip-elsewhere", lambda k, s: k != "syscall_entry", lambda r, k: ("ctx.skip(0)", "AttributeError")),
    _op("module-fine", lambda k, s: k == "module_load",
        lambda r, k: ("assert ctx.mem.read(ctx.module_base, 4) == b'\\x7fELF' and ctx.module_end > ctx.module_base "
                      "and module(ctx.module_base) in (ctx.module, None)", None)),
    _op("exit-fine", lambda k, s: k == "process_exit", lambda r, k: ("assert ctx.exit_code == _HS_STATUS and ctx.signal is None", None)),
    # what a handler cannot do
    _op("fork-refused", _any, lambda r, k: (r.choice(["os.fork()", "os.forkpty()", "import pty; pty.fork()"]), "RuntimeError")),
    _op("thread-refused", _any, lambda r, k: (r.choice([
        "import threading; threading.Thread(target=print).start()",
        "import _thread; _thread.start_new_thread(print, ())",
        "import threading; threading.Timer(0.01, print).start()"]), "RuntimeError")),
    _op("late-probe-refused", _any, lambda r, k: (
        f"{r.choice([n for n, pk in PROBE_KINDS.items() if pk.runs])}()(lambda c: None)", "RuntimeError")),
    _op("subprocess-fine", _any, lambda r, k: (
        "import subprocess; assert subprocess.run(['/bin/true'], stdin=subprocess.DEVNULL, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0", None)),
    _op("heavy-import", _any, lambda r, k: (
        "import " + ", ".join(r.sample(["asyncio", "decimal", "email.mime.text", "xml.dom.minidom", "sqlite3", "ctypes",
                                        "unittest", "http.client", "concurrent.futures", "multiprocessing", "logging.handlers",
                                        "json", "zlib", "hashlib", "argparse", "pickletools", "difflib"], 4)), None)),
    _op("missing-import", _any, lambda r, k: ("import no_such_module_hostile", "ModuleNotFoundError")),
    _op("library-error", _any, lambda r, k: (r.choice(["json.loads('{')", "int('x')", "bytes.fromhex('zz')"]), "ValueError")),
    _op("stdout-bytes", _any, lambda r, k: ("sys.stdout.write(b'x')", "TypeError")),
]

#: Operations that need sys.stdout open.
STDOUT_OPS = {"stdout-bytes"}

#: Operations too slow for hot sites (many thousands of events).
HEAVY_OPS = {"fork-refused", "thread-refused", "subprocess-fine", "heavy-import", "missing-import", "late-probe-refused",
             "mem-roundtrip", "backtrace-fine", "mem-huge-length"}


# ---------------------------------------------------------------------------
# Exceptions that escape a handler (its last statement). Each is
# (name, lines, exception display, index of the line that raises,
# function of that line ("" is the handler), tracebacks printed, heavy).


@dataclass(frozen=True)
class Escape:
    name: str
    lines: tuple
    display: str
    line: int
    where: str = ""
    tracebacks: int = 1
    heavy: bool = False


ESCAPES = [
    Escape("value-error", ("raise ValueError('hostile value')",), "ValueError: hostile value", 0),
    Escape("keyboard-interrupt", ("raise KeyboardInterrupt",), "KeyboardInterrupt", 0),
    Escape("sys-exit", ("sys.exit(3)",), "SystemExit: 3", 0),
    Escape("system-exit-bare", ("raise SystemExit",), "SystemExit", 0),
    Escape("recursion", ("def _hs_rec(n):", "    return _hs_rec(n + 1)", "_hs_rec(0)"),
           "RecursionError: maximum recursion depth exceeded", 1, "_hs_rec", heavy=True),
    Escape("recursion-raised", ("raise RecursionError('fake')",), "RecursionError: fake", 0),
    Escape("memory-error-raised", ("raise MemoryError('hostile')",), "MemoryError: hostile", 0),
    Escape("memory-error-real", ("bytearray(1 << 62)",), "MemoryError", 0),
    Escape("base-exception", ("raise _HsBase('base')",), "_HsBase: base", 0),
    Escape("generator-exit", ("raise GeneratorExit('gen')",), "GeneratorExit: gen", 0),
    Escape("stop-iteration", ("next(iter(()))",), "StopIteration", 0),
    Escape("huge-message", ("raise ValueError('m' * 1_000_000)",), "ValueError: mmmmmmmm", 0, heavy=True),
    Escape("json", ("json.loads('{')",), "json.decoder.JSONDecodeError: Expecting property name", 0),
    Escape("missing-module", ("import no_such_module_hostile",), "ModuleNotFoundError: No module named 'no_such_module_hostile'", 0),
    Escape("str-fails", ("raise _HsBadStr()",), "_HsBadStr: <exception str() failed>", 0),
    Escape("not-an-exception", ("raise 5",), "TypeError: exceptions must derive from BaseException", 0),
    Escape("assert", ("assert False, 'hostile assert'",), "AssertionError: hostile assert", 0),
    Escape("lambda", ("(lambda: 1 / 0)()",), "ZeroDivisionError: division by zero", 0, "<lambda>"),
    Escape("chained", ("try:", "    {}['k']", "except KeyError:", "    raise ValueError('chained')"),
           "ValueError: chained", 3, tracebacks=2),
    Escape("cyclic-cause", ("_e = ValueError('cyc'); _f = KeyError('cyc2'); _e.__cause__ = _f; _f.__cause__ = _e",
                            "raise _e"), "ValueError: cyc", 1),
    Escape("exception-group", ("raise ExceptionGroup('grp', [ValueError('a'), KeyError('b')])",),
           "ExceptionGroup: grp (2 sub-exceptions)", 0),
    Escape("os-error", ("open('/no/such/dir/hostile')",), "FileNotFoundError: [Errno 2] No such file or directory", 0),
]


# ---------------------------------------------------------------------------
# Predicted changes: what the script changes on purpose, and how the output changes.


@dataclass(frozen=True)
class Effect:
    name: str
    target: str
    code: str
    #: ("empty",) or ("replace", old, new) of the target's stdout
    stdout: tuple
    status: int = 0
    stderr_has: tuple = ()
    #: sites that no longer fire with the change
    lost_sites: tuple = ()


EFFECTS = [
    Effect("skip-write", "cat", """\
@syscall_entry(syscall_name == "write")
def _hs_swallow(ctx):
    if ctx.args[0] == 1:
        ctx.skip(ctx.args[2])
""", ("empty",)),
    Effect("skip-write", "ls", """\
@syscall_entry(syscall_name == "write")
def _hs_swallow(ctx):
    if ctx.args[0] == 1:
        ctx.skip(len(ctx.args[1]))
""", ("empty",)),
    Effect("missing-file", "cat", """\
import errno as _hs_errno
@syscall_entry(syscall_name == "openat")
def _hs_missing(ctx):
    if isinstance(ctx.args[1], str) and ctx.args[1].endswith("file.txt"):
        ctx.skip(-_hs_errno.ENOENT)
""", ("empty",), 1, ("No such file or directory",), ("fadvise64",)),
    Effect("args", "workers", """\
@function_entry(function_name == "alpha")
def _hs_alpha(ctx):
    ctx.args[0] = ctx.args[0] + 100
""", ("replace", "names 165", "names 265")),
    Effect("retval", "workers", """\
@function_exit(function_name == "beta")
def _hs_beta(ctx):
    ctx.retval = ctx.retval + 100
""", ("replace", "names 165", "names 265")),
    Effect("rax", "workers", """\
@function_exit(function_name == "delta")
def _hs_delta(ctx):
    ctx.regs.RAX = 133
""", ("replace", "names 165", "names 265")),
    Effect("syscall-retval", "python3", """\
@syscall_exit(syscall_name == "getppid")
def _hs_ppid(ctx):
    ctx.retval = 4242
""", ("replace", "ppid-magic False", "ppid-magic True")),
]


# ---------------------------------------------------------------------------
# Top levels that stop everything: exit status 2, the target never runs.
# (name, code, what stderr must hold, line of the error in code (or None), exception display or None)

FATAL_TOPS = [
    ("raise", "raise ValueError('top level')", 0, "ValueError: top level"),
    ("keyboard-interrupt", "raise KeyboardInterrupt", 0, "KeyboardInterrupt"),
    ("base-exception", "raise _HsBase('top')", 0, "_HsBase: top"),
    ("sys-exit-0", "sys.exit(0)", 0, "SystemExit: 0"),
    ("sys-exit-7", "sys.exit(7)", 0, "SystemExit: 7"),
    ("fork", "os.fork()", 0, "RuntimeError: the script runs inside the target and cannot fork it"),
    ("thread", "import threading\nthreading.Thread(target=print).start()", 1, "RuntimeError: handlers run on the target's threads"),
    ("deep-predicate", "function_entry(" + "~" * 101 + "(function_name == 'malloc'))(lambda c: None)", 0,
     "ValueError: function_entry probe '<lambda>': predicate nested more than 100 levels deep"),
    ("missing-module", "import no_such_module_hostile", 0, "ModuleNotFoundError: No module named 'no_such_module_hostile'"),
    ("bad-predicate-variable", "syscall_entry(function_name == 'malloc')(lambda c: None)", 0,
     "ValueError: syscall_entry probe '<lambda>': predicate uses function_name, which syscall_entry does not provide"),
    ("bad-handler", "function_entry(function_name == 'malloc')(lambda: None)", 0, "TypeError"),
    ("truth-value", "function_entry((function_name == 'malloc') and (function_name == 'free'))(lambda c: None)", 0,
     "TypeError: a predicate has no truth value"),
    ("unknown-syscall", "syscall_entry(syscall_name == 'opnat')(lambda c: None)", 0, "ValueError: syscall_entry probe '<lambda>': no system call is named 'opnat'"),
]


# ---------------------------------------------------------------------------
# Generation


@dataclass
class Script:
    seed: int
    index: int
    target: str
    text: str
    expect: dict
    #: handler output to a file (-o) instead of stdout
    out_file: bool = False


@dataclass
class _Builder:
    rng: random.Random
    target: Target
    top: list = field(default_factory=list)
    probes: list = field(default_factory=list)   # (decorator lines, name, body lines, escape or None)
    exit_lines: list = field(default_factory=list)
    expect: dict = field(default_factory=dict)
    names: int = 0
    #: a handler closes sys.stdout: nothing else may write to it
    closes_stdout: bool = False
    #: sites that do not fire with the script's effect
    lost_sites: tuple = ()

    def name(self, stem):
        self.names += 1
        return f"h{self.names}_{stem.replace('-', '_')}"


HEADER = '''\
import os, sys, json
_P = {prefix!r}
_HS_STATUS = {status}
_HS_OK = set()
_HS_BAD = set()
_HS_KEPT = {{}}
_HS_OBJ = bytearray(b"hostile object")
_hs_ctypes = None
_hs_buf = None
class _HsBase(BaseException):
    pass
class _HsBadStr(Exception):
    def __str__(self):
        raise RuntimeError("str fails")
def _out(text):
    for stream in (sys.stdout, sys.stderr):
        try:
            print(_P + text, file=stream, flush=True)
            return
        except Exception:
            pass
def _ok(tag):
    _HS_OK.add(tag)
def _bad(tag, what):
    if tag not in _HS_BAD:
        _HS_BAD.add(tag)
        _out("BAD " + tag + ": " + what[:300])
def _hs_addr():
    return id(_HS_OBJ)
def _hs_buffer():
    global _hs_ctypes, _hs_buf
    if _hs_buf is None:
        import ctypes
        _hs_ctypes = ctypes
        _hs_buf = ctypes.create_string_buffer(64)
    return _hs_ctypes.addressof(_hs_buf)
'''


def _checked(tag, stmt, expected):
    """Lines that run *stmt* and record whether it did what was expected."""
    lines = ["try:"] + ["    " + s for s in stmt.split("\n")]
    if expected:
        lines += [f"except {expected}:", f"    _ok({tag!r})",
                  "except BaseException as _e:", f"    _bad({tag!r}, 'raised ' + type(_e).__name__ + ': ' + str(_e))",
                  "else:", f"    _bad({tag!r}, 'no {expected}')"]
    else:
        lines += ["except BaseException as _e:", f"    _bad({tag!r}, 'raised ' + type(_e).__name__ + ': ' + str(_e))",
                  "else:", f"    _ok({tag!r})"]
    return lines


def _odd_predicate(rng, site):
    """*site* (a predicate that fires), made odd but still firing."""
    if site is None:
        return None
    choice = rng.randrange(6)
    if choice == 0:
        depth = rng.choice([2, 50, 97])
        return "~" * depth + f"~({site})" if depth % 2 else "~" * depth + f"({site})"
    if choice == 1:
        terms = [f'function_name == "no_such_{i}"' if site.startswith("function") else
                 f'syscall_num == {100000 + i}' if site.startswith("syscall") else
                 f'module_name == "nosuch{i}.so"' for i in range(rng.choice([10, 600]))]
        terms.insert(rng.randrange(len(terms)), f"({site})")
        return " | ".join(f"({t})" for t in terms)
    if choice == 2:
        return f"({site}) & (process_id == os.getpid()) & (thread_id >> range(1, 1 << 62))"
    if choice == 3:
        return f"({site}) & ~(process_id == 0)"
    return site


def _add_probe(b, kind_name, heat):
    rng = b.rng
    kind = PROBE_KINDS[kind_name]
    sites = [s for s in kind.sites(b.target, heat) if not any(f'"{n}"' in (s or "") for n in b.lost_sites)]
    if not sites:
        return False
    site = rng.choice(sites)
    pred = _odd_predicate(rng, site) if rng.random() < 0.4 else site
    name = b.name(kind_name)
    ops = [o for o in OPS if o[1](kind_name, site) and not (heat == "hot" and o[0] in HEAVY_OPS)
           and not (b.closes_stdout and o[0] in STDOUT_OPS)]
    body, tags = [], []
    for tag, _, make in rng.sample(ops, min(len(ops), rng.randint(1, 6))):
        stmt, expected = make(rng, kind_name)
        full = f"{name}:{tag}"
        body += _checked(full, stmt, expected)
        tags.append(full)
    # keep the ctx (or a part) for later: it must raise then
    if rng.random() < 0.2 and _stale_uses(kind_name, site):
        part, use = rng.choice(_stale_uses(kind_name, site))
        body += [f"if {name + ':stale'!r} not in _HS_KEPT:", f"    _HS_KEPT[{name + ':stale'!r}] = (ctx{part}, {use!r})"]
        b.expect.setdefault("ok", []).append(f"{name}:stale")
    escape = None
    if rng.random() < 0.35:
        escapes = [e for e in ESCAPES if not (heat == "hot" and e.heavy)]
        escape = rng.choice(escapes)
    if rng.random() < 0.1 and heat != "hot" and not b.closes_stdout:
        body += _output_lines(b)
    if not body and escape is None:
        body = ["pass"]
    b.probes.append((pred, kind_name, name, body, escape))
    b.expect.setdefault("ok", []).extend(tags)
    return True


def _stale_uses(kind, site=None):
    uses = []
    if has(kind, "args") and _args(kind, site):
        uses += [("", "k.args[0]"), (".args", "k[0]"), (".args", "k.raw(0)")]
    if has(kind, "regs"):
        uses += [("", "k.regs.RAX"), (".regs", "k.RSP"), (".regs", "setattr(k, 'RBX', 0)"), ("", "k.backtrace()")]
    if has(kind, "retval"):
        uses += [("", "k.retval"), ("", "setattr(k, 'retval', 0)")]
    if kind == "syscall_entry":
        uses += [("", "k.skip(0)")]
    return uses


def _output_lines(b):
    rng = b.rng
    choice = rng.randrange(6)
    if choice == 0:
        n = rng.choice([100_000, 1_000_000, 3_000_000])
        b.expect.setdefault("long_lines", []).append(n)
        return [f"if {n} not in _HS_OK:", f"    _HS_OK.add({n})", f"    _out('big ' + 'x' * {n})"]
    if choice == 1:
        return ["for _i in range(200):", "    _out(f'spam {_i}')"]
    if choice == 2:
        return ["print(_P + 'to stderr ' + 'y' * 1000, file=sys.stderr)"]
    if choice == 3:
        return ["print(_P + 'partial', end='')", "print(_P + 'weird \\udcff \\x00 \\x1b[0m é ' + '\\u2028')"]
    if choice == 4:
        return ["os.write(sys.stdout.fileno(), (_P + 'raw write\\n').encode())"]
    return ["sys.stdout.flush(); sys.stderr.flush(); print(_P + 'multi\\n' + _P + 'line')"]


def generate(seed, index):
    """The script *index* of the campaign *seed*: a :class:`Script`."""
    rng = random.Random(f"{seed}:{index}")
    target = TARGETS[rng.choice(sorted(TARGETS))]
    b = _Builder(rng, target)
    status = target.status
    expect = b.expect
    expect.update(status=status, stdout=["same"], target_runs=True, exit_marker=True, stderr_has=[], tracebacks=[])
    effect = None

    b.closes_stdout = rng.random() < 0.08
    fatal = rng.random() < 0.1
    refused = not fatal and rng.random() < 0.04 and any(not pk.runs for pk in PROBE_KINDS.values())
    if not fatal and rng.random() < 0.2:
        effects = [e for e in EFFECTS if e.target == target.name]
        if effects:
            effect = rng.choice(effects)
            expect.update(status=effect.status, stdout=list(effect.stdout))
            expect["stderr_has"] += list(effect.stderr_has)
            status = effect.status
            b.lost_sites = effect.lost_sites

    # top-level oddities that do not stop the script
    top = b.top
    if rng.random() < 0.3:
        top += _checked("top:fork-refused", rng.choice(["os.fork()", "os.forkpty()"]), "RuntimeError")
        expect.setdefault("ok", []).append("top:fork-refused")
    if rng.random() < 0.2:
        top += ["import " + ", ".join(rng.sample(["asyncio", "decimal", "email", "xml.etree.ElementTree", "sqlite3",
                                                 "ctypes", "unittest", "concurrent.futures", "multiprocessing"], 3))]
    if rng.random() < 0.2:
        top += _checked("top:symbol-empty", "assert len(symbol('malloc')) == 0 and module(0) is None", None)
        expect.setdefault("ok", []).append("top:symbol-empty")

    # probes that fire
    kinds = [k for k, pk in PROBE_KINDS.items() if pk.runs]
    for _ in range(rng.randint(1, 4)):
        for _attempt in range(10):
            if _add_probe(b, rng.choice(kinds), "hot" if rng.random() < 0.3 else "rare"):
                break

    # many probes on one site
    if rng.random() < 0.15:
        n = rng.choice([64, 70, 200, 1200])
        site = rng.choice([s for s in _syscall_sites(target, "rare") + _function_sites(target, "rare")
                           if not any(f'"{n}"' in s for n in b.lost_sites)])
        kind = "syscall_entry" if site.startswith("syscall") else "function_entry"
        top += [f"_HS_COUNTS = [0] * {n}",
                f"def _hs_counter(i):",
                f"    def _count(ctx):",
                f"        _HS_COUNTS[i] += 1",
                f"    _count.__name__ = f'count{{i}}'",
                f"    return _count",
                f"for _i in range({n}):",
                f"    {kind}({site})(_hs_counter(_i))"]
        b.exit_lines += _checked("exit:many-probes", "assert len(set(_HS_COUNTS)) == 1 and _HS_COUNTS[0] > 0, _HS_COUNTS[:5]", None)
        expect.setdefault("ok", []).append("exit:many-probes")

    # probes that never match: warned about at the end
    if rng.random() < 0.2:
        for _ in range(rng.randint(1, 3)):
            name = b.name("never")
            pred, why = rng.choice([
                (f'function_name == "no_such_function_{rng.randrange(10**6)}"', "no function named"),
                ('function_name.like("zzq_no_such_*")', "no function name matched"),
                ('(function_name == "malloc") & (function_name == "free")', "no function matched"),
                ('(syscall_name == "write") & (syscall_name == "read")', "no system call matched"),
            ])
            kind = "syscall_entry" if pred.startswith("(syscall") else "function_entry"
            top += [f"@{kind}({pred})", f"def {name}(ctx):", "    _bad('never', 'a probe that cannot match ran')", ""]
            expect["stderr_has"].append(f"[!] probe {name} never matched: {why}")

    # a stream closed by a handler (the other one still works)
    if b.closes_stdout:
        stream = rng.choice(["stdout"])  # closing stderr loses reports: see the campaign's findings
        site = rng.choice([s for s in _syscall_sites(target, "rare") if not any(f'"{n}"' in s for n in b.lost_sites)])
        name = b.name("closer")
        top += [f"@syscall_exit({site})", f"def {name}(ctx):", f"    sys.{stream}.close()", ""]

    # stale ctx: used at exit, it must raise RuntimeError
    b.exit_lines += [
        "for _tag, (_k, _use) in _HS_KEPT.items():",
        "    try:",
        "        eval(_use, {'k': _k})",
        "    except RuntimeError:",
        "        _ok(_tag)",
        "    except BaseException as _e:",
        "        _bad(_tag, 'stale ' + _use + ' raised ' + repr(_e))",
        "    else:",
        "        _bad(_tag, 'stale ' + _use + ' did not raise')",
    ]

    text_lines = []
    header = HEADER.format(prefix=PREFIX, status=status)
    text_lines += header.splitlines()
    text_lines += top
    if effect:
        text_lines += effect.code.splitlines()
    for pred, kind_name, name, body, escape in b.probes:
        deco = f"@{kind_name}({pred})" if pred is not None else rng.choice([f"@{kind_name}", f"@{kind_name}()"])
        text_lines += [deco, f"def {name}(ctx):"]
        text_lines += ["    " + s for s in body]
        if escape:
            first = len(text_lines) + 1  # line number of the escape's first line
            text_lines += ["    " + s for s in escape.lines]
            expect["tracebacks"].append({
                "handler": name, "kind": kind_name, "line": first + escape.line,
                "where": escape.where or name, "display": escape.display, "count": escape.tracebacks,
            })
        text_lines.append("")

    if fatal:
        what, code, line, display = rng.choice(FATAL_TOPS)
        first = len(text_lines) + 1
        text_lines += code.splitlines()
        expect.update(status=2, stdout=["empty"], target_runs=False, exit_marker=False, ok=[], long_lines=[],
                      stderr_has=[], fatal=what)
        expect["tracebacks"] = [{"handler": None, "kind": None, "line": first + line, "where": "<module>",
                                 "display": display, "count": 1}]
    elif refused:
        kind = rng.choice([k for k, pk in PROBE_KINDS.items() if not pk.runs])
        text_lines += [f"@{PROBE_KINDS[kind].decl}", "def _hs_refused(ctx):", "    pass", ""]
        expect.update(status=2, stdout=["empty"], target_runs=False, exit_marker=False, ok=[], long_lines=[],
                      tracebacks=[], fatal="refused-kind",
                      stderr_has=[f"processtap: this version cannot yet run these probes: {kind} (_hs_refused)"])

    text_lines += ["@process_exit", "def _hs_exit(ctx):"]
    text_lines += ["    " + s for s in b.exit_lines]
    text_lines += ["    for _tag in sorted(t for t in _HS_OK if isinstance(t, str)):",
                   "        _out('ok ' + _tag)",
                   "    _out(f'exit-marker {ctx.exit_code}')"]
    expect["ok"] = sorted(set(expect.get("ok", [])))
    text = (f"# hostile script: seed {seed}, index {index}, target {target.name}\n"
            f"# expect: {json.dumps(expect, sort_keys=True)}\n" + "\n".join(text_lines) + "\n")
    # the header lines shift every line number by 2
    for tb in expect["tracebacks"]:
        tb["line"] += 2
    text = (f"# hostile script: seed {seed}, index {index}, target {target.name}\n"
            f"# expect: {json.dumps(expect, sort_keys=True)}\n" + "\n".join(text_lines) + "\n")
    return Script(seed, index, target.name, text, expect, out_file=rng.random() < 0.3)


def expectation(text):
    """The expectation a script's text states in its header."""
    for line in text.splitlines()[:3]:
        if line.startswith("# expect: "):
            return json.loads(line[len("# expect: "):])
    raise ValueError("the script states no expectation")


# ---------------------------------------------------------------------------
# Running and checking


def processtap_path():
    return Path(os.environ.get("PTAP_PROCESSTAP") or REPO_ROOT / "target" / "release" / "processtap")


def targets_path():
    override = os.environ.get("PTAP_TARGETS_DIR")
    if override:
        return Path(override)
    for candidate in (REPO_ROOT / "build" / "targets", REPO_ROOT / "build" / "tests" / "targets"):
        if (candidate / "workers").is_file() and (candidate / "threads").is_file():
            return candidate
    raise FileNotFoundError("no built test targets (run scripts/bootstrap, or set PTAP_TARGETS_DIR)")


def fixture(base, targets_dir=None):
    """Make the files the targets read under *base*; return their paths."""
    base = Path(base)
    (base / "fixture" / "dir").mkdir(parents=True, exist_ok=True)
    for name in ("alpha.txt", "beta.txt", "gamma.txt"):
        path = base / "fixture" / "dir" / name
        if not path.exists():
            path.write_text(f"{name} data\n")
    os.utime(base / "fixture" / "dir", (1_700_000_000, 1_700_000_000))
    for name in ("alpha.txt", "beta.txt", "gamma.txt"):
        os.utime(base / "fixture" / "dir" / name, (1_700_000_000, 1_700_000_000))
    (base / "fixture" / "file.txt").write_text("one\ntwo\nthree\n")
    return {"dir": str(base / "fixture" / "dir"), "file": str(base / "fixture" / "file.txt"),
            "targets": str(targets_dir or targets_path())}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    out_file: str = ""
    timed_out: bool = False
    seconds: float = 0.0
    args: list = field(default_factory=list)


def _environment():
    """The targets' environment: without PYTHON* variables (PYTHONUNBUFFERED
    would make the python3 target write its lines in pieces, between which
    handler lines may come) or DYNAMORIO_* ones."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTHON", "DYNAMORIO_")) and k != "PTAP_PROCESSTAP"}


def _run(args, timeout):
    start = time.monotonic()
    process = subprocess.Popen([str(a) for a in args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True, env=_environment())
    timed_out = False
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(process.pid, 9)
        except ProcessLookupError:
            pass
        out, err = process.communicate()
    code = process.returncode
    if code < 0:
        code = 128 - code
    return Run(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), timed_out=timed_out,
               seconds=time.monotonic() - start)


_baselines = {}


def baseline(target_name, fx):
    """The untraced run of a target (cached)."""
    if target_name not in _baselines:
        _baselines[target_name] = _run(TARGETS[target_name].argv(fx), 60)
    return _baselines[target_name]


def run_script(script, workdir, fx, timeout=120):
    """Run *script* under processtap in *workdir*; return its :class:`Run`."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"hostile-{script.seed}-{script.index}.ptap"
    path.write_text(script.text)
    options = ["-q"]
    out_path = workdir / f"hostile-{script.seed}-{script.index}.out"
    if script.out_file:
        options += ["-o", str(out_path)]
    args = [processtap_path(), *options, path, "--", *TARGETS[script.target].argv(fx)]
    run = _run(args, timeout)
    run.args = [str(a) for a in args]
    if script.out_file and out_path.exists():
        run.out_file = out_path.read_text(errors="replace")
    return path, run


def _handler_messages(run):
    """What the handlers printed (every piece after a PREFIX), from stdout, stderr and -o."""
    messages = []
    for text in (run.stdout, run.stderr, run.out_file):
        for line in text.split("\n"):
            if PREFIX in line:
                messages += [piece for piece in line.split(PREFIX)[1:]]
    return messages


def _target_stdout(run, script):
    if script.out_file:
        return run.stdout
    return "\n".join(line for line in run.stdout.split("\n") if not line.startswith(PREFIX))


def check(script, path, run, base):
    """The problems of *run* of *script* (at *path*) against the untraced *base*: a list of str."""
    expect = expectation(script.text)
    problems = []
    stderr = run.stderr
    if run.timed_out:
        problems.append(f"timed out after {run.seconds:.0f} s")
    for marker in CRASH_MARKERS:
        if marker in stderr or marker in run.stdout:
            problems.append(f"{marker!r} in the output")
    # exit status
    want = base.returncode if expect["status"] == "same" else expect["status"]
    if base.returncode != TARGETS[script.target].status:
        problems.append(f"generator: the untraced {script.target} exited with {base.returncode}")
    if run.returncode != want:
        problems.append(f"exit status {run.returncode}, expected {want}")
    # the target's stdout
    got = _target_stdout(run, script)
    how = expect["stdout"]
    if how[0] == "same":
        wanted = base.stdout
    elif how[0] == "empty":
        wanted = ""
    else:
        if how[1] not in base.stdout:
            problems.append(f"generator: {how[1]!r} is not in the untraced output")
        wanted = base.stdout.replace(how[1], how[2])
    if got.rstrip("\n") != wanted.rstrip("\n"):
        problems.append(f"the target's stdout changed:\n--- expected\n{wanted}--- got\n{got}")
    if how[0] == "same" and base.stderr and base.stderr not in stderr:
        problems.append("the target's stderr is not in the traced stderr")
    # handler output
    messages = _handler_messages(run)
    bad = [m for m in messages if m.startswith("BAD ")]
    if bad:
        problems.append("checked operations failed:\n  " + "\n  ".join(m[:400] for m in bad))
    oks = {m[3:].strip() for m in messages if m.startswith("ok ")}
    missing = [t for t in expect.get("ok", []) if t not in oks]
    if missing:
        problems.append(f"ok tags missing (the handler did not run, or the exit handler did not): {missing}")
    for n in expect.get("long_lines", []):
        if not any(m.rstrip("\n") == "big " + "x" * n for m in messages):
            problems.append(f"the {n}-character line is not there whole")
    markers = [m for m in messages if m.startswith("exit-marker ")]
    if expect["exit_marker"]:
        if not markers:
            problems.append("the process_exit marker is missing")
        elif markers[-1].split()[1] != str(want):
            problems.append(f"process_exit saw exit code {markers[-1].split()[1]}, expected {want}")
    elif markers:
        problems.append("the process_exit marker ran, but the target must not have run")
    if not expect["target_runs"] and got.strip():
        problems.append("the target ran")
    # warnings and errors the tracer must give
    for text in expect["stderr_has"]:
        if text not in stderr:
            problems.append(f"stderr lacks {text!r}")
    expected_tracebacks = 0
    for tb in expect["tracebacks"]:
        expected_tracebacks += tb["count"]
        where = f'File "{path}", line {tb["line"]}, in {tb["where"]}'
        if where not in stderr:
            problems.append(f"no traceback line {where!r}")
        if not re.search(r"^[ |+]*" + re.escape(tb["display"]), stderr, re.M):
            problems.append(f"no exception line {tb['display']!r}")
        if tb["handler"]:
            first = f"[!] handler {tb['handler']} ({tb['kind']}) raised an exception;"
            if first not in stderr:
                problems.append(f"no report {first!r}")
            if not re.search(rf"^\[!\] handler {re.escape(tb['handler'])} \({tb['kind']}\) raised \d+ exception\(s\)",
                             stderr, re.M):
                problems.append(f"no count at exit for {tb['handler']}")
    count = stderr.count("Traceback (most recent call last):")
    if count != expected_tracebacks:
        problems.append(f"{count} tracebacks on stderr, expected {expected_tracebacks}")
    if "/ptap/" in stderr and 'File "' in stderr and re.search(r'File "[^"]*/ptap/[^"]*\.py"', stderr):
        problems.append("a traceback shows ptap's own frames")
    return problems


# ---------------------------------------------------------------------------
# The campaign


def report(script, path, run, problems, seed_count_hint=""):
    """A failure report: how to reproduce it, the problems, the script, the output."""
    return (
        f"=== hostile script seed {script.seed} index {script.index} (target {script.target}) FAILED\n"
        f"reproduce: /usr/bin/python3.11 tests/hostile_scripts.py --seed {script.seed} --index {script.index}\n"
        f"command: {' '.join(shlex_quote(a) for a in run.args)}\n"
        f"exit status {run.returncode}, {run.seconds:.1f} s\n"
        f"--- problems\n" + "\n".join(f"- {p}" for p in problems) + "\n"
        f"--- script\n{script.text}"
        f"--- stdout\n{_clip(run.stdout)}\n--- stderr\n{_clip(run.stderr)}\n"
        + (f"--- -o file\n{_clip(run.out_file)}\n" if script.out_file else "")
    )


def shlex_quote(arg):
    import shlex

    return shlex.quote(str(arg))


def _clip(text, limit=6000):
    if len(text) <= limit:
        return text
    return text[: limit // 2] + f"\n[... {len(text) - limit} characters left out ...]\n" + text[-limit // 2:]


def run_one(seed, index, workdir, fx):
    """Generate, run and check one script: (script, path, run, problems)."""
    script = generate(seed, index)
    base = baseline(script.target, fx)
    path, run = run_script(script, workdir, fx)
    return script, path, run, check(script, path, run, base)


def campaign(seed, indices, workdir, jobs=2, fx=None, progress=None):
    """Run the scripts *indices* of *seed*; return the results in order."""
    fx = fx or fixture(workdir)
    for name in TARGETS:
        baseline(name, fx)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_one, seed, i, workdir, fx) for i in indices]
        results = []
        for future in futures:
            results.append(future.result())
            if progress:
                progress(results[-1])
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--start", type=int, default=0, help="first index")
    parser.add_argument("--index", type=int, help="run this one script and show all of it")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", help="keep the scripts and -o files in this directory")
    parser.add_argument("--print", action="store_true", help="print the script(s), do not run")
    args = parser.parse_args(argv)
    indices = [args.index] if args.index is not None else list(range(args.start, args.start + args.count))
    if args.print:
        for i in indices:
            print(generate(args.seed, i).text)
        return 0
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hostile-"))
    workdir.mkdir(parents=True, exist_ok=True)
    failed = []
    start = time.monotonic()

    def progress(result):
        script, path, run, problems = result
        if problems:
            failed.append(result)
            print(report(script, path, run, problems), flush=True)
        elif args.index is not None:
            print(f"--- script\n{script.text}--- stdout\n{_clip(run.stdout)}\n--- stderr\n{_clip(run.stderr)}")

    try:
        results = campaign(args.seed, indices, workdir, jobs=args.jobs, progress=progress)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    slowest = max(results, key=lambda r: r[2].seconds)
    print(f"hostile scripts: seed {args.seed}, {len(results)} run, {len(failed)} failed "
          f"({', '.join(str(r[0].index) for r in failed) or 'none'}); {time.monotonic() - start:.0f} s, "
          f"slowest {slowest[2].seconds:.1f} s (index {slowest[0].index})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
