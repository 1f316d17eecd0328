"""System-call probes: syscall_entry and syscall_exit, their predicates and ctx.

Targets: tests/targets/{syscall_threads,forks,hello}.c and real programs
(/bin/cat, /bin/echo, /usr/bin/python3). Where a target writes to stdout
itself (cat, echo), handlers print to a file (-o) so that the two outputs do
not mix. strace, when given the same command, is the reference for what a
program's system calls are.
"""

import ast
import errno
import re
import shutil

import pytest

from conftest import HELLO_OUTPUT, PYTHON, run_command, script_lines
from function_targets import arch, arch_target, fields_of, ftarget, without_handler_lines  # noqa: F401

CAT = shutil.which("cat") or "/bin/cat"
ECHO = "/bin/echo"


def handler_output(path):
    """What handlers printed to the -o file at *path*."""
    return path.read_text() if path.exists() else ""


# ---------------------------------------------------------------------------
# 1. The same system calls as strace sees

#: Prints each call of the three system calls at its exit as one line:
#:   [call] openat 'PATH' RETVAL ERRNO | read FD COUNT RETVAL ERRNO | close FD RETVAL ERRNO
#: and checks on the way that entries and exits pair up and that the
#: arguments are decoded as their prototypes say.
CAT_SCRIPT = """\
open_calls = []
problems = []
@syscall_entry(syscall_name >> ["openat", "read", "close"])
def enter(ctx):
    if open_calls:
        problems.append("entry of %s while %s is open" % (ctx.syscall_name, open_calls[-1]))
    open_calls.append(ctx.syscall_name)
    if ctx.syscall_name == "openat":
        # AT_FDCWD, an int: the low half of the raw register word.
        if ctx.args[0] != -100 or ctx.args.raw(0) & 0xffffffff != 2**32 - 100 or not isinstance(ctx.args[1], str):
            problems.append("openat args %r %r %r" % (ctx.args[0], ctx.args.raw(0), ctx.args[1]))
    elif ctx.syscall_name == "read":
        # An output buffer: at entry, the pointer.
        if not isinstance(ctx.args[1], int) or ctx.args[1] != ctx.args.raw(1):
            problems.append("read buffer at entry %r" % (ctx.args[1],))

@syscall_exit(syscall_name >> ["openat", "read", "close"])
def leave(ctx):
    if open_calls != [ctx.syscall_name]:
        problems.append("exit of %s while %s are open" % (ctx.syscall_name, open_calls))
    del open_calls[:]
    if (ctx.errno != 0) != (-4095 <= ctx.retval < 0) or (ctx.errno and ctx.errno != -ctx.retval):
        problems.append("%s: retval %d errno %d" % (ctx.syscall_name, ctx.retval, ctx.errno))
    if ctx.syscall_name == "openat":
        print("[call] openat", repr(ctx.args[1]), ctx.retval, ctx.errno)
    elif ctx.syscall_name == "read":
        data = ctx.args[1]
        # An output buffer: at exit, the bytes the call read.
        if not isinstance(data, bytes) or len(data) != max(ctx.retval, 0):
            problems.append("read buffer at exit %r (retval %d)" % (data, ctx.retval))
        elif data.startswith(b"one"):
            print("[data]", repr(data))
        print("[call] read", ctx.args[0], ctx.args[2], ctx.retval, ctx.errno)
    else:
        print("[call] close", ctx.args[0], ctx.retval, ctx.errno)

@process_exit
def done(ctx):
    print("[problems]", problems[:5])
"""

#: openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
#: read(3, "one\n"..., 131072) = 14
#: openat(AT_FDCWD, "/x", O_RDONLY) = -1 ENOENT (No such file or directory)
STRACE_LINE = re.compile(r"^(openat|read|close)\((.*)\)\s+= (-?\d+)(?: (E[A-Z0-9]+))?")


def strace_calls(text):
    """[("openat", path, retval), ("read", fd, count, retval), ("close", fd, retval)]
    from the output of ``strace -e trace=openat,read,close``, failures as
    negative errno values."""
    calls = []
    for line in text.splitlines():
        match = STRACE_LINE.match(line)
        if not match:
            continue
        name, args, retval, error = match.groups()
        retval = -getattr(errno, error) if error else int(retval)
        if name == "openat":
            path = re.match(r'AT_FDCWD, "((?:[^"\\]|\\.)*)"', args).group(1)
            calls.append((name, path, retval))
        elif name == "read":
            fd, count = re.match(r"(\d+), .*, (\d+)$", args).groups()
            calls.append((name, int(fd), int(count), retval))
        else:
            calls.append((name, int(args), retval))
    return calls


def traced_calls(text):
    """The same list from CAT_SCRIPT's [call] lines."""
    calls = []
    for fields in fields_of(text, "[call] "):
        if fields[0] == "openat":
            *path, retval, _errno = fields[1:]
            calls.append(("openat", ast.literal_eval(" ".join(path)), int(retval)))
        else:
            calls.append((fields[0], *(int(f) for f in fields[1:-1])))
    return calls


