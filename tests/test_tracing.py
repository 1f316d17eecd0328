"""Tracing without a script: ``processtap -t syscalls=...`` (issue 15, item 3).

The ground truth is strace, run on the same command: for the system calls
named, the lines must be strace's, modulo addresses (ASLR, and DynamoRIO's
own mappings), pids, and the bytes getrandom returns. Calls whose
arguments strace decodes as structures (fstat's ``struct stat``,
rt_sigaction's ``struct sigaction``) are left out of the lists: ProcessTap
shows their addresses. strace runs with ``-f -o``, which puts the pid
before each line; ProcessTap's lines carry ``[pid N]`` once there are
several processes, as strace's do on stderr.
"""

import re
import subprocess
import time

import pytest

from conftest import PYTHON
from function_targets import arch, arch_target, ftarget  # noqa: F401

#: What the dynamic loader, libc's start and a program's reading and
#: writing make, with arguments strace and ProcessTap show alike.
FILES = "openat,read,write,close,mmap,munmap,mprotect,brk,lseek,fadvise64,pread64,access,getrandom,exit_group"
#: A process's start, beyond FILES.
START = "arch_prctl,set_tid_address,set_robust_list"
#: What a Python program makes beyond those.
PYTHON_CALLS = "getcwd,readlink,dup,fcntl,getpid,getuid,geteuid,getgid,getegid,rt_sigprocmask"
#: What a shell makes to run a pipeline. (Not rt_sigprocmask: DynamoRIO
#: starts a vfork child's emulated signal mask empty, where the kernel
#: gives it the parent's, and the child reads back [] for strace's
#: ~[KILL STOP RTMIN RT_1]; docs/internals.md.)
SHELL = "pipe2,dup2,clone,vfork"


def strace_lines(tmp_path, syscalls, command):
    """What ``strace -f -e trace=SYSCALLS COMMAND`` writes, one list of
    lines per process, in the order the processes started; and the
    command's exit status."""
    log = tmp_path / "strace.txt"
    native = subprocess.run(["strace", "-f", "-o", log, "-e", f"trace={syscalls}", *command],
                            stdin=subprocess.DEVNULL, capture_output=True)
    by_pid, pending = {}, {}
    for line in log.read_text().splitlines():
        pid, text = re.fullmatch(r"(\d+) +(.*)", line).groups()
        if text.startswith("--- "):
            continue                      # a signal, which ProcessTap does not show
        if text.endswith(" <unfinished ...>"):
            pending[pid] = text[: -len(" <unfinished ...>")]
            continue
        resumed = re.fullmatch(r"<\.\.\. \w+ resumed>(.*)", text)
        if resumed:
            text = pending.pop(pid) + resumed.group(1)
        by_pid.setdefault(pid, []).append(normalized(text))
    return list(by_pid.values()), native.returncode


