"""Handlers that raise: the target is unaffected, the traceback shown once, the count at exit."""

import re
import subprocess

import pytest

from conftest import HELLO_OUTPUT, PYTHON, script_lines
from function_targets import ftarget  # noqa: F401


def first_report(name, kind):
    return f"[!] handler {name} ({kind}) raised an exception;"


def final_report(name, kind, count):
    return f"[!] handler {name} ({kind}) raised {count} exception(s); the first is shown above"


def test_thread_start_handler_raising_on_every_thread(trace, target):
    script = """\
@thread_start
def bad(ctx):
    raise RuntimeError("bad thread %d" % ctx.tid)

@process_exit
def done(ctx):
    print("[ptap] exit", ctx.exit_code)
"""
    result = trace(script, target("threads"), "8", options=["-q"])
    # The target and the other handlers are unaffected.
    assert result.returncode == 0, str(result)
    assert result.stdout.splitlines() == ["joined 8", "[ptap] exit 0"], str(result)
    # The first traceback, once.
    stderr = result.stderr
    assert stderr.count("Traceback (most recent call last):") == 1, str(result)
    assert stderr.count(first_report("bad", "thread_start")) == 1, str(result)
    assert f'File "{result.script}", line 3, in bad' in stderr, str(result)
    assert len(re.findall(r"^RuntimeError: bad thread \d+$", stderr, re.M)) == 1, str(result)
    # The count at exit.
    assert final_report("bad", "thread_start", 8) in stderr.splitlines(), str(result)
    # The first report comes before the count.
    assert stderr.index(first_report("bad", "thread_start")) < stderr.index(
        final_report("bad", "thread_start", 8)
    ), str(result)


def test_process_exit_handler_raising_keeps_the_exit_status(trace, target):
    script = """\
@process_exit
def done(ctx):
    print("[ptap] before the error")
    {}["missing"]
"""
    result = trace(script, target("exit_with"), "5", options=["-q"])
    assert result.returncode == 5, str(result)
    assert result.stdout == "[ptap] before the error\n", str(result)
    assert "KeyError: 'missing'" in result.stderr, str(result)
    assert f'File "{result.script}", line 4, in done' in result.stderr, str(result)
    assert final_report("done", "process_exit", 1) in result.stderr.splitlines(), str(result)


def test_each_raising_handler_is_reported_separately(trace, target):
    script = """\
modules = []

@module_load
def bad_load(ctx):
    modules.append(ctx.module)
    raise ValueError("module " + ctx.module)

@thread_exit
def bad_exit(ctx):
    1 / 0

@process_exit
def done(ctx):
    print("[ptap] modules", len(modules))
"""
    result = trace(script, target("threads"), "3", options=["-q"])
    assert result.returncode == 0, str(result)
    assert "joined 3" in result.stdout.splitlines(), str(result)
    (count,) = script_lines(result.stdout, "[ptap] modules ")
    modules = int(count)
    assert modules >= 4, str(result)  # threads, ld.so, vdso, libc (at least)
    stderr = result.stderr
    assert stderr.count("Traceback (most recent call last):") == 2, str(result)
    assert stderr.count(first_report("bad_load", "module_load")) == 1, str(result)
    assert stderr.count(first_report("bad_exit", "thread_exit")) == 1, str(result)
    assert "ZeroDivisionError" in stderr, str(result)
    lines = stderr.splitlines()
    assert final_report("bad_load", "module_load", modules) in lines, str(result)
    assert final_report("bad_exit", "thread_exit", 3) in lines, str(result)


def test_handler_raising_does_not_change_the_targets_output(trace, target):
    script = """\
@module_load
def bad(ctx):
    raise OSError("nope")
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == HELLO_OUTPUT, str(result)
    assert "OSError: nope" in result.stderr, str(result)


def test_handler_calling_sys_exit_does_not_stop_the_target(trace, target):
    script = """\
import sys

@thread_start
def leave(ctx):
    sys.exit(3)

@process_exit
def done(ctx):
    print("[ptap] exit", ctx.exit_code)