@pytest.fixture(scope="session")
def strace():
    path = shutil.which("strace")
    if path is None:
        pytest.fail("strace is needed as the reference of these tests (scripts/bootstrap installs it)")
    return path


def test_cat_makes_the_system_calls_strace_sees(trace, strace, tmp_path, arch, arch_target):
    # On 32-bit x86: tinycat (gcc -m32), as Debian's i386 coreutils is
    # seldom installed; i386's system-call numbers, the same names.
    cat = CAT if arch == "x86-64" else arch_target("tinycat")
    (tmp_path / "f.txt").write_text("one\ntwo\nthree\n")
    strace_out = tmp_path / "strace.out"
    returncode, stdout, stderr = run_command(
        [strace, "-o", strace_out, "-e", "trace=openat,read,close", cat, "f.txt"], cwd=tmp_path
    )
    assert (returncode, stdout) == (0, "one\ntwo\nthree\n"), stderr
    expected = strace_calls(strace_out.read_text())
    assert ("openat", "f.txt", 3) in expected and len(expected) > 5, strace_out.read_text()

    out = tmp_path / "handlers.out"
    result = trace(CAT_SCRIPT, cat, "f.txt", options=["-q", "-o", out], cwd=tmp_path)
    printed = handler_output(out)
    assert result.returncode == 0, f"{result}\n--- handlers ---\n{printed}"
    assert result.stdout == "one\ntwo\nthree\n" and result.stderr == "", str(result)
    assert script_lines(printed, "[problems] ") == ["[]"], printed
    assert traced_calls(printed) == expected, f"--- handlers ---\n{printed}--- strace ---\n{strace_out.read_text()}"
    assert script_lines(printed, "[data] ") == [repr(b"one\ntwo\nthree\n")], printed


# ---------------------------------------------------------------------------
# 2. Threads

THREADS_SCRIPT = """\
import os
counts = {}
bad = []
def count(ctx, what):
    row = counts.setdefault(ctx.tid, {})
    row[what] = row.get(what, 0) + 1
@syscall_entry(syscall_name == "getppid")
def getppid_entry(ctx):
    count(ctx, "getppid-entry")
    if len(ctx.args) != 0:
        bad.append(("getppid arity", len(ctx.args)))
@syscall_exit(syscall_name == "getppid")
def getppid_exit(ctx):
    count(ctx, "getppid-exit")
    if ctx.retval != os.getppid():
        bad.append(("getppid", ctx.retval))
@syscall_entry(syscall_name == "write")
def write_entry(ctx):
    if ctx.args[0] != 1:
        count(ctx, "write-entry")
        count(ctx, "byte-" + ctx.args[1].decode())
        if ctx.args[2] != 1 or len(ctx.args[1]) != 1:
            bad.append(("write", ctx.args[1], ctx.args[2]))
@syscall_exit(syscall_name == "write")
def write_exit(ctx):
    if ctx.args[0] != 1:
        count(ctx, "write-exit")
        if ctx.retval != 1:
            bad.append(("write retval", ctx.retval))
@process_exit
def done(ctx):
    for tid, row in sorted(counts.items()):
        print("[tid]", "initial" if tid == os.getpid() else "other", sorted(row.items()))
    print("[bad]", bad[:5])
"""


def test_threads_every_system_call_is_seen(trace, ftarget, run_native):
    threads, calls, main_calls = 8, 1000, 5
    argv = [ftarget("syscall_threads"), str(threads), str(calls), str(main_calls)]
    native = run_native(*argv)
    assert native.returncode == 0 and native.stdout.splitlines()[-1] == f"joined {threads}", "the target misbehaves"
    result = trace(THREADS_SCRIPT, *argv, options=["-q"], timeout=180)
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == native.stdout.splitlines(), str(result)
    assert script_lines(result.stdout, "[bad] ") == ["[]"], str(result)
    rows = [line.split(" ", 1) for line in script_lines(result.stdout, "[tid] ")]
    initial = [ast.literal_eval(row) for kind, row in rows if kind == "initial"]
    others = sorted(ast.literal_eval(row) for kind, row in rows if kind == "other")

    def row(byte, n):
        return sorted([("getppid-entry", n), ("getppid-exit", n), ("write-entry", n),
                       ("write-exit", n), ("byte-" + byte, n)])

    assert initial == [row("0", main_calls)], str(result)
    # Each thread writes its own byte: the tids are the calls' own threads.
    expected = sorted(row(chr(ord("a") + t), calls) for t in range(threads))
    assert others == expected, str(result)


