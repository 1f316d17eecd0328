"""Lifecycle probes: process_exit, thread_start, thread_exit, module_load.

Tests that take ``arch_target`` run on x86-64 and on the same C programs
built with gcc -m32 (function_targets.ARCHES)."""

import os
import signal

import pytest

from conftest import PYTHON, script_lines
from function_targets import arch, arch_target, ftarget  # noqa: F401

# ---------------------------------------------------------------------------
# process_exit

EXIT_SCRIPT = """\
@process_exit
def done(ctx):
    print("[exit]", ctx.event, ctx.exit_code, ctx.signal)
"""


@pytest.mark.parametrize(
    "name, args, exit_code, sig",
    [
        ("hello", [], 0, None),
        ("exit_with", ["3"], 3, None),
        ("exit_with", ["255"], 255, None),
        ("segv", [], 128 + signal.SIGSEGV, signal.SIGSEGV),
    ],
    ids=["hello-0", "exit_with-3", "exit_with-255", "segv-139"],
)
def test_process_exit_sees_the_exit_status(trace, arch_target, run_native, name, args, exit_code, sig):
    native = run_native(arch_target(name), *args)
    assert native.returncode == exit_code, "the test target itself misbehaves"
    result = trace(EXIT_SCRIPT, arch_target(name), *args, options=["-q"])
    assert script_lines(result.stdout, "[exit] ") == [f"process_exit {exit_code} {sig}"], str(result)
    assert result.returncode == exit_code, str(result)


@pytest.mark.parametrize(
    "code, sig",
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", signal.SIGTERM),
        ("import os; os.abort()", signal.SIGABRT),
    ],
    ids=["SIGTERM", "SIGABRT"],
)
def test_process_exit_sees_death_by_signal(trace, code, sig):
    result = trace(EXIT_SCRIPT, PYTHON, "-c", code, options=["-q"])
    assert script_lines(result.stdout, "[exit] ") == [f"process_exit {128 + sig} {int(sig)}"], str(result)
    assert result.returncode == 128 + sig, str(result)


def test_segv_target_output_before_the_crash_is_kept(trace, arch_target):
    result = trace(EXIT_SCRIPT, arch_target("segv"), options=["-q"])
    assert result.returncode == 139, str(result)
    assert result.stdout.splitlines()[0] == "about to crash", str(result)
    assert "not reached" not in result.stdout, str(result)


