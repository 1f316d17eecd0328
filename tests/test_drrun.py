"""The user's form ``drrun -c libptap.so [OPTIONS] SCRIPT -- COMMAND`` with a stock drrun.

drrun is DynamoRIO's own, built from DynamoRIO's sources at the tag the
``dynamorio-sys`` crate vendors (``scripts/build-drrun``, run by the
``drrun`` fixture of conftest), and run as
``drrun -root <the crate's DynamoRIO build> -c libptap.so ...`` with
``DYNAMORIO_CONFIGDIR`` a temporary directory (drrun passes DynamoRIO's
options in a ``<app>.<pid>.1config64`` file there).

Where both forms must behave alike, a test runs under both launchers (the
``tracer`` fixture of conftest, ids ``processtap`` and ``drrun``); the
ground truth is the untraced program's own output and exit status.
"""

import os
import re
from pathlib import Path

import pytest

from conftest import HELLO_OUTPUT, PYTHON, config_files, run_command, script_lines
from function_targets import fields_of, ftarget, without_handler_lines  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_dynamorio_variables")

def shell_status(returncode):
    """An exit status as a shell shows it: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


# ---------------------------------------------------------------------------
# The drrun itself


def test_drrun_is_dynamorios_and_injects_with_root(drrun, run_native, configdir):
    version = run_native(drrun.path, "-version")
    assert version.returncode == 0, version
    assert re.fullmatch(r"drrun version 11\.90\.\d+ -- build \d+\n", version.stdout), version
    # No client: the kernel's own map of the program shows DynamoRIO in it.
    maps = run_native(drrun.path, "-root", drrun.root, "--", "/bin/cat", "/proc/self/maps",
                      env={"DYNAMORIO_CONFIGDIR": str(configdir)})
    assert maps.returncode == 0, maps
    mapped = {line.split()[-1] for line in maps.stdout.splitlines() if len(line.split()) == 6}
    assert str(drrun.root / "lib64" / "release" / "libdynamorio.so") in mapped, maps.stdout
    assert os.path.realpath("/bin/cat") in mapped, maps.stdout


# ---------------------------------------------------------------------------
# Output: the script's on stdout, the banner on stderr, -q, -o

TOP_AND_EXIT_SCRIPT = """\
print("[ptap] top level")
@process_exit
def done(ctx):
    print("[ptap] exit", ctx.exit_code)
"""


def test_script_output_on_stdout_and_banner_on_stderr(tracer, target, run_native):
    hello = target("hello")
    native = run_native(hello)
    assert native.returncode == 0 and native.stdout == HELLO_OUTPUT, "the target misbehaves"
    result = tracer(TOP_AND_EXIT_SCRIPT, hello)
    assert result.returncode == 0, str(result)
    assert result.stdout == "[ptap] top level\n" + native.stdout + "[ptap] exit 0\n", str(result)
    lines = result.stderr.splitlines()
    assert lines[:2] == [f"[*] Executable file: {hello} (x86-64)", f"[*] PTAP file: {result.script}"], str(result)
    probes = lines[lines.index("[*] Loaded probes:") + 1:]
    assert probes[:2] == ["    [*] process.exit", "        [+] (true) done"], str(result)
    assert any(line.startswith(f"[*] Parsing '{hello}' [") for line in lines), str(result)
    assert "[*]" not in result.stdout, str(result)


def test_q_removes_the_banner(tracer, target):
    result = tracer(TOP_AND_EXIT_SCRIPT, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stderr == "", str(result)
    assert result.stdout == "[ptap] top level\n" + HELLO_OUTPUT + "[ptap] exit 0\n", str(result)


#: What an -o file held before the run: the launcher, or under drrun the
#: first traced process, empties it once; every process then appends.
STALE = "stale content from an earlier run\n"


def test_o_sends_the_script_output_to_the_file(tracer, target, tmp_path):
    output = tmp_path / "trace.txt"
    output.write_text(STALE)
    result = tracer(TOP_AND_EXIT_SCRIPT, target("hello"), options=["-o", str(output)])
    assert result.returncode == 0, str(result)
    assert result.stdout == HELLO_OUTPUT, str(result)
    assert "[*] Loaded probes:" in result.stderr, str(result)
    assert output.read_text() == "[ptap] top level\n[ptap] exit 0\n", str(result)


# ---------------------------------------------------------------------------
# Probes fire: a function probe and a system-call probe

MALLOC_SIZES_SCRIPT = """\
app = {}
@module_load(module_name == "malloc_sizes")
def on_app(ctx):
    app["range"] = (ctx.module_base, ctx.module_end)