PREDICATE_SCRIPT = """\
import os
PID = os.getpid()   # the script runs in the target: its pid, and its initial thread's tid
seen = {{}}
@syscall_entry({predicate})
def enter(ctx):
    key = (ctx.syscall_name, ctx.syscall, "initial" if ctx.tid == PID else "other", ctx.pid == PID)
    seen[key] = seen.get(key, 0) + 1
@process_exit
def done(ctx):
    for key, n in sorted(seen.items()):
        print("[seen]", *key, n)
"""

THREADS, CALLS, MAIN_CALLS = 4, 100, 7


@pytest.mark.parametrize(
    "predicate, expected",
    [
        ('syscall_name == "getppid"',
         [["getppid", "110", "initial", "True", str(MAIN_CALLS)], ["getppid", "110", "other", "True", str(THREADS * CALLS)]]),
        ('syscall_num == 110',
         [["getppid", "110", "initial", "True", str(MAIN_CALLS)], ["getppid", "110", "other", "True", str(THREADS * CALLS)]]),
        ('syscall_num == syscall("getppid")',
         [["getppid", "110", "initial", "True", str(MAIN_CALLS)], ["getppid", "110", "other", "True", str(THREADS * CALLS)]]),
        ('(syscall_name == "getppid") & (thread_id == PID)',
         [["getppid", "110", "initial", "True", str(MAIN_CALLS)]]),
        ('(syscall_name == "getppid") & (thread_id != PID)',
         [["getppid", "110", "other", "True", str(THREADS * CALLS)]]),
        ('(syscall_name == "getppid") & (process_id == PID)',
         [["getppid", "110", "initial", "True", str(MAIN_CALLS)], ["getppid", "110", "other", "True", str(THREADS * CALLS)]]),
        ('(syscall_name == "getppid") & (process_id != PID)', []),
        ('syscall_name >> ["getppid", "nanosleep"]',
         [["getppid", "110", "initial", "True", str(MAIN_CALLS)], ["getppid", "110", "other", "True", str(THREADS * CALLS)]]),
        ('(syscall_name == "getppid") & ~(thread_id == PID)',
         [["getppid", "110", "other", "True", str(THREADS * CALLS)]]),
    ],
    ids=["name", "number", "syscall-helper", "initial-thread", "other-threads", "process", "other-process",
         "membership", "negation"],
)
def test_syscall_predicates(trace, ftarget, predicate, expected):
    argv = [ftarget("syscall_threads"), str(THREADS), str(CALLS), str(MAIN_CALLS)]
    result = trace(PREDICATE_SCRIPT.format(predicate=predicate), *argv, options=["-q"], timeout=120)
    assert result.returncode == 0, str(result)
    assert fields_of(result.stdout, "[seen] ") == expected, str(result)


# ---------------------------------------------------------------------------
# 3. A forked child is traced too

FORK_SCRIPT = """\
@syscall_entry(syscall_name == "getppid")
def on_getppid(ctx):
    print("[call]", ctx.pid, ctx.tid == ctx.pid, "getppid")
@syscall_entry(syscall_name == "openat")
def on_openat(ctx):
    if ctx.args[1].startswith("/nonexistent/"):
        print("[call]", ctx.pid, ctx.tid == ctx.pid, "openat", ctx.args[1])
@syscall_exit(syscall_name == "openat")
def openat_done(ctx):
    if ctx.args[1].startswith("/nonexistent/"):
        print("[exit]", ctx.pid, ctx.args[1], ctx.retval, ctx.errno)
"""


def test_forked_child_system_calls_are_seen(trace, ftarget, run_native):
    native = run_native(ftarget("forks"))
    assert native.returncode == 0 and re.fullmatch(r"child \d+ exited 7\n", native.stdout), "the target misbehaves"
    result = trace(FORK_SCRIPT, ftarget("forks"), options=["-q"])
    assert result.returncode == 0, str(result)
    (summary,) = [line for line in without_handler_lines(result.stdout) if line.startswith("child ")]
    child = re.fullmatch(r"child (\d+) exited 7", summary).group(1)
    calls = fields_of(result.stdout, "[call] ")
    pids = {c[0] for c in calls}
    assert len(pids) == 2 and child in pids, str(result)
    (parent,) = pids - {child}
    by = {pid: [c[1:] for c in calls if c[0] == pid] for pid in pids}
    assert by[child] == [["True", "getppid"]] * 3 + [["True", "openat", "/nonexistent/child"]], str(result)
    assert by[parent] == [["True", "getppid"]] * 2 + [["True", "openat", "/nonexistent/parent"]], str(result)
    exits = fields_of(result.stdout, "[exit] ")
    assert sorted(exits) == sorted([[child, "/nonexistent/child", "-2", "2"],
                                    [parent, "/nonexistent/parent", "-2", "2"]]), str(result)


FORK_EXIT_SCRIPT = """\
@syscall_exit(syscall_name >> ["clone", "clone3", "fork", "vfork"])
def forked(ctx):
    print("[exit]", ctx.syscall_name, "child" if ctx.retval == 0 else "parent")
"""