def test_process_exit_context_ids_are_the_targets(trace, arch_target):
    script = """\
import os
@process_exit
def done(ctx):
    print("[ids]", ctx.pid, ctx.tid, os.getpid())
"""
    result = trace(script, arch_target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    (ids,) = script_lines(result.stdout, "[ids] ")
    pid, tid, getpid = map(int, ids.split())
    assert pid == getpid, str(result)
    # hello has one thread, so the exiting thread is the initial one.
    assert tid == pid, str(result)


# ---------------------------------------------------------------------------
# thread_start, thread_exit

THREAD_SCRIPT = """\
import os, threading
@thread_start
def started(ctx):
    print("[start]", ctx.event, ctx.tid, ctx.pid, threading.get_native_id(), os.getpid())
@thread_exit
def ended(ctx):
    print("[end]", ctx.event, ctx.tid, ctx.pid)
@process_exit
def done(ctx):
    print("[exit]", ctx.pid, ctx.exit_code)
"""


def check_threads(result, count):
    """Check *count* thread_start and thread_exit events; return the tids."""
    starts = [line.split() for line in script_lines(result.stdout, "[start] ")]
    ends = [line.split() for line in script_lines(result.stdout, "[end] ")]
    (exit_line,) = script_lines(result.stdout, "[exit] ")
    pid = int(exit_line.split()[0])
    assert len(starts) == count, f"{len(starts)} thread_start events\n{result}"
    assert len(ends) == count, f"{len(ends)} thread_exit events\n{result}"
    assert all(s[0] == "thread_start" for s in starts), str(result)
    assert all(e[0] == "thread_exit" for e in ends), str(result)
    start_tids = [int(s[1]) for s in starts]
    end_tids = [int(e[1]) for e in ends]
    assert len(set(start_tids)) == count, f"thread ids not distinct\n{result}"
    assert sorted(start_tids) == sorted(end_tids), str(result)
    assert pid not in start_tids, "the initial thread is reported as a new thread\n" + str(result)
    for event, tid, ctx_pid, native_tid, getpid in starts:
        # The handler runs in the new thread, in the target's process.
        assert int(tid) == int(native_tid), str(result)
        assert int(ctx_pid) == int(getpid) == pid, str(result)
    for event, tid, ctx_pid in ends:
        assert int(ctx_pid) == pid, str(result)
    return start_tids


@pytest.mark.parametrize("count", [0, 1, 8])
def test_threads_of_a_c_program(trace, arch_target, count):
    result = trace(THREAD_SCRIPT, arch_target("threads"), str(count), options=["-q"], timeout=60)
    assert result.returncode == 0, str(result)
    check_threads(result, count)
    target_lines = [line for line in result.stdout.splitlines() if not line.startswith("[")]
    assert target_lines == [f"joined {count}"], str(result)


def test_threads_of_a_python_program(trace):
    code = (
        "import threading\n"
        "threads = [threading.Thread(target=sum, args=(range(10000),)) for _ in range(8)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        # One write(2), so that no handler output can land inside the line
        # (the target may be unbuffered: PYTHONUNBUFFERED).
        "import sys; sys.stdout.write('python joined %d\\n' % len(threads))\n"
    )
    result = trace(THREAD_SCRIPT, PYTHON, "-c", code, options=["-q"], timeout=60)
    assert result.returncode == 0, str(result)
    check_threads(result, 8)
    assert "python joined 8" in result.stdout.splitlines(), str(result)


def test_one_handler_stacked_on_two_probes(trace, arch_target):
    script = """\
@thread_start
@thread_exit
def both(ctx):
    print("[both]", ctx.event, ctx.tid)
"""
    result = trace(script, arch_target("threads"), "4", options=["-q"])
    assert result.returncode == 0, str(result)
    events = [line.split() for line in script_lines(result.stdout, "[both] ")]
    starts = sorted(tid for event, tid in events if event == "thread_start")
    ends = sorted(tid for event, tid in events if event == "thread_exit")
    assert len(starts) == 4 and len(set(starts)) == 4, str(result)
    assert starts == ends, str(result)


def test_handlers_share_the_script_globals(trace, target):
    script = """\
import threading
lock = threading.Lock()
count = 0
@thread_start
def started(ctx):
    global count
    with lock:
        count += 1
@process_exit
def done(ctx):
    print("[count]", count)
"""
    result = trace(script, target("threads"), "8", options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[count] ") == ["8"], str(result)


# ---------------------------------------------------------------------------
# module_load

MODULE_SCRIPT = """\
@module_load({predicate})
def loaded(ctx):
    print("[module]", ctx.event, ctx.module, ctx.module_path, ctx.module_base, ctx.module_end)
"""


def loaded_modules(result):
    """The module_load events of *result*: a list of (name, path, base, end)."""
    modules = []
    for line in script_lines(result.stdout, "[module] "):
        event, name, path, base, end = line.split()
        assert event == "module_load", str(result)
        modules.append((name, path, int(base), int(end)))
    return modules


def test_module_load_of_libc_exactly_once(trace, arch_target):
    script = MODULE_SCRIPT.format(predicate='module_name == "libc.so.6"') + """\
@process_exit
def done(ctx):
    # Where libc really is, as the kernel sees it.
    for line in open("/proc/self/maps"):
        fields = line.split()
        if len(fields) >= 6 and fields[5].endswith("/libc.so.6"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            print("[map]", start, end, int(fields[2], 16), fields[5])
"""
    result = trace(script, arch_target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    modules = loaded_modules(result)
    assert len(modules) == 1, str(result)
    name, path, base, end = modules[0]
    assert name == "libc.so.6", str(result)
    assert os.path.isabs(path) and os.path.basename(path) == "libc.so.6", str(result)
    assert os.path.isfile(path), str(result)
    assert 0 < base < end, str(result)
    maps = [line.split() for line in script_lines(result.stdout, "[map] ")]
    # The module starts where libc's first page (file offset 0) is mapped.
    assert any(
        int(start) == base and int(offset) == 0 and os.path.realpath(file) == os.path.realpath(path)
        for start, _, offset, file in maps
    ), f"no mapping of {path} at offset 0 starts at {base:#x}\n{result}"
    # Its code lies within [base, end).
    assert any(base <= int(start) < int(stop) <= end for start, stop, _, _ in maps), str(result)


@pytest.mark.parametrize(
    "predicate, expected",
    [
        ('module_name == "libc.so.6"', {"libc.so.6"}),
        ('module_name.like("libc*")', {"libc.so.6"}),
        ('module_name.like("lib*")', {"libc.so.6", "libm.so.6"}),
        ('module_name.like("lib*") & (module_name != "libc.so.6")', {"libm.so.6"}),
        ('(module_name == "libm.so.6") | (module_name == "dlopen_lib")', {"libm.so.6", "dlopen_lib"}),
        ('module_name >> ["libc.so.6", "libm.so.6"]', {"libc.so.6", "libm.so.6"}),
        ('~module_name.like("*.so*")', {"dlopen_lib"}),
        ('module_name == "no-such-module.so"', set()),
    ],
)
def test_module_load_predicates(trace, arch_target, predicate, expected):
    result = trace(MODULE_SCRIPT.format(predicate=predicate), arch_target("dlopen_lib"), options=["-q"])
    assert result.returncode == 0, str(result)
    names = [name for name, _, _, _ in loaded_modules(result)]
    assert sorted(names) == sorted(expected), str(result)
    assert "cos(0) = 1" in result.stdout.splitlines(), str(result)


def test_module_load_without_predicate_sees_every_module_once(trace, arch, arch_target):
    dlopen_lib = arch_target("dlopen_lib")
    result = trace(MODULE_SCRIPT.format(predicate=""), dlopen_lib, options=["-q"])
    assert result.returncode == 0, str(result)
    modules = loaded_modules(result)
    names = [name for name, _, _, _ in modules]
    assert len(names) == len(set(names)), f"a module is reported twice\n{result}"
    loader = "ld-linux-x86-64.so.2" if arch == "x86-64" else "ld-linux.so.2"
    for expected in ("dlopen_lib", loader, "libc.so.6", "libm.so.6"):
        assert expected in names, f"no module_load for {expected}\n{result}"
    # The executable comes first, with its own path.
    name, path, base, end = modules[0]
    assert name == "dlopen_lib" and os.path.realpath(path) == os.path.realpath(dlopen_lib), str(result)
    # libm is loaded by dlopen(), after the start-up libraries.
    assert names.index("libm.so.6") > names.index("libc.so.6"), str(result)
    assert names[-1] == "libm.so.6", str(result)


def test_module_load_sees_libm_only_when_dlopened(trace, arch_target):
    # The negative control: hello never loads libm.
    script = MODULE_SCRIPT.format(predicate='module_name == "libm.so.6"')
    result = trace(script, arch_target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert loaded_modules(result) == [], str(result)
    result = trace(script, arch_target("dlopen_lib"), options=["-q"])
    assert result.returncode == 0, str(result)
    ((name, path, base, end),) = loaded_modules(result)
    assert os.path.basename(path) == "libm.so.6" and base < end, str(result)