"""
    result = trace(script, target("threads"), "2", options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout.splitlines() == ["joined 2", "[ptap] exit 0"], str(result)
    assert final_report("leave", "thread_start", 2) in result.stderr.splitlines(), str(result)


def test_no_report_when_no_handler_raises(trace, target):
    script = "@thread_start\ndef fine(ctx):\n    pass\n"
    result = trace(script, target("threads"), "2", options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stderr == "", str(result)


# ---------------------------------------------------------------------------
# Exceptions that escape handlers are freed

MAX_RSS = """\
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def max_rss_kb(*command):
    """The largest resident set of *command* and the processes it waited for, in KiB."""
    completed = subprocess.run([PYTHON, "-c", MAX_RSS, *map(str, command)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return int(completed.stdout)


def test_a_raising_handler_does_not_grow_the_target(processtap, ftarget, tmp_path):
    # Each exception, with its traceback's frames and a 1 MB local, was kept
    # alive: 2 million raises took the target past a gigabyte.
    # Compared with the same script raising 100 times less: the first
    # exception's traceback is printed, which costs ~2 MB once (the
    # traceback module, the source lines), not per raise.
    raising = tmp_path / "raising.ptap"
    raising.write_text('@function_entry(function_name == "malloc")\ndef m(ctx):\n    big = bytearray(1000)\n    raise ValueError("leak")\n')
    few_kb = max_rss_kb(processtap, "-q", raising, "--", ftarget("malloc_loop"), "20000")
    many_kb = max_rss_kb(processtap, "-q", raising, "--", ftarget("malloc_loop"), "2000000")
    assert many_kb <= few_kb * 1.10, (few_kb, many_kb)


def test_escaped_exceptions_are_not_kept(trace, ftarget):
    script = """\
import gc
@function_entry(function_name == "malloc")
def m(ctx):
    raise ValueError("counted")

@process_exit
def done(ctx):
    gc.collect()
    live = sum(1 for o in gc.get_objects() if type(o) is ValueError)
    print("[live]", live < 10)
"""
    result = trace(script, ftarget("malloc_loop"), "5000", options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[live] ") == ["True"], str(result)
    # The program's own 5000 calls, and libc's (printf's buffer).
    count = re.search(r"raised (\d+) exception\(s\)", result.stderr)
    assert count and int(count[1]) >= 5000, str(result)


# ---------------------------------------------------------------------------
# What a handler cannot do is refused clearly


def test_os_fork_in_a_handler_raises_and_subprocess_works(trace, target):
    script = """\
import os, subprocess
@process_exit
def done(ctx):
    try:
        os.fork()
    except RuntimeError as error:
        print("[ptap] refused:", error)
    print("[ptap] started:", subprocess.run(["/bin/echo", "sub"], capture_output=True).stdout)
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[ptap] ") == [
        "refused: the script runs inside the target and cannot fork it (use subprocess or os.posix_spawn to start a program)",
        "started: b'sub\\n'",
    ], str(result)
    assert "Tool internal crash" not in result.stderr, str(result)


def test_a_probe_declared_in_a_handler_is_an_error(trace, target):
    script = """\
@process_exit
def done(ctx):
    @function_entry(function_name == "puts")
    def late(ctx):
        pass
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert "RuntimeError: probe done.<locals>.late (function_entry) declared after the script's top level" in result.stderr, str(result)
    assert f'File "{result.script}", line 3, in done' in result.stderr, str(result)
    assert "ptap/probes.py" not in result.stderr, str(result)


@pytest.mark.parametrize(
    "line, error",
    [("import no_such_module_ptap", "ModuleNotFoundError"), ('json.loads("{")', "json.decoder.JSONDecodeError")],
    ids=["import", "json"],
)
def test_a_traceback_from_library_code_shows_the_handlers_line(trace, target, line, error):
    script = f"import json\n@process_exit\ndef done(ctx):\n    {line}\n"
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert f'File "{result.script}", line 4, in done\n    {line}\n' in result.stderr, str(result)
    assert re.search(rf"^{re.escape(error)}: ", result.stderr, re.M), str(result)


def test_bad_values_name_the_field_being_set(trace, target):
    script = """\
@syscall_entry(syscall_name == "write")
def w(ctx):
    print("[ptap]", repr(ctx))
    for name, change in [("skip", lambda: ctx.skip(2 ** 80)), ("reg", lambda: setattr(ctx.regs, "RAX", None))]:
        try:
            change()
        except Exception as error:
            print("[ptap]", type(error).__name__, error)
"""
    result = trace(script, "/bin/echo", "hi", options=["-q"])
    assert result.returncode == 0, str(result)
    lines = script_lines(result.stdout, "[ptap] ")
    assert re.fullmatch(r"<syscall_entry pid=\d+ tid=\d+ syscall=1 syscall_name='write'>", lines[0]), str(result)
    assert lines[1:] == [
        "TypeError ctx.skip(): a machine word must be an int that fits in 64 bits",
        "TypeError ctx.regs.RAX: a machine word must be an int that fits in 64 bits",
    ], str(result)
    assert "hi" in result.stdout.splitlines(), str(result)
