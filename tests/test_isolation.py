"""The tracer never touches the target: in every process of the trace, the
target's output, files, fds, signals and environment are what they are
untraced, and all the tracer writes reaches processtap's own stdout and
stderr, in whole lines.

Each test compares with the same command run untraced, and most run under
both launchers (conftest's ``tracer``: processtap, and DynamoRIO's stock
drrun, where the first traced process sets up what the launcher would).
"""

import os
import re
import subprocess

import pytest

from conftest import PYTHON, run_command

pytestmark = pytest.mark.usefixtures("no_dynamorio_variables")

#: One line per process at its exit, with its pid and program.
EXIT_LINES = (
    "@process_exit\n"
    "def done(ctx):\n"
    "    print(f'[ptap] {ctx.pid} {exe} exit {ctx.exit_code}')\n"
)


def tracer_lines(stdout):
    return [line for line in stdout.splitlines() if line.startswith("[ptap] ")]


def target_lines(stdout):
    return [line for line in stdout.splitlines() if not line.startswith("[ptap] ")]


def exits(stdout):
    """{program: [exit codes]} from EXIT_LINES' lines; python3.11 is python3."""
    found = {}
    for line in tracer_lines(stdout):
        match = re.fullmatch(r"\[ptap\] \d+ (\S+) exit (-?\d+)", line)
        if match:
            program = re.sub(r"^python3\.\d+$", "python3", os.path.basename(match[1]))
            found.setdefault(program, []).append(int(match[2]))
    return found


# ---------------------------------------------------------------------------
# What a child's fd 1 and 2 lead to is the target's


def test_command_substitution_captures_only_the_targets_output(tracer, run_native):
    command = ["/bin/bash", "-c", 'p=$(/bin/echo hi); q=$(/bin/ls /nonexistent-ptap 2>&1); echo "[$p]" "[${q:0:7}]"']
    native = run_native(*command, env={"LC_ALL": "C"})
    assert native.stdout == "[hi] [/bin/ls]\n", native
    result = tracer(EXIT_LINES, *command, options=["-q"], env={"LC_ALL": "C"})
    assert result.returncode == native.returncode == 0, str(result)
    assert target_lines(result.stdout) == native.stdout.splitlines(), str(result)
    assert exits(result.stdout).keys() >= {"bash", "echo", "ls"}, str(result)


def test_banner_of_an_exec_child_is_not_captured_with_o(tracer, run_native, tmp_path):
    # Without -q every traced process prints its banner, exec'd children
    # too: it goes to processtap's stderr, never into `$(... 2>&1)`.
    command = ["/bin/bash", "-c", 'x=$(/bin/ls /nonexistent-ptap 2>&1); echo "[$x]"']
    native = run_native(*command, env={"LC_ALL": "C"})
    result = tracer(EXIT_LINES, *command, options=["-o", str(tmp_path / "out.txt")], env={"LC_ALL": "C"})
    assert result.returncode == native.returncode, str(result)
    assert result.stdout == native.stdout, str(result)
    assert result.stderr.count("[*] Executable file:") >= 2, str(result)
    assert "ls" in exits((tmp_path / "out.txt").read_text()), str(result)


def test_python_subprocess_pipe_gets_only_the_childs_output(tracer, run_native):
    command = [PYTHON, "-c", "import subprocess; print(repr(subprocess.run(['/bin/echo', 'hi'], capture_output=True).stdout))"]
    native = run_native(*command)
    assert native.stdout == "b'hi\\n'\n", native
    result = tracer(EXIT_LINES, *command, options=["-q"])
    assert result.returncode == 0, str(result)
    assert target_lines(result.stdout) == native.stdout.splitlines(), str(result)
    assert exits(result.stdout).keys() >= {"python3", "echo"}, str(result)