@function_entry(function_name == "malloc")
def malloc_entry(ctx):
    low, high = app["range"]
    if low <= ctx.caller < high:
        print("[malloc]", ctx.args[0])
"""


def test_function_probe_fires(tracer, ftarget, run_native):
    native = run_native(ftarget("malloc_sizes"))
    sizes = script_lines(native.stdout, "malloc ")
    assert native.returncode == 0 and len(sizes) == 8, "the target misbehaves"
    result = tracer(MALLOC_SIZES_SCRIPT, ftarget("malloc_sizes"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[malloc] ") == sizes, str(result)
    assert without_handler_lines(result.stdout) == native.stdout.splitlines(), str(result)


WRITE_SCRIPT = """\
import sys
written = []
@syscall_entry(syscall_name == "write")
def enter(ctx):
    if ctx.args[0] == 1:
        written.append(ctx.args[1])
@syscall_exit(syscall_name == "write")
def leave(ctx):
    if ctx.args[0] == 1:
        print("[write] returned", ctx.retval, ctx.errno, file=sys.stderr)
@process_exit
def done(ctx):
    print("[written]", repr(b"".join(written)))
"""


def test_system_call_probe_fires(tracer, target, run_native):
    # What hello writes to fd 1, seen at the write calls' entries, is what
    # it prints untraced; each call returns its full length.
    native = run_native(target("hello"))
    result = tracer(WRITE_SCRIPT, target("hello"), options=["-q"])
    assert result.returncode == native.returncode == 0, str(result)
    (written,) = script_lines(result.stdout, "[written] ")
    assert written == repr(native.stdout.encode()), str(result)
    returned = [int(line.split()[0]) for line in script_lines(result.stderr, "[write] returned ")]
    assert returned and sum(returned) == len(native.stdout.encode()), str(result)


# ---------------------------------------------------------------------------
# Children

PID_EXIT_SCRIPT = """\
import os
@process_exit
def done(ctx):
    print("[ptap] exit", os.getpid(), exe, ctx.exit_code)
"""

SH = os.path.realpath("/bin/sh")
ECHO = os.path.realpath("/bin/echo")


def test_a_shell_and_the_two_programs_it_runs_are_traced(tracer, run_native):
    command = ["/bin/sh", "-c", "echo $$; /bin/echo one; /bin/echo two; echo done"]
    native = run_native(*command)
    assert native.returncode == 0 and native.stdout.split()[1:] == ["one", "two", "done"], native
    result = tracer(PID_EXIT_SCRIPT, *command, options=["-q"])
    assert result.returncode == 0, str(result)
    lines = result.stdout.splitlines()
    shell = lines[0]
    # Each child's handler runs as it exits, before the shell goes on.
    assert len(lines) == 7, str(result)
    assert lines[1] == "one" and lines[3] == "two" and lines[5] == "done", str(result)
    children = [lines[2].split(), lines[4].split()]
    assert [c[:2] + c[3:] for c in children] == [["[ptap]", "exit", ECHO, "0"]] * 2, str(result)
    assert lines[6] == f"[ptap] exit {shell} {SH} 0", str(result)
    pids = {shell, children[0][2], children[1][2]}
    assert len(pids) == 3, str(result)


def test_a_child_whose_stdout_is_elsewhere_prints_to_the_tracers_stdout(tracer, run_native):
    # The script's output is the tracer's, not the child's fd 1 (here
    # /dev/null): every process of the trace prints where the first one does.
    command = ["/bin/sh", "-c", "echo $$; /bin/echo hidden >/dev/null; /bin/echo shown"]
    native = run_native(*command)
    assert native.returncode == 0 and native.stdout.split()[1:] == ["shown"], native
    result = tracer(PID_EXIT_SCRIPT, *command, options=["-q"])
    assert result.returncode == 0, str(result)
    shell = result.stdout.split()[0]
    exits = fields_of(result.stdout, "[ptap] exit ")
    assert [e[1:] for e in exits] == [[ECHO, "0"], [ECHO, "0"], [SH, "0"]], str(result)
    assert exits[-1][0] == shell and len({e[0] for e in exits}) == 3, str(result)
    assert without_handler_lines(result.stdout) == [shell, "shown"], str(result)


def test_children_after_cd_find_a_relative_script_and_output(tracer, tmp_path):
    # SCRIPT and -o FILE given relative to where the trace starts: a child
    # run after the shell changed directory still reads that script and
    # writes to that file.
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "pids.ptap").write_text(PID_EXIT_SCRIPT)
    command = ["/bin/sh", "-c", "echo $$; cd / && /bin/echo one; /bin/echo two"]
    result = tracer(Path("pids.ptap"), *command, options=["-q", "-o", "trace.txt"], cwd=workdir)
    assert result.returncode == 0 and result.stderr == "", str(result)
    shell, one, two = result.stdout.split()
    assert (one, two) == ("one", "two"), str(result)
    output = workdir / "trace.txt"
    exits = fields_of(output.read_text(), "[ptap] exit ") if output.exists() else []
    assert [e[1:] for e in exits] == [[ECHO, "0"], [ECHO, "0"], [SH, "0"]], str(result)
    assert exits[-1][0] == shell, str(result)


FORK_SCRIPT = """\
@syscall_entry(syscall_name >> ["getppid", "openat"])
def enter(ctx):
    if ctx.syscall_name == "getppid":
        print("[call]", ctx.pid, "getppid")
    elif ctx.args[1].startswith("/nonexistent/"):
        print("[call]", ctx.pid, "openat", ctx.args[1])