def processtap_lines(processtap, tmp_path, syscalls, command, options=()):
    """What ``processtap -t syscalls=SYSCALLS COMMAND`` writes, one list of
    lines per process, the first process first; and the exit status."""
    log = tmp_path / "processtap.txt"
    traced = subprocess.run([processtap, "-o", log, *options, "-t", f"syscalls={syscalls}", "--", *command],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert "Traceback" not in traced.stderr, traced.stderr
    by_pid = {None: []}
    children = set()
    for line in log.read_text().splitlines():
        pid, text = re.fullmatch(r"(?:\[pid +(\d+)\] )?(.*)", line).groups()
        created = re.fullmatch(r"(?:clone|vfork)\(.*\) += (\d+)", text)
        if created:
            children.add(created.group(1))
        by_pid.setdefault(pid, []).append(normalized(text))
    # The first process's lines have no pid until it has a child; then
    # its pid is the one no clone returned.
    first = [pid for pid in by_pid if pid is not None and pid not in children]
    assert len(first) <= 1, by_pid.keys()
    if first:
        by_pid[None] += by_pid.pop(first[0])
    return list(by_pid.values()), traced.returncode


def normalized(text):
    """A line with one space before its '=' (strace counts the pid it puts
    first in its column), addresses as ADDR, a pid's number as PID and
    getrandom's bytes left out."""
    call = re.fullmatch(r"(.*\)) +(= .*)", text)
    if call:
        text = f"{call.group(1)} {call.group(2)}"
    text = re.sub(r"0x[0-9a-f]{5,}", "ADDR", text)
    text = re.sub(r"^((?:set_tid_address|getpid|clone|vfork)\(.*\)) = \d+$", r"\1 = PID", text)
    return re.sub(r'^getrandom\("[^"]*"', 'getrandom("..."', text)


def compare(processtap, tmp_path, syscalls, command):
    expected, native_status = strace_lines(tmp_path, syscalls, command)
    got, status = processtap_lines(processtap, tmp_path, syscalls, command)
    assert status == native_status
    assert sum(map(len, expected)) > 20, expected
    # The first process first, then the others in any order: their lines
    # interleave differently from run to run.
    assert got[0] == expected[0]
    assert sorted(got[1:]) == sorted(expected[1:])


def test_cat_as_strace_shows_it(processtap, tmp_path):
    (tmp_path / "f.txt").write_text("one\ntwo\n")
    compare(processtap, tmp_path, f"{FILES},{START}", ["/bin/cat", str(tmp_path / "f.txt"), str(tmp_path / "missing")])


def test_ls_as_strace_shows_it(processtap, tmp_path):
    compare(processtap, tmp_path, f"{FILES},{START}", ["/bin/ls", "-d", "/etc", "/nonexistent"])


def test_python_as_strace_shows_it(processtap, tmp_path):
    code = "import os, sys; print(os.getcwd()); open(sys.argv[1], 'w').write('x'); os.dup(1); sys.exit(3)"
    compare(processtap, tmp_path, f"{FILES},{PYTHON_CALLS}", [PYTHON, "-c", code, str(tmp_path / "out.txt")])


def test_a_shell_pipeline_as_strace_shows_each_process(processtap, tmp_path):
    # Four processes: their lines carry [pid N] once there is more than one.
    script = "cat /etc/hostname | tr a-z A-Z; ls /nonexistent; exit 3"
    compare(processtap, tmp_path, f"{FILES},{SHELL}", ["/bin/sh", "-c", script])


def test_lines_are_aligned_as_strace_aligns_them(processtap, tmp_path):
    # Without -f, strace puts nothing before a line: the lines are the same,
    # spaces included.
    log = tmp_path / "strace.txt"
    subprocess.run(["strace", "-o", log, "-e", "trace=close,openat", "/bin/true"], check=True)
    out = tmp_path / "processtap.txt"
    subprocess.run([processtap, "-o", out, "-t", "syscalls=close,openat", "--", "/bin/true"], check=True)
    address = lambda text: re.sub(r"0x[0-9a-f]+", "ADDR", text)  # noqa: E731
    assert address(out.read_text()) == address(log.read_text())
    assert "close(3)                                = 0\n" in out.read_text()


def test_strings_are_cut_at_s_bytes(processtap, tmp_path):
    command = [PYTHON, "-c", "import os; os.write(1, b'\\x01' + b'8\\x017' + b'y' * 40)"]
    lines = {}
    for size in ("5", "100"):
        log = tmp_path / f"strace-{size}.txt"
        subprocess.run(["strace", "-o", log, "-s", size, "-e", "trace=write", *command], check=True, capture_output=True)
        out = tmp_path / f"processtap-{size}.txt"
        subprocess.run([processtap, "-o", out, "-s", size, "-t", "syscalls=write", "--", *command], check=True, capture_output=True)
        lines[size] = out.read_text().splitlines()[0]
        assert lines[size] == log.read_text().splitlines()[0]
    assert lines["5"].startswith('write(1, "\\18\\0017y"..., 44)'), lines
    assert lines["100"].startswith('write(1, "\\18\\0017yyy'), lines


def test_T_shows_the_time_in_each_call(processtap, tmp_path, arch_target):
    out = tmp_path / "processtap.txt"
    traced = subprocess.run([processtap, "-o", out, "-T", "-t", "syscalls=clock_nanosleep", "--", arch_target("naps"), "2", "30"],
                            capture_output=True, text=True)
    assert traced.returncode == 0 and traced.stdout == "slept 2\n", traced
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and lines[2] == "+++ exited with 0 +++", lines
    for line in lines[:2]:
        seconds = float(re.fullmatch(r"clock_nanosleep\(.*\) += 0 <(\d+\.\d{6})>", line).group(1))
        assert 0.030 <= seconds < 5, line


def test_tt_shows_when_each_call_was_made(processtap, tmp_path, arch_target):
    out = tmp_path / "processtap.txt"
    before = time.time()
    subprocess.run([processtap, "-o", out, "-tt", "-t", "syscalls=clock_nanosleep,write", "--", arch_target("naps"), "2", "200"],
                   check=True, capture_output=True)
    after = time.time()
    stamps = []
    for line in out.read_text().splitlines()[:-1]:
        clock, micros = re.fullmatch(r"(\d\d:\d\d:\d\d)\.(\d{6}) (?:clock_nanosleep|write)\(.*", line).groups()
        day = time.strftime("%Y-%m-%d ", time.localtime(before))
        stamps.append(time.mktime(time.strptime(day + clock, "%Y-%m-%d %H:%M:%S")) + int(micros) / 1e6)
    assert len(stamps) == 3, out.read_text()
    assert before - 1 <= stamps[0] and stamps[-1] <= after + 1, (before, stamps, after)
    # Each nap began 0.2 s after the one before: the time is the call's start.
    assert 0.19 <= stamps[1] - stamps[0] < 2 and 0.19 <= stamps[2] - stamps[1] < 2, stamps


def test_c_counts_calls_and_errors_as_strace_does(processtap, tmp_path):
    command = ["/bin/cat", "/etc/hostname", "/nonexistent"]
    log = tmp_path / "strace.txt"
    subprocess.run(["strace", "-c", "-o", log, "-e", f"trace={FILES}", *command], capture_output=True)
    out = tmp_path / "processtap.txt"
    traced = subprocess.run([processtap, "-o", out, "-c", "-t", f"syscalls={FILES}", "--", *command], capture_output=True, text=True)
    assert traced.returncode == 1, traced

    def table(text):
        rows = {}
        for line in text.splitlines():
            row = re.fullmatch(r" *[\d.]+ +[\d.]+ +\d+ +(\d+) +(\d+)? +(\w+)", line)
            if row:
                rows[row.group(3)] = (int(row.group(1)), int(row.group(2) or 0))
        return rows

    expected, got = table(log.read_text()), table(out.read_text())
    assert expected["openat"][1] > 0 and expected["total"][0] > 20, expected
    assert got == expected, out.read_text()
    assert out.read_text().splitlines()[0] == "% time     seconds  usecs/call     calls    errors syscall"


@pytest.mark.parametrize("args, message", [
    (["-t", "sycalls"], "-t sycalls: expected syscalls, syscalls=NAME,... or functions=GLOB,..."),
    (["-t", "syscalls=open at"], "is not a system call's name"),
    (["-c", "-e", "x = 1"], "-c shapes what -t prints: give -t syscalls or -t functions=... too"),
    (["-t", "functions=mal'loc"], "is not a function's name or glob"),
    (["-s", "many", "-t", "syscalls"], "-s many: expected a number of bytes"),
])
def test_bad_tracing_options_are_usage_errors(processtap, args, message):
    result = subprocess.run([processtap, *args, "--", "/bin/true"], capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr, result


def test_an_unknown_system_call_is_named_before_the_command_runs(processtap, tmp_path):
    marker = tmp_path / "ran"
    result = subprocess.run([processtap, "-t", "syscalls=opnat", "--", "/bin/touch", marker], capture_output=True, text=True)
    assert result.returncode == 2 and "opnat" in result.stderr and "openat" in result.stderr, result
    assert not marker.exists()


# ---------------------------------------------------------------------------
# -t functions=GLOB,...: ltrace's lines, by the C library's prototypes


def traced_functions(processtap, tmp_path, spec, command, options=()):
    out = tmp_path / "functions.txt"
    traced = subprocess.run([processtap, "-o", out, *options, "-t", f"functions={spec}", "--", *command],
                            capture_output=True, text=True)
    assert "Traceback" not in traced.stderr and "[!]" not in traced.stderr, traced.stderr
    return traced, out.read_text().splitlines()


def test_malloc_and_free_with_their_sizes_and_pointers(processtap, tmp_path, arch_target):
    traced, lines = traced_functions(processtap, tmp_path, "malloc,free", [arch_target("malloc_sizes")])
    assert traced.returncode == 0, traced
    # The program says which sizes it asks for, in order; stdio's own
    # buffers come between.
    sizes = [int(line.split()[1]) for line in traced.stdout.splitlines() if line.startswith("malloc ")]
    calls = [re.fullmatch(r"malloc\((\d+)\) += (0x[0-9a-f]+)", line) for line in lines if line.startswith("malloc(")]
    assert all(calls), lines
    asked = [int(c.group(1)) for c in calls]
    position = 0
    for size in sizes:
        position = asked.index(size, position) + 1
    # Each block the program frees is one malloc returned.
    returned = {int(c.group(2), 16) for c in calls}
    freed = [int(m.group(1), 16) for m in (re.fullmatch(r"free\((0x[0-9a-f]+)\) += <void>", line) for line in lines) if m]
    assert len(freed) >= len(sizes) and set(freed) <= returned, lines
    assert lines[-1] == "+++ exited with 0 +++"


def test_strings_and_a_module_qualified_glob(processtap, tmp_path, ftarget):
    words = ["alpha", "a much longer word than thirty-two bytes"]
    traced, lines = traced_functions(processtap, tmp_path, "libc.so.6:strle?", [ftarget("strlens"), *words], options=["-s", "8"])
    assert traced.stdout == "1: 5\n2: 40\n", traced
    assert lines[:2] == ['strlen("alpha")                         = 5', 'strlen("a much l"...)                   = 40'], lines


def test_a_function_that_does_not_return_is_shown_when_called(processtap, tmp_path, arch_target):
    traced, lines = traced_functions(processtap, tmp_path, "exit", [arch_target("exit_with"), "7"])
    assert traced.returncode == 7, traced
    assert lines == ["exit(7)                                 = <no return ...>", "+++ exited with 7 +++"], lines


def test_c_counts_function_calls(processtap, tmp_path, arch_target):
    traced, lines = traced_functions(processtap, tmp_path, "malloc,free", [arch_target("malloc_sizes")], options=["-c"])
    rows = {m.group(2): int(m.group(1)) for m in (re.fullmatch(r" *[\d.]+ +[\d.]+ +\d+ +(\d+) +(\w+)", line) for line in lines) if m}
    assert rows["malloc"] >= 8 and rows["free"] >= 8 and rows["total"] == rows["malloc"] + rows["free"], lines
    assert lines[0] == "% time     seconds  usecs/call     calls    errors function", lines


# ---------------------------------------------------------------------------
# --json and emit()


def test_json_lines_of_system_calls_agree_with_strace(processtap, tmp_path):
    import json

    (tmp_path / "f.txt").write_text("one\n")
    command = ["/bin/cat", str(tmp_path / "f.txt"), str(tmp_path / "missing")]
    log = tmp_path / "strace.txt"
    subprocess.run(["strace", "-o", log, "-e", "trace=openat,close", *command], capture_output=True)
    expected = []
    for line in log.read_text().splitlines():
        opened = re.fullmatch(r'openat\(AT_FDCWD, "([^"]*)", [^)]*\) += (-1 (\w+)|\d+).*', line)
        closed = re.fullmatch(r"close\((\d+)\) += (-?\d+).*", line)
        if opened:
            expected.append(("openat", opened.group(1), -2 if opened.group(3) == "ENOENT" else int(opened.group(2)), opened.group(3)))
        elif closed:
            expected.append(("close", int(closed.group(1)), int(closed.group(2)), None))
    out = tmp_path / "processtap.txt"
    subprocess.run([processtap, "--json", "-o", out, "-t", "syscalls=openat,close", "--", *command], capture_output=True)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    calls = [r for r in records if r["event"] == "syscall_exit"]
    got = [(r["name"], r["args"][1] if r["name"] == "openat" else r["args"][0], r["retval"], r.get("error")) for r in calls]
    assert got == expected and len(expected) > 10, (got, expected)
    assert all(r["pid"] == records[0]["pid"] and r["duration"] >= 0 for r in calls)
    assert records[-1] == {"pid": records[0]["pid"], "tid": records[0]["pid"], "ts": records[-1]["ts"],
                           "event": "process_exit", "exit_code": 1, "signal": None}


def test_emit_writes_one_object_per_call(trace, arch_target):
    import json

    script = """
@function_entry(function_name == "malloc")
def enter(ctx):
    emit(size=ctx.args[0], tag=b"\\xffab", pair=(1, "x"))
"""
    before = time.monotonic_ns()
    result = trace(script, arch_target("malloc_sizes"), options=["-q"])
    after = time.monotonic_ns()
    assert result.returncode == 0, result
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    sizes = [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("malloc ")]
    asked, position = [r["size"] for r in records], 0
    for size in sizes:   # in order, with stdio's own buffers between
        position = asked.index(size, position) + 1
    for r in records:
        assert list(r) == ["pid", "tid", "ts", "size", "tag", "pair"], r
        # Bytes that are not UTF-8 are written as \xNN.
        assert before < r["ts"] < after and r["tag"] == "\\xffab" and r["pair"] == [1, "x"], r


def test_json_aggregations_at_exit(run_processtap, arch_target):
    import json

    program = 'n = count() ;; h = hist() ;; function_entry(function_name == "malloc"): n["malloc"] += 1; h.add(ctx.args[0])'
    result = run_processtap("-q", "--json", "-e", program, "--", arch_target("malloc_sizes"))
    assert result.returncode == 0, result
    records = {r["aggregation"]: r for r in (json.loads(line) for line in result.stdout.splitlines() if line.startswith("{"))}
    sizes = [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("malloc ")]
    calls = records["n"]["values"][0]["value"]
    assert records["n"]["kind"] == "count" and calls >= len(sizes), records
    buckets = records["h"]["values"][0]["value"]
    assert sum(b["count"] for b in buckets) == calls
    for size in sizes:
        assert any(b["low"] <= size < b["high"] for b in buckets), (size, buckets)
