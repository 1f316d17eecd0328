"""Counting without Python: ``KIND(PREDICATE, count=KEY)`` (issue 15,
item 5), on both architectures where the target has a 32-bit twin.

Ground truth from outside the tracer: gdb's breakpoint hit counts, strace's
counts of system calls, the programs' own output (lock_counter's total,
workers' calls per thread, branchy's loop count).
"""

import re
import subprocess

import pytest

from function_targets import arch, arch_target, ftarget  # noqa: F401


def gdb_hits(command, functions):
    """How many times gdb's breakpoints on *functions* are hit in a run of *command*."""
    args = ["gdb", "-batch", "-nx", "-ex", "set breakpoint pending on", "-ex", "set startup-with-shell off"]
    for number, function in enumerate(functions, start=1):
        args += ["-ex", f"break {function}", "-ex", f"ignore {number} 100000000"]
    args += ["-ex", "run", "-ex", "info breakpoints", "--args", *command]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300).stdout
    hits = {}
    for number, function in enumerate(functions, start=1):
        match = re.search(rf"^{number}\s+breakpoint\s.*?(?:\n\t.*?)*?breakpoint already hit (\d+) time", out, re.M)
        hits[function] = int(match.group(1)) if match else 0
    return hits


def counts(stdout, name):
    """{key: count} of the aggregation *name* printed at exit."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(rf"^@{name}\[(.*)\]: (\d+)$", stdout, re.M)}


def test_function_calls_counted_as_gdb_counts_them(trace, arch_target):
    command = [arch_target("malloc_sizes")]
    # libc's own names: gdb's "malloc" has locations in ld.so's inlined
    # callers too (debug info), which are not calls of libc's malloc.
    hits = gdb_hits(command, ["__libc_malloc", "__libc_free"])
    expected = {"malloc": hits["__libc_malloc"], "free": hits["__libc_free"]}
    assert expected["malloc"] >= 8 and expected["free"] >= 8, expected
    result = trace('calls = function_entry(function_name >> ["malloc", "free"], count="function")\n', *command, options=["-q"])
    assert result.returncode == 0 and "Traceback" not in result.stderr, result
    assert counts(result.stdout, "calls") == {"malloc": expected["malloc"], "free": expected["free"]}, result


def test_eight_threads_calling_one_counted_function(trace, arch_target):
    # Counted by function, decided at load: an inline locked increment on
    # x86-64 (the entry callback on i686); every call of every thread.
    script = 'calls = function_entry(function_name == "work", count="function")\n'
    result = trace(script, arch_target("workers"), "8", "20000", "500", options=["-q"])
    assert result.returncode == 0, result
    assert counts(result.stdout, "calls") == {"work": 8 * 20000 + 500}, result.stdout


def test_calls_per_thread(trace, arch_target):
    script = 'per_thread = function_entry(function_name == "work", count="thread")\n'
    result = trace(script, arch_target("workers"), "8", "10000", "300", options=["-q"])
    assert result.returncode == 0, result
    found = sorted(counts(result.stdout, "per_thread").values())
    assert found == [300] + [10000] * 8, result.stdout


def test_system_calls_counted_as_strace_counts_them(trace, tmp_path):
    command = ["/bin/cat", "/etc/hostname", "/nonexistent"]
    log = tmp_path / "strace.txt"
    subprocess.run(["strace", "-c", "-o", log, *command], capture_output=True)
    expected = {}
    for line in log.read_text().splitlines():
        row = re.fullmatch(r" *[\d.]+ +[\d.]+ +\d+ +(\d+) +(?:\d+ +)?(\w+)", line)
        if row and row.group(2) != "total":
            expected[row.group(2)] = int(row.group(1))
    result = trace('made = syscall_exit(count="syscall")\n', *command, options=["-q"])
    assert result.returncode == 1, result
    got = counts(result.stdout, "made")
    # strace -c counts what returns, and so does a syscall_exit probe;
    # execve (strace's first) happened before the tracer's first event.
    expected.pop("execve", None)
    assert got == expected, (got, expected)


def test_system_calls_counted_at_entry_inline(trace, tmp_path):
    # Counted at entry by the code before each `syscall` that shows its
    # number (x86-64): the same counts, and exit_group, which never returns.
    command = ["/bin/cat", "/etc/hostname", "/nonexistent"]
    log = tmp_path / "strace.txt"
    subprocess.run(["strace", "-c", "-o", log, *command], capture_output=True)
    expected = {"exit_group": 1}
    for line in log.read_text().splitlines():
        row = re.fullmatch(r" *[\d.]+ +[\d.]+ +\d+ +(\d+) +(?:\d+ +)?(\w+)", line)
        if row and row.group(2) not in ("total", "execve"):
            expected[row.group(2)] = int(row.group(1))
    result = trace('made = syscall_entry(count="syscall")\n', *command, options=["-q"])
    assert counts(result.stdout, "made") == expected, result.stdout


def test_every_write_of_a_watched_counter_by_eight_threads(trace, arch_target):
    script = 'writes = memory_write(memory_address >> symbol_range("counter"), count="thread")\n'
    result = trace(script, arch_target("lock_counter"), "20000", options=["-q"])
    assert result.returncode == 0 and result.stdout.startswith("counter = 160000\n"), result
    per_thread = counts(result.stdout, "writes")
    assert sorted(per_thread.values()) == [20000] * 8, per_thread


def test_branches_of_a_loop(trace, arch_target):
    # count_to: one je, then the jb back edge once per iteration (objdump).
    script = 'seen = branch(function_name == "count_to", count="function")\n'
    result = trace(script, arch_target("branchy_O2"), "loop", "30000", options=["-q"])
    assert result.returncode == 0 and result.stdout.startswith("counted 30000\n"), result
    assert counts(result.stdout, "seen") == {"count_to": 30001}, result.stdout


def test_a_forked_child_counts_from_zero(trace, ftarget):
    # forks: the parent calls getppid twice, its child three times (strace).
    result = trace('asked = syscall_entry(syscall_name == "getppid", count="syscall")\n', ftarget("forks"), options=["-q"])
    assert result.returncode == 0, result
    assert sorted(int(n) for n in re.findall(r"^@asked\[getppid\]: (\d+)$", result.stdout, re.M)) == [2, 3], result.stdout


def test_a_count_and_a_handler_on_one_function(trace, arch_target):
    script = """
calls = function_entry(function_name == "malloc", count="module")
seen = []

@function_entry(function_name == "malloc")
def on_malloc(ctx):
    seen.append(ctx.args[0])

@process_exit
def done(ctx):
    print("handler saw", len(seen), "count says", calls["libc.so.6"])
"""
    result = trace(script, arch_target("malloc_sizes"), options=["-q"])
    handler, counted = re.search(r"handler saw (\d+) count says (\d+)", result.stdout).groups()
    assert handler == counted and int(counted) >= 8, result.stdout


@pytest.mark.parametrize("script, message", [
    ('x = syscall_entry(count="function")\n', "syscall_entry probes count by 'syscall', 'thread'"),
    ('x = function_entry(function_name == "malloc", count="caller")\nx["a"] = 1\n', "counts its probe's events itself"),
    ('@function_entry(function_name == "malloc", count="function")\ndef f(ctx):\n    pass\n', "count= probes take no handler"),
])
def test_misuse_is_a_clear_error(trace, ftarget, script, message):
    result = trace(script, ftarget("malloc_sizes"), options=["-q"])
    assert result.returncode == 2 and message in result.stderr, result