@process_exit
def done(ctx):
    print("[exit]", ctx.pid, ctx.exit_code)
"""


def test_a_forked_child_is_traced(tracer, ftarget, run_native):
    native = run_native(ftarget("forks"))
    assert native.returncode == 0 and re.fullmatch(r"child \d+ exited 7\n", native.stdout), native
    result = tracer(FORK_SCRIPT, ftarget("forks"), options=["-q"])
    assert result.returncode == 0 and result.stderr == "", str(result)
    (summary,) = without_handler_lines(result.stdout)
    child = re.fullmatch(r"child (\d+) exited 7", summary).group(1)
    calls = fields_of(result.stdout, "[call] ")
    pids = {c[0] for c in calls}
    assert len(pids) == 2 and child in pids, str(result)
    (parent,) = pids - {child}
    by = {pid: [c[1:] for c in calls if c[0] == pid] for pid in pids}
    assert by[child] == [["getppid"]] * 3 + [["openat", "/nonexistent/child"]], str(result)
    assert by[parent] == [["getppid"]] * 2 + [["openat", "/nonexistent/parent"]], str(result)
    assert fields_of(result.stdout, "[exit] ") == [[child, "7"], [parent, "0"]], str(result)


# ---------------------------------------------------------------------------
# Exit status

EXIT_SCRIPT = '@process_exit\ndef done(ctx):\n    print("[exit]", ctx.exit_code, ctx.signal)\n'

EXITS = {
    "0": (["<exit_with>", "0"], 0),
    "1": (["<exit_with>", "1"], 1),
    "3": (["<exit_with>", "3"], 3),
    "143-SIGTERM": ([PYTHON, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"], 143),
}


@pytest.mark.parametrize("command, status", list(EXITS.values()), ids=list(EXITS))
def test_exit_status_is_the_targets(tracer, target, run_native, command, status):
    command = [target("exit_with") if word == "<exit_with>" else word for word in command]
    native = run_native(*command)
    assert native.returncode == status, "the target misbehaves"
    result = tracer(EXIT_SCRIPT, *command, options=["-q"])
    assert shell_status(result.returncode) == status, str(result)
    sig = status - 128 if status > 128 else None
    assert script_lines(result.stdout, "[exit] ") == [f"{status} {sig}"], str(result)
    if tracer.launcher == "drrun" and sig:
        # drrun execs the target in its own process, which dies of the
        # signal itself (processtap, a parent, exits with 128+N).
        assert result.returncode == -sig, str(result)


# ---------------------------------------------------------------------------
# A missing command, a missing script


@pytest.mark.parametrize("command", ["/nonexistent/program", "no-such-command-for-ptap-tests"])
def test_drrun_reports_a_missing_command(under_drrun, configdir, tmp_path, command):
    # drrun looks the command up on PATH, then takes it as a path relative
    # to the working directory; the target is never started, so neither is
    # the script.
    result = under_drrun('print("[ptap] script ran")\n', command, cwd=tmp_path)
    expected = command if command.startswith("/") else f"{tmp_path}/{command}"
    assert result.returncode == 1, str(result)
    assert result.stderr == f'ERROR: Failed to create process for "{expected}": \n', str(result)
    assert result.stdout == "", str(result)
    assert config_files(configdir) == [], str(result)


def test_a_missing_script_stops_before_the_target_runs(tracer, tmp_path, configdir):
    # Under drrun the client finds out, inside the target before its first
    # instruction; processtap before it starts DynamoRIO. Same message.
    script = tmp_path / "no-such-script.ptap"
    result = tracer(script, "/bin/echo", "target ran")
    assert result.returncode == 2, str(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"processtap: {script}: cannot read script: "), str(result)
    assert "no such file" in lines[0].lower(), str(result)
    assert result.stdout == "", "the target ran\n" + str(result)
    assert config_files(configdir) == [], str(result)


# ---------------------------------------------------------------------------
# drrun's config file


def test_drrun_leaves_no_config_file_behind(under_drrun, configdir, target):
    result = under_drrun(TOP_AND_EXIT_SCRIPT, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == "[ptap] top level\n" + HELLO_OUTPUT + "[ptap] exit 0\n", str(result)
    # drrun wrote its file there (it made the folder), and DynamoRIO removed it.
    assert (configdir / ".dynamorio").is_dir(), str(result)
    assert config_files(configdir) == [], str(result)


def test_drrun_cannot_start_a_script_as_command(under_drrun, configdir, tmp_path):
    # Unlike processtap, which runs a '#!' script through its interpreter,
    # DynamoRIO's drrun execs libdynamorio.so on the script itself, which
    # refuses it; its config file stays behind.
    command = tmp_path / "hello.sh"
    command.write_text("#!/bin/sh\necho from the script\n")
    command.chmod(0o755)
    result = under_drrun('print("[ptap] script ran")\n', command)
    assert result.returncode == 255, str(result)
    assert "DynamoRIO usage error : Failed to read app ELF headers" in result.stderr, str(result)
    assert result.stdout == "", str(result)
    left = [os.path.basename(f) for f in config_files(configdir)]
    assert len(left) == 1 and re.fullmatch(r"hello\.sh\.\d+\.1config64", left[0]), str(result)


# ---------------------------------------------------------------------------
# The target's environment

ENV_COMMANDS = {
    "env": ["/usr/bin/env"],
    "sh-execs-env": ["/bin/sh", "-c", "/usr/bin/env"],
    "sh-forks-env": ["/bin/sh", "-c", "/usr/bin/env; :"],
}


@pytest.mark.parametrize("command", list(ENV_COMMANDS.values()), ids=list(ENV_COMMANDS))
def test_the_target_sees_its_own_environment(tracer, run_native, command):
    # Untraced, the program sees the tests' environment; traced, the same:
    # no DYNAMORIO_* variable (drrun's DYNAMORIO_CONFIGDIR included) and no
    # entry DynamoRIO disabled in place.
    native = run_native(*command, env={"LC_ALL": "C"})
    assert native.returncode == 0 and "PATH=" in native.stdout, native
    result = tracer("", *command, options=["-q"], env={"LC_ALL": "C"})
    assert result.returncode == 0, str(result)
    traced = result.stdout.splitlines()
    ours = [line for line in traced if line.startswith("DYNAMORIO_") or "__disabled__" in line]
    assert ours == [], f"DynamoRIO's entries reach the target: {ours}\n{result}"
    assert sorted(traced) == sorted(native.stdout.splitlines()), str(result)


def test_a_probe_that_never_matched_is_warned_about_once(tracer):
    # Under drrun no launcher gathers what the processes saw: the first
    # process warns about its own probes, its children do not repeat it.
    script = '@function_entry(function_name == "mallo")\ndef malloc_entry(ctx):\n    pass\n'
    result = tracer(script, "/bin/sh", "-c", "/bin/true; /bin/true", options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stderr.splitlines() == ["[!] probe malloc_entry never matched: no function named 'mallo'"], str(result)


def test_t_prints_straces_lines_under_drrun_and_l_refuses(drrun, run_native, configdir, tmp_path):
    # -t is the client's own (one more program, made in the first traced
    # process); -l runs nothing and is the launcher's.
    env = {"DYNAMORIO_CONFIGDIR": str(configdir)}
    out = tmp_path / "lines.txt"
    traced = run_native(drrun.path, "-root", drrun.root, "-c", drrun.client, "-o", str(out), "-t", "syscalls=openat,close",
                        "--", "/bin/cat", "/etc/hostname", env=env)
    assert traced.returncode == 0 and traced.stdout == open("/etc/hostname").read(), traced
    lines = out.read_text().splitlines()
    assert 'openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3' in lines and lines[-1] == "+++ exited with 0 +++", lines
    listing = run_native(drrun.path, "-root", drrun.root, "-c", drrun.client, "-l", "--", "/bin/true", env=env)
    assert listing.returncode == 2 and "-l lists probe points without running the target" in listing.stderr, listing