def test_fork_returns_in_parent_and_child(trace, ftarget):
    # The call that made the child returns twice: its exit event runs in
    # both processes (the child starts with a copy of the pending call).
    result = trace(FORK_EXIT_SCRIPT, ftarget("forks"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert sorted(fields_of(result.stdout, "[exit] ")) == [["clone", "child"], ["clone", "parent"]], str(result)


SPAWN_SCRIPT = """\
import os
@syscall_entry(syscall_name == "execve")
def executes(ctx):
    print("[execve]", ctx.args[0])
@syscall_exit(syscall_name == "wait4")
def waited(ctx):
    print("[wait4]", os.getpid(), ctx.retval > 0)
"""

SPAWNING_PYTHON = (
    "import subprocess, sys\n"
    "done = subprocess.run(['/bin/echo', 'from the child'], stdout=sys.stdout)\n"
    "print('child exited', done.returncode)\n"
)


def test_python_subprocess_runs_unchanged(trace, run_native):
    # Python's subprocess closes inherited fds in the vfork child with
    # close_range(3, ~0U), which DynamoRIO 11.90 walked one fd at a time,
    # for ever; the client bounds it to the highest open fd. The execve
    # handler runs in the vfork child, whose private thread data began as
    # a copy of the Python target's: it found the target's thread state
    # and waited for the target's GIL until the client cleared them.
    command = ("/usr/bin/python3", "-c", SPAWNING_PYTHON)
    native = run_native(*command)
    assert native.stdout == "from the child\nchild exited 0\n", "the target misbehaves"
    result = trace(SPAWN_SCRIPT, *command, options=["-q"], timeout=60)
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout, ("[wait4] ", "[execve] ")) == native.stdout.splitlines(), str(result)
    assert script_lines(result.stdout, "[execve] ") == ["/bin/echo"], str(result)
    assert [w[1] for w in fields_of(result.stdout, "[wait4] ")] == ["True"], str(result)


# ---------------------------------------------------------------------------
# 4. Fault injection: ctx.skip()

SKIP_SCRIPT = """\
@syscall_entry(syscall_name == "openat")
def deny(ctx):
    if ctx.args[1] == "a.txt":
        ctx.skip({retval})
@syscall_exit(syscall_name == "openat")
def seen(ctx):
    if ctx.args[1] in ("a.txt", "b.txt"):
        print("[openat]", ctx.args[1], ctx.retval, ctx.errno)
"""


@pytest.mark.parametrize(
    "retval, message",
    [(-errno.ENOENT, "No such file or directory"), (-errno.EACCES, "Permission denied")],
    ids=["ENOENT", "EACCES"],
)
def test_skip_makes_a_system_call_fail(trace, tmp_path, retval, message):
    (tmp_path / "a.txt").write_text("content of a\n")
    (tmp_path / "b.txt").write_text("content of b\n")
    out = tmp_path / "handlers.out"
    result = trace(SKIP_SCRIPT.format(retval=retval), CAT, "a.txt", "b.txt", options=["-q", "-o", out], cwd=tmp_path)
    printed = handler_output(out)
    assert result.returncode == 1, f"{result}\n--- handlers ---\n{printed}"
    assert result.stdout == "content of b\n", str(result)
    assert result.stderr.splitlines() == [f"{CAT}: a.txt: {message}"], str(result)
    # The exit handler sees the skipped call, with the retval it was given.
    (a, b) = fields_of(printed, "[openat] ")
    assert a == ["a.txt", str(retval), str(-retval)], printed
    assert b[0] == "b.txt" and int(b[1]) >= 0 and b[2] == "0", printed


def test_skip_with_a_success_value(trace, tmp_path):
    # write() skipped with the count it was asked for: the program thinks
    # it wrote, and nothing reaches stdout.
    script = """\
@syscall_entry(syscall_name == "write")
def swallow(ctx):
    if ctx.args[0] == 1:
        ctx.skip(ctx.args[2])
@syscall_exit(syscall_name == "write")
def seen(ctx):
    if ctx.args[0] == 1:
        print("[write]", ctx.retval, ctx.errno)
"""
    out = tmp_path / "handlers.out"
    result = trace(script, ECHO, "swallowed", options=["-q", "-o", out])
    assert result.returncode == 0, str(result)
    assert result.stdout == "" and result.stderr == "", str(result)
    assert fields_of(handler_output(out), "[write] ") == [["10", "0"]], handler_output(out)


# ---------------------------------------------------------------------------
# 5. Changing what a system call returns, or the arguments it gets


def test_exit_handler_changes_the_return_value(trace):
    script = """\
import os
@syscall_exit(syscall_name == "getppid")
def lie(ctx):
    print("[getppid]", ctx.retval == os.getppid())
    ctx.retval = 4242
"""
    result = trace(script, PYTHON, "-c", "import os; print('ppid', os.getppid())", options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[getppid] ") == ["True"], str(result)
    assert script_lines(result.stdout, "ppid ") == ["4242"], str(result)


def test_read_returning_zero_looks_like_end_of_file(trace, tmp_path):
    script = """\
fds = set()
@syscall_exit(syscall_name == "openat")
def opened(ctx):
    if ctx.args[1] == "f.txt":
        fds.add(ctx.retval)
@syscall_exit(syscall_name == "read")
def read(ctx):
    if ctx.args[0] in fds:
        print("[read]", ctx.retval)
        ctx.retval = 0
"""
    (tmp_path / "f.txt").write_text("one\ntwo\nthree\n")
    out = tmp_path / "handlers.out"
    result = trace(script, CAT, "f.txt", options=["-q", "-o", out], cwd=tmp_path)
    assert result.returncode == 0, str(result)
    assert result.stdout == "" and result.stderr == "", str(result)
    assert script_lines(handler_output(out), "[read] ") == ["14"], handler_output(out)


def test_entry_handler_changes_the_file_descriptor(trace, tmp_path):
    script = """\
@syscall_entry(syscall_name == "write")
def to_stderr(ctx):
    if ctx.args[0] == 1:
        ctx.args[0] = 2
"""
    result = trace(script, ECHO, "hello", "world", options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == "" and result.stderr == "hello world\n", str(result)


def test_entry_handler_shortens_a_write(trace, tmp_path):
    # Every write to stdout is cut to one byte: the kernel writes one byte,
    # and stdio writes the rest again, one byte at a time.
    script = """\
@syscall_entry(syscall_name == "write")
def shorten(ctx):
    if ctx.args[0] == 1:
        print("[entry]", repr(ctx.args[1]), ctx.args[2])
        ctx.args[2] = 1
@syscall_exit(syscall_name == "write")
def written(ctx):
    if ctx.args[0] == 1:
        print("[exit]", ctx.retval)
"""
    out = tmp_path / "handlers.out"
    text = b"hello world\n"
    result = trace(script, ECHO, "hello", "world", options=["-q", "-o", out])
    printed = handler_output(out)
    assert result.returncode == 0, f"{result}\n--- handlers ---\n{printed}"
    assert result.stdout == text.decode(), f"{result}\n--- handlers ---\n{printed}"
    # The input buffer at entry: the bytes the call says, all of them.
    assert script_lines(printed, "[entry] ") == [f"{text[i:]!r} {len(text) - i}" for i in range(len(text))], printed
    assert script_lines(printed, "[exit] ") == ["1"] * len(text), printed


def test_failing_openat_has_errno(trace, tmp_path):
    script = """\
@syscall_exit(syscall_name == "openat")
def opened(ctx):
    print("[openat]", ctx.args[1], ctx.retval, ctx.errno)
"""
    out = tmp_path / "handlers.out"
    result = trace(script, CAT, "/nonexistent/file", options=["-q", "-o", out])
    assert result.returncode == 1, str(result)
    assert "/nonexistent/file: No such file or directory" in result.stderr, str(result)
    calls = fields_of(handler_output(out), "[openat] ")
    assert ["/nonexistent/file", "-2", "2"] in calls, handler_output(out)
    assert all(int(errno_) == (-int(retval) if int(retval) < 0 else 0) for _, retval, errno_ in calls), handler_output(out)


# ---------------------------------------------------------------------------
# 6. ctx and the decoding of arguments


def test_syscall_context_fields(trace, target, tmp_path):
    script = """\
import os
@syscall_entry(syscall_name == "write")
@syscall_exit(syscall_name == "write")
def both(ctx):
    print("[ctx]", ctx.event, ctx.syscall, ctx.syscall_name, ctx.pid == os.getpid(), ctx.tid == os.getpid(),
          len(ctx.args), ctx.args[0], ctx.args.raw(0), ctx.args[2], ctx.args.raw(2),
          ctx.retval if ctx.event == "syscall_exit" else "-", ctx.errno if ctx.event == "syscall_exit" else "-")
    print("[buf]", ctx.event, repr(ctx.args[1]))
"""
    out = tmp_path / "handlers.out"
    result = trace(script, target("hello"), options=["-q", "-o", out])
    printed = handler_output(out)
    assert result.returncode == 0 and result.stdout == HELLO_OUTPUT, f"{result}\n--- handlers ---\n{printed}"
    n = len(HELLO_OUTPUT)
    assert fields_of(printed, "[ctx] ") == [
        ["syscall_entry", "1", "write", "True", "True", "3", "1", "1", str(n), str(n), "-", "-"],
        ["syscall_exit", "1", "write", "True", "True", "3", "1", "1", str(n), str(n), str(n), "0"],
    ], printed
    # An input buffer is the bytes the call says, at entry and at exit.
    assert script_lines(printed, "[buf] ") == [f"{e} {HELLO_OUTPUT.encode()!r}" for e in ("syscall_entry", "syscall_exit")], printed


def test_execve_arguments(trace):
    script = """\
@syscall_entry(syscall_name == "execve")
def on_exec(ctx):
    print("[execve]", repr(ctx.args[0]), repr(ctx.args[1]), len(ctx.args), ctx.syscall)
"""
    program = "import os; os.execv('/bin/echo', ['echo', 'x y', 'z'])"
    result = trace(script, PYTHON, "-c", program, options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[execve] ") == ["'/bin/echo' ['echo', 'x y', 'z'] 3 59"], str(result)
    assert without_handler_lines(result.stdout) == ["x y z"], str(result)


NO_PROTOTYPE_SCRIPT = """\
@syscall_entry({predicate})
def enter(ctx):
    if ctx.syscall == {number}:
        print("[entry]", ctx.syscall, ctx.args.raw(0), ctx.args[0])
        print("[prototype]", ctx.prototype)
        try:
            print("[len]", len(ctx.args))
        except MissingPrototype:
            print("[len] MissingPrototype")
@syscall_exit({predicate})
def leave(ctx):
    if ctx.syscall == {number}:
        print("[exit]", ctx.retval, ctx.errno)
"""

#: System calls without a prototype: sched_get_priority_max has a number
#: and a name but no prototype in the built-in table (which has the system
#: calls people trace); 9999 is a number the kernel does not know (ENOSYS),
#: a system call all the same, as strace shows it.
NO_PROTOTYPE_CASES = {
    "no-prototype": ('syscall_name == "sched_get_priority_max"', 146,
                     "import os; print('returned', os.sched_get_priority_max(os.SCHED_FIFO))",
                     "146 1 1", "99 0", "99"),
    "unknown-number": ("", 9999, "import ctypes; print('returned', ctypes.CDLL(None).syscall(9999, 5, 77))",
                       "9999 5 5", f"{-errno.ENOSYS} {errno.ENOSYS}", "-1"),
    "unknown-number-by-number": ("syscall_num == 9999", 9999,
                                 "import ctypes; print('returned', ctypes.CDLL(None).syscall(9999, 5, 77))",
                                 "9999 5 5", f"{-errno.ENOSYS} {errno.ENOSYS}", "-1"),
}


@pytest.mark.parametrize("case", NO_PROTOTYPE_CASES, ids=list(NO_PROTOTYPE_CASES))
def test_syscall_without_a_prototype_has_raw_arguments(trace, case):
    predicate, number, program, entry, exit_, returned = NO_PROTOTYPE_CASES[case]
    script = NO_PROTOTYPE_SCRIPT.format(predicate=predicate, number=number)
    result = trace(script, PYTHON, "-c", program, options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[entry] ") == [entry], str(result)
    assert script_lines(result.stdout, "[len] ") == ["MissingPrototype"], str(result)
    assert script_lines(result.stdout, "[prototype] ") == ["None"], str(result)
    assert script_lines(result.stdout, "[exit] ") == [exit_], str(result)
    assert script_lines(result.stdout, "returned ") == [returned], str(result)


def test_syscall_helper(trace, target):
    script = 'print(syscall("openat"), syscall(257), syscall("getppid"), syscall(110), syscall("execve"))\n'
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == "257 openat 110 getppid 59\n" + HELLO_OUTPUT, str(result)


def test_only_matching_system_calls_reach_the_handler(trace, target):
    script = """\
names = set()
@syscall_entry(syscall_name >> ["write", "exit_group"])
@syscall_exit(syscall_name >> ["write", "exit_group"])
def any_(ctx):
    names.add((ctx.event, ctx.syscall_name))
    if ctx.syscall_name == "exit_group":
        print("[names]", sorted(names))
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    # exit_group does not return: no exit event.
    assert script_lines(result.stdout, "[names] ") == [
        "[('syscall_entry', 'exit_group'), ('syscall_entry', 'write'), ('syscall_exit', 'write')]"
    ], str(result)


def test_every_system_call_without_a_predicate(trace, target, run_native):
    script = """\
import collections
entries = collections.Counter()
exits = collections.Counter()
@syscall_entry()
def enter(ctx):
    entries[ctx.syscall_name] += 1
@syscall_exit()
def leave(ctx):
    exits[ctx.syscall_name] += 1
@process_exit
def done(ctx):
    print("[entries]", sorted(entries.items()))
    print("[exits]", sorted(exits.items()))
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == HELLO_OUTPUT.splitlines(), str(result)
    (entries,) = [dict(ast.literal_eval(s)) for s in script_lines(result.stdout, "[entries] ")]
    (exits,) = [dict(ast.literal_eval(s)) for s in script_lines(result.stdout, "[exits] ")]
    # The loader's and libc's start-up calls, and hello's one write.
    assert entries.get("write") == exits.get("write") == 1, str(result)
    assert entries.get("openat", 0) >= 2 and entries.get("mmap", 0) >= 2, str(result)
    # exit_group does not return; every other call does.
    assert entries.pop("exit_group") == 1 and "exit_group" not in exits, str(result)
    assert entries == exits, str(result)


# ---------------------------------------------------------------------------
# 7. Where system calls are made: the probes instrument each `syscall`
# instruction, and the instruction after it, where the call returns.

SITES_SCRIPT = """\
events = []
@syscall_entry(syscall_name == "getppid")
def enter(ctx):
    events.append("entry")
@syscall_exit(syscall_name == "getppid")
def leave(ctx):
    events.append(f"exit {ctx.retval}")
@process_exit
def done(ctx):
    print("[events]", events)
"""

SITES_ROUNDS = 3


def site_results(stdout):
    """{kind: [value, ...]} of syscall_sites' own lines."""
    results = {}
    for line in without_handler_lines(stdout):
        kind, value = line.split()
        results.setdefault(kind, []).append(int(value))
    return results


def test_system_calls_at_awkward_sites_are_seen(trace, ftarget):
    # A `syscall` alone in its block (the number set in the block before),
    # whose return point ran, reached by a jump, before the call ever did;
    # and libc's syscall(), whose number is its argument.
    result = trace(SITES_SCRIPT, ftarget("syscall_sites"), str(SITES_ROUNDS), options=["-q"])
    assert result.returncode == 0, str(result)
    results = site_results(result.stdout)
    assert results["skipped"] == [110] * SITES_ROUNDS, str(result)
    (parent,) = set(results["own-block"] + results["generic"])
    assert parent > 1 and len(results["own-block"]) == len(results["generic"]) == SITES_ROUNDS, str(result)
    (events,) = [ast.literal_eval(line) for line in script_lines(result.stdout, "[events] ")]
    assert events == ["entry", f"exit {parent}"] * (2 * SITES_ROUNDS), str(result)


def test_skip_where_the_number_is_known_only_when_the_call_is_made(trace, ftarget):
    script = SITES_SCRIPT.replace('events.append("entry")', 'events.append("entry"); ctx.skip(4242)')
    result = trace(script, ftarget("syscall_sites"), str(SITES_ROUNDS), options=["-q"])
    assert result.returncode == 0, str(result)
    results = site_results(result.stdout)
    assert results == {"skipped": [110] * SITES_ROUNDS, "own-block": [4242] * SITES_ROUNDS,
                       "generic": [4242] * SITES_ROUNDS}, str(result)
    (events,) = [ast.literal_eval(line) for line in script_lines(result.stdout, "[events] ")]
    assert events == ["entry", "exit 4242"] * (2 * SITES_ROUNDS), str(result)


SIGNAL_SCRIPT = """\
events = []
@syscall_entry(syscall_name >> ["getppid", "write"])
def enter(ctx):
    if ctx.syscall_name == "getppid" or ctx.args[2] == 1:
        events.append(f"{ctx.syscall_name}-entry")
@syscall_exit(syscall_name >> ["getppid", "write"])
def leave(ctx):
    if ctx.syscall_name == "getppid" or ctx.args[2] == 1:
        events.append(f"{ctx.syscall_name}-exit {ctx.errno}")
@process_exit
def done(ctx):
    print("[events]", events)
"""


def test_signal_handler_system_calls_while_a_call_waits_for_its_exit(trace, ftarget, run_native):
    # A one-byte write to a pipe nobody reads raises SIGPIPE, whose handler
    # calls getppid() before the write's exit clean call runs (at the
    # instruction after the `syscall`, where the handler returns to): both
    # calls have their entry and exit, the write's with EPIPE.
    native = run_native(ftarget("syscall_sites"), "signal")
    assert native.stdout == "write -1 EPIPE\n", "the target misbehaves"
    result = trace(SIGNAL_SCRIPT, ftarget("syscall_sites"), "signal", options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == ["write -1 EPIPE"], str(result)
    (events,) = [ast.literal_eval(line) for line in script_lines(result.stdout, "[events] ")]
    assert events == ["write-entry", "getppid-entry", "getppid-exit 0", f"write-exit {errno.EPIPE}"], str(result)


def test_a_call_the_kernel_restarts_is_one_call(trace, ftarget, run_native):
    # A read interrupted by a SA_RESTART signal, whose handler calls
    # getppid(), goes back to its `syscall` instruction and waits again: one
    # entry and one exit, with the byte it finally read.
    native = run_native(ftarget("syscall_sites"), "restart")
    assert native.stdout == "read 1 x\n", "the target misbehaves"
    script = SIGNAL_SCRIPT.replace('"write"', '"read"')
    result = trace(script, ftarget("syscall_sites"), "restart", options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == ["read 1 x"], str(result)
    # The child (traced too) makes neither call.
    runs = [ast.literal_eval(line) for line in script_lines(result.stdout, "[events] ")]
    assert sorted(runs, key=len) == [[], ["read-entry", "getppid-entry", "getppid-exit 0", "read-exit 0"]], str(result)


def test_a_restarted_call_with_entry_probes_only_is_entered_once(trace, ftarget, run_native):
    # As above, with no exit probe to keep the read waiting for its return.
    script = SIGNAL_SCRIPT.replace('"write"', '"read"').split("@syscall_exit")[0] + (
        "@process_exit\ndef done(ctx):\n    print('[events]', events)\n")
    result = trace(script, ftarget("syscall_sites"), "restart", options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == ["read 1 x"], str(result)
    runs = [ast.literal_eval(line) for line in script_lines(result.stdout, "[events] ")]
    assert sorted(runs, key=len) == [[], ["read-entry", "getppid-entry"]], str(result)


#: Entry handlers that make the target receive a signal while they run: a
#: SIGCHLD sent to itself, or the exit of a program they start. cat ignores
#: SIGCHLD; DynamoRIO delivers it when the block leaves the code cache for
#: the system call, and runs the call's block again from its `syscall`.
SIGNALLING_HANDLERS = {
    "kill": "os.kill(os.getpid(), signal.SIGCHLD)",
    "subprocess": "subprocess.run(['/bin/true'], check=True)",
}


@pytest.mark.parametrize("exits", [False, True], ids=["entry-only", "entry-and-exit"])
@pytest.mark.parametrize("signalling", sorted(SIGNALLING_HANDLERS))
def test_a_signal_during_an_entry_handler_does_not_repeat_the_event(trace, strace, tmp_path, signalling, exits):
    (tmp_path / "f.txt").write_text("one\ntwo\n")
    strace_out = tmp_path / "strace.out"
    returncode, stdout, stderr = run_command([strace, "-o", strace_out, "-e", "trace=brk,read,close", CAT, "f.txt"],
                                             cwd=tmp_path)
    assert (returncode, stdout) == (0, "one\ntwo\n"), stderr
    expected = [m.group(1) for m in (re.match(r"(brk|read|close)\(", line)
                                     for line in strace_out.read_text().splitlines()) if m]
    assert expected.count("brk") >= 2 and expected.count("read") >= 2, strace_out.read_text()
    script = f"""\
import os, signal, subprocess
calls = []
@syscall_entry(syscall_name >> ["brk", "read", "close"])
def enter(ctx):
    {SIGNALLING_HANDLERS[signalling]}
    calls.append(ctx.syscall_name)
"""
    if exits:
        script += """\
exits = []
@syscall_exit(syscall_name >> ["brk", "read", "close"])
def leave(ctx):
    exits.append(ctx.syscall_name)
"""
    script += """\
@process_exit
def done(ctx):
    print("[calls]", calls)
    print("[exits]", globals().get("exits", calls))
"""
    out = tmp_path / "handlers.out"
    result = trace(script, CAT, "f.txt", options=["-q", "-o", out], cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "one\ntwo\n", ""), str(result)
    printed = handler_output(out)
    assert script_lines(printed, "[calls] ") == [repr(expected)], f"{printed}--- strace ---\n{strace_out.read_text()}"
    assert script_lines(printed, "[exits] ") == [repr(expected)], printed


# ---------------------------------------------------------------------------
# 8. Banner and errors

BANNER_SCRIPT = '@syscall_entry(syscall_name == "write")\ndef w(ctx):\n    pass\n'


def test_banner_counts_the_system_calls(trace, target):
    result = trace(BANNER_SCRIPT, target("hello"))
    assert result.returncode == 0 and result.stdout == HELLO_OUTPUT, str(result)
    counts = [int(m.group(1)) for m in (re.fullmatch(r"\[\*\] Loaded (\d+) system calls", line)
                                        for line in result.stderr.splitlines()) if m]
    assert len(counts) == 1 and counts[0] > 300, str(result)


def test_quiet_banner_with_syscall_probes(trace, target):
    result = trace(BANNER_SCRIPT, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == HELLO_OUTPUT and result.stderr == "", str(result)


@pytest.mark.parametrize(
    "predicate",
    ['syscall_name == "opnat"', 'syscall_name >> ["openat", "opnat"]'],
    ids=["equal", "membership"],
)
def test_unknown_system_call_is_refused(trace, target, predicate):
    script = f"@syscall_entry({predicate})\ndef never(ctx):\n    pass\n"
    result = trace(script, target("hello"))
    assert result.returncode == 2, str(result)
    assert result.stdout == "", str(result)
    assert "opnat" in result.stderr and "system call" in result.stderr.lower(), str(result)