def test_tar_writes_a_valid_archive(tracer, tmp_path):
    # tar runs gzip with its stdout on the archive: a line of the tracer's
    # there corrupted it.
    source = tmp_path / "dir"
    source.mkdir()
    for i in range(5):
        (source / f"file{i}.txt").write_text(f"content {i}\n" * 100)
    script = EXIT_LINES + (
        "@syscall_entry(syscall_name == 'write')\n"
        "def wrote(ctx):\n"
        "    print(f'[ptap] {ctx.pid} {exe} write {ctx.args[2]}')\n"
    )
    archive = tmp_path / "t.tgz"
    result = tracer(script, "/bin/tar", "czf", archive, "dir", options=["-q"], cwd=tmp_path)
    assert result.returncode == 0, str(result)
    assert any(" write " in line and "gzip" in line for line in tracer_lines(result.stdout)), str(result)
    assert subprocess.run(["gzip", "-t", str(archive)], capture_output=True).returncode == 0, str(result)
    listing = subprocess.run(["tar", "tzf", str(archive)], capture_output=True, text=True, check=True).stdout
    assert sorted(listing.split()) == ["dir/"] + [f"dir/file{i}.txt" for i in range(5)], listing


def test_a_child_whose_stdout_is_a_closed_pipe_still_reports(tracer, run_native):
    # yes's process_exit line went to its own fd 1, head's closed pipe.
    command = ["/bin/sh", "-c", "yes | head -1"]
    native = run_native(*command)
    result = tracer(EXIT_LINES, *command, options=["-q"])
    assert result.returncode == native.returncode == 0, str(result)
    assert target_lines(result.stdout) == ["y"], str(result)
    found = exits(result.stdout)
    # yes dies of the SIGPIPE its write raised, as untraced.
    assert found.get("yes") == [128 + 13] and found.get("head") == [0], str(result)


def test_target_keeps_the_sigpipe_disposition_it_was_given(processtap, tmp_path):
    # Rust's runtime ignores SIGPIPE: a target started from there wrote
    # "Broken pipe" and exited 1 instead of dying of it.
    script = tmp_path / "empty.ptap"
    script.write_text("")
    shell = 'yes | head -1; echo "status ${PIPESTATUS[0]}"'
    native = run_command(["/bin/bash", "-c", shell])
    traced = run_command(["/bin/bash", "-c", shell.replace("yes", f"{processtap} -q {script} -- yes", 1)])
    assert native[1] == "y\nstatus 141\n", native
    assert traced[1] == native[1], traced
    assert "Broken pipe" not in traced[2], traced


@pytest.mark.parametrize("redirect", [">&-", "2>&-", "<&-", ">&- 2>&-"])
@pytest.mark.parametrize("program", ["/bin/true", "/bin/echo x"])
def test_an_exec_child_with_closed_std_fds_runs_as_untraced(tracer, run_native, redirect, program):
    command = ["/bin/bash", "-c", f'{program} {redirect}; echo "status $?"']
    native = run_native(*command, env={"LC_ALL": "C"})
    result = tracer(EXIT_LINES, *command, options=["-q"], env={"LC_ALL": "C"})
    assert result.returncode == native.returncode, str(result)
    assert target_lines(result.stdout) == native.stdout.splitlines(), str(result)
    assert os.path.basename(program.split()[0]) in exits(result.stdout), str(result)


def test_child_output_reaches_the_tracer_whatever_its_fd_1(tracer):
    command = ["/bin/sh", "-c", "/bin/echo hidden >/dev/null; /bin/echo shown | /bin/cat"]
    result = tracer(EXIT_LINES, *command, options=["-q"])
    assert result.returncode == 0, str(result)
    assert target_lines(result.stdout) == ["shown"], str(result)
    assert exits(result.stdout)["echo"] == [0, 0] and "cat" in exits(result.stdout), str(result)


# ---------------------------------------------------------------------------
# The tracer's fds are out of the target's reach

CLOSE_EVERYTHING = """\
import os, subprocess, sys
pid = os.fork()
if pid == 0:
    os.closerange(3, 65536)                     # close_range(2)
    os.close_range = None
    for name in os.listdir("/proc/self/fd"):    # and one by one
        try:
            os.close(int(name))
        except OSError:
            pass
    for name in os.listdir("/proc/self/fd"):    # and dup2 over each
        try:
            os.dup2(1, int(name))
        except OSError:
            pass
    os.getppid()
    subprocess.run(["/bin/true"])
    os._exit(0)
os.waitpid(pid, 0)
print("parent done")
"""


def test_a_child_that_closes_every_fd_keeps_the_tracers_output(tracer):
    script = EXIT_LINES + (
        "@syscall_entry(syscall_name == 'getppid')\n"
        "def asked(ctx):\n"
        "    print(f'[ptap] {ctx.pid} getppid')\n"
    )
    result = tracer(script, PYTHON, "-c", CLOSE_EVERYTHING, options=["-q"])
    assert result.returncode == 0, str(result)
    assert target_lines(result.stdout) == ["parent done"], str(result)
    assert any(line.endswith(" getppid") for line in tracer_lines(result.stdout)), str(result)
    found = exits(result.stdout)
    assert found.get("true") == [0] and found.get("python3") == [0, 0], str(result)
    assert "lost sys.stderr" not in result.stderr and "Traceback" not in result.stderr, str(result)


def test_the_tracers_fds_are_in_dynamorios_range(tracer, run_native):
    # The target sees its own fds below its limit, and nothing of ours.
    code = (
        "import os, resource\n"
        "limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "print(sorted(int(n) for n in os.listdir('/proc/self/fd') if int(n) < limit))\n"
    )
    native = run_native(PYTHON, "-c", code)
    result = tracer("", PYTHON, "-c", code, options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == native.stdout, str(result)


@pytest.mark.parametrize("how", ["exec", "child"])
def test_a_script_a_traced_shell_executes_opens_what_it_would_untraced(tracer, run_native, tmp_path, how):
    # DynamoRIO runs a #! script's interpreter itself at execve and left
    # the interpreter open on the new program's lowest free fd: its files
    # opened one fd higher than untraced (fd 4 for 3).
    script = tmp_path / "fds.sh"
    script.write_text("#!/bin/sh\nexec 9</etc/hostname\nls /proc/$$/fd\n")
    script.chmod(0o755)
    command = ["/bin/sh", "-c", f"exec {script}" if how == "exec" else f"{script}; true"]
    native = run_native(*command)
    result = tracer("", *command, options=["-q"])
    assert result.returncode == native.returncode == 0, str(result)
    below_ours = lambda out: sorted(int(n) for n in out.split() if int(n) < 1000)  # noqa: E731
    assert below_ours(result.stdout) == below_ours(native.stdout), (str(result), native.stdout)
    assert 3 not in below_ours(native.stdout), native.stdout


def test_the_old_signal_mask_is_the_kernels(tracer, run_native):
    # DynamoRIO emulates the mask and kept SIGKILL and SIGSTOP in it when
    # the program blocked everything: the old mask read back had them.
    code = (
        "import signal\n"
        "signal.pthread_sigmask(signal.SIG_SETMASK, signal.valid_signals())\n"
        "old = signal.pthread_sigmask(signal.SIG_SETMASK, [])\n"
        "print(signal.SIGKILL in old, signal.SIGSTOP in old, signal.SIGTERM in old, len(old))\n"
    )
    native = run_native(PYTHON, "-c", code)
    result = tracer("", PYTHON, "-c", code, options=["-q"])
    assert native.stdout.startswith("False False True "), native.stdout
    assert result.returncode == 0 and result.stdout == native.stdout, str(result)


# ---------------------------------------------------------------------------
# The launcher's own fds and signals


@pytest.mark.parametrize("redirect", [">&-", "<&-", "2>&-"])
def test_closed_std_fds_of_processtap_stay_closed_for_the_target(processtap, tmp_path, redirect):
    # Rust's runtime opens /dev/null on a closed fd 0-2, and the target
    # found it there.
    script = tmp_path / "empty.ptap"
    script.write_text("")
    probe = (
        "import os; fds = [fd for fd in (0, 1, 2) if os.path.exists(f'/proc/self/fd/{fd}')];"
        "open(os.environ['PTAP_REPORT'], 'w').write(repr(fds))"
    )
    report_native = tmp_path / "native.txt"
    report_traced = tmp_path / "traced.txt"
    run_command(["/bin/bash", "-c", f"{PYTHON} -c \"{probe}\" {redirect}"], env={"PTAP_REPORT": str(report_native)})
    run_command(
        ["/bin/bash", "-c", f"{processtap} -q {script} -- {PYTHON} -c \"{probe}\" {redirect}"],
        env={"PTAP_REPORT": str(report_traced)},
    )
    assert report_native.read_text() != "[0, 1, 2]", "the redirection closed nothing"
    assert report_traced.read_text() == report_native.read_text()


def test_a_vfork_child_reports_its_own_pid(tracer):
    # Python's subprocess starts children with vfork: the child runs in
    # its parent's memory until it execs, under its own pid.
    script = (
        "import os\n"
        "@syscall_entry(syscall_name == 'execve')\n"
        "def exec_(ctx):\n"
        "    print(f'[ptap] execve {ctx.pid} {os.getpid()}')\n"
    )
    code = "import subprocess; p = subprocess.Popen(['/bin/true']); print('child', p.pid); p.wait()"
    result = tracer(script, PYTHON, "-c", code, options=["-q"])
    assert result.returncode == 0, str(result)
    (child,) = [line.split()[1] for line in target_lines(result.stdout)]
    execs = [line.split()[2:] for line in tracer_lines(result.stdout)]
    assert [child, child] in execs, str(result)


# ---------------------------------------------------------------------------
# Whole lines


def test_lines_of_many_processes_never_mix(tracer):
    # Eight processes at once, each printing long lines into one pipe, and
    # a partial line finished later.
    script = (
        "@process_exit\n"
        "def done(ctx):\n"
        "    for i in range(40):\n"
        "        print(f'[ptap] {ctx.pid} ', end='')\n"
        "        print(str(ctx.pid % 10) * 3000)\n"
    )
    command = ["/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8; do /bin/true & done; wait"]
    result = tracer(script, *command, options=["-q"])
    assert result.returncode == 0, str(result)
    lines = tracer_lines(result.stdout)
    assert len(lines) == 9 * 40, str(result)[:2000]
    for line in lines:
        _, pid, digits = line.split(" ")
        assert digits == str(int(pid) % 10) * 3000, line[:200]
    assert target_lines(result.stdout) == []


def test_no_line_is_lost_when_the_target_makes_its_stdout_non_blocking(processtap, tmp_path):
    # processtap's stdout is the target's too: one open file description,
    # whose O_NONBLOCK the target may set (node does). The tracer's writes
    # into a full pipe then wait instead of being dropped.
    script = tmp_path / "lines.ptap"
    script.write_text(
        "@syscall_entry(syscall_name == 'getppid')\n"
        "def asked(ctx):\n"
        "    print('[ptap]', 'x' * 1000)\n"
    )
    code = (
        "import fcntl, os\n"
        "fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) | os.O_NONBLOCK)\n"
        "for _ in range(2000):\n"
        "    os.getppid()\n"
    )
    shell = f"{processtap} -q {script} -- {PYTHON} -c \"{code}\" | (sleep 1; grep -c '^\\[ptap\\] x*$')"
    returncode, stdout, stderr = run_command(["/bin/bash", "-c", shell])
    assert (returncode, stdout.strip()) == (0, "2000"), stderr


CLOSES_STDERR = """\
import sys
@syscall_entry(syscall_name == "write")
def closer(ctx):
    sys.stderr.close()
@syscall_exit(syscall_name == "write")
def boom(ctx):
    raise ValueError("after stderr closed")
"""


def test_a_handler_error_after_sys_stderr_is_closed_reaches_the_tracers_stderr(tracer, tmp_path):
    """Python's fallback for a lost sys.stderr writes to fd 2, the target's."""
    err = tmp_path / "target-stderr"
    result = tracer(CLOSES_STDERR, "/bin/sh", "-c", f"exec /bin/cat /etc/hostname 2>{err}", options=["-q"])
    assert result.returncode == 0, str(result)
    assert err.read_text() == "", "the tracer wrote into the target's stderr file"
    assert 'line 7, in boom' in result.stderr and "ValueError: after stderr closed" in result.stderr, str(result)
    assert "[!] handler boom (syscall_exit) raised an exception" in result.stderr, str(result)
