"""Output: the target's own output untouched, the script's output, -o, the banner."""

import re
import subprocess
from pathlib import Path

import pytest

from conftest import HELLO_OUTPUT, PYTHON, script_lines

EMPTY_SCRIPT = ""
SILENT_EXIT_SCRIPT = "@process_exit\ndef done(ctx):\n    pass\n"
EXIT_SCRIPT = '@process_exit\ndef done(ctx):\n    print("[ptap] exit", ctx.exit_code)\n'

# ---------------------------------------------------------------------------
# Tracing does not change what the target prints or its exit status

COMMANDS = {
    "hello": ["<hello>"],
    "ls-la-usr": ["/bin/ls", "-la", "/usr"],
    "echo": ["/bin/echo", "a", "b", "c"],
    "python-print": [PYTHON, "-c", "print(42)"],
    "exit_with-7": ["<exit_with>", "7"],
    # The target's own environment, argv and working directory, exactly.
    "env": ["/usr/bin/env"],
    "python-argv-cwd": [PYTHON, "-c", "import sys, os; print(sys.argv, os.getcwd())", "x", ""],
}


def resolve(command, target):
    return [target(word[1:-1]) if word.startswith("<") else word for word in command]


@pytest.mark.parametrize("script", [EMPTY_SCRIPT, SILENT_EXIT_SCRIPT], ids=["empty", "silent-exit"])
@pytest.mark.parametrize("command", list(COMMANDS.values()), ids=list(COMMANDS))
def test_target_output_and_status_unchanged(trace, run_native, target, command, script):
    command = resolve(command, target)
    env = {"LC_ALL": "C"}
    native = run_native(*command, cwd="/", env=env)
    result = trace(script, *command, cwd="/", env=env)
    assert result.returncode == native.returncode, str(result)
    assert result.stdout == native.stdout, str(result)
    assert native.stdout or native.returncode == 7, "the comparison is vacuous"


def test_target_stderr_unchanged_with_q(trace, run_native):
    command = ["/bin/ls", "/nonexistent-ptap-test-path"]
    native = run_native(*command, env={"LC_ALL": "C"})
    assert native.returncode != 0 and native.stderr, "the comparison is vacuous"
    result = trace(EMPTY_SCRIPT, *command, options=["-q"], env={"LC_ALL": "C"})
    assert result.returncode == native.returncode, str(result)
    assert result.stderr == native.stderr, str(result)
    assert result.stdout == native.stdout == "", str(result)


def test_target_stdin_is_the_targets(processtap, tmp_path):
    # The target still reads its own stdin.
    script = tmp_path / "empty.ptap"
    script.write_text("")
    completed = subprocess.run(
        [str(processtap), "-q", str(script), "--", "/bin/cat"],
        input=b"through stdin\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == b"through stdin\n", completed.stderr


# ---------------------------------------------------------------------------
# Targets that close their stdout and stderr


CLOSING_COMMANDS = {
    "close_stdio": ["<close_stdio>"],
    "ls": ["/bin/ls", "/"],
    "echo": ["/bin/echo", "x y"],
}


@pytest.mark.parametrize("command", list(CLOSING_COMMANDS.values()), ids=list(CLOSING_COMMANDS))
def test_script_output_survives_closed_stdio(trace, run_native, target, command):
    command = resolve(command, target)
    native = run_native(*command, cwd="/", env={"LC_ALL": "C"})
    result = trace(EXIT_SCRIPT, *command, options=["-q"], cwd="/", env={"LC_ALL": "C"})
    assert result.returncode == native.returncode == 0, str(result)
    assert result.stdout == native.stdout + "[ptap] exit 0\n", str(result)


@pytest.mark.parametrize("command", list(CLOSING_COMMANDS.values()), ids=list(CLOSING_COMMANDS))
def test_script_output_survives_closed_stdio_with_o(trace, run_native, target, tmp_path, command):
    command = resolve(command, target)
    output = tmp_path / "out.txt"
    native = run_native(*command, cwd="/", env={"LC_ALL": "C"})
    result = trace(
        EXIT_SCRIPT, *command, options=["-q", "-o", str(output)], cwd="/", env={"LC_ALL": "C"}
    )
    assert result.returncode == native.returncode == 0, str(result)
    assert result.stdout == native.stdout, str(result)
    assert output.exists(), str(result)
    assert output.read_text() == "[ptap] exit 0\n", str(result)


# ---------------------------------------------------------------------------
# -o FILE

MODULE_AND_EXIT_SCRIPT = """\
import sys
print("[ptap] top level")
@module_load(module_name == "libc.so.6")
def loaded(ctx):
    print("[ptap] loaded", ctx.module)
@process_exit
def done(ctx):
    print("[ptap] exit", ctx.exit_code)
    print("[ptap] to stderr", file=sys.stderr)
"""


def test_o_sends_the_script_output_to_the_file(trace, target, tmp_path):
    output = tmp_path / "trace.txt"
    result = trace(MODULE_AND_EXIT_SCRIPT, target("hello"), options=["-q", "-o", str(output)])
    assert result.returncode == 0, str(result)
    assert result.stdout == HELLO_OUTPUT, str(result)
    assert output.exists(), str(result)
    assert output.read_text() == (
        "[ptap] top level\n[ptap] loaded libc.so.6\n[ptap] exit 0\n"
    ), str(result)
    # What goes to sys.stderr still goes to stderr.
    assert "[ptap] to stderr" in result.stderr.splitlines(), str(result)


def test_o_without_q_keeps_the_banner_on_stderr(trace, target, tmp_path):
    output = tmp_path / "trace.txt"
    result = trace(MODULE_AND_EXIT_SCRIPT, target("hello"), options=["-o", str(output)])
    assert result.returncode == 0, str(result)
    assert result.stdout == HELLO_OUTPUT, str(result)
    assert "[*] Loaded probes:" in result.stderr, str(result)
    assert output.exists() and "[*]" not in output.read_text(), str(result)


def test_o_keeps_the_exit_status(trace, target, tmp_path):
    output = tmp_path / "trace.txt"
    result = trace(EXIT_SCRIPT, target("exit_with"), "9", options=["-q", "-o", str(output)])
    assert result.returncode == 9, str(result)
    assert output.exists() and output.read_text() == "[ptap] exit 9\n", str(result)


def test_o_truncates_an_existing_file(trace, target, tmp_path):
    output = tmp_path / "trace.txt"
    output.write_text("stale content from an earlier run\n" * 10)
    result = trace(EXIT_SCRIPT, target("hello"), options=["-q", "-o", str(output)])
    assert result.returncode == 0, str(result)
    assert output.read_text() == "[ptap] exit 0\n", str(result)


PID_SCRIPT = 'import os\n@process_exit\ndef done(ctx):\n    print("[ptap] exit", os.getpid())\n'


def test_o_gathers_every_process_of_the_trace(trace, tmp_path):
    # Each traced process opens -o itself: children append rather than
    # empty the file, and a child that changed directory first still finds
    # the script and the file given with relative paths.
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "pids.ptap").write_text(PID_SCRIPT)
    (workdir / "trace.txt").write_text("stale content from an earlier run\n")
    command = ["/bin/sh", "-c", "echo $$; cd / && /bin/true; /bin/true; echo done"]
    result = trace(Path("pids.ptap"), *command, options=["-q", "-o", "trace.txt"], cwd=workdir)
    assert result.returncode == 0, str(result)
    shell_pid, done = result.stdout.split()
    assert done == "done" and "cannot read script" not in result.stderr, str(result)
    pids = [line.split()[-1] for line in (workdir / "trace.txt").read_text().splitlines()]
    # The shell's two children end first, the shell last.
    assert len(pids) == 3 and len(set(pids)) == 3 and pids[-1] == shell_pid, str(result)


def test_o_relative_path_is_relative_to_the_working_directory(trace, target, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = trace(EXIT_SCRIPT, target("hello"), options=["-q", "-o", "rel.txt"], cwd=workdir)
    assert result.returncode == 0, str(result)
    assert (workdir / "rel.txt").exists(), str(result)
    assert (workdir / "rel.txt").read_text() == "[ptap] exit 0\n", str(result)


def test_o_to_an_unwritable_place_is_a_usage_error(trace, target, tmp_path):
    output = tmp_path / "no-such-dir" / "trace.txt"
    result = trace(EXIT_SCRIPT, target("hello"), options=["-q", "-o", str(output)])
    assert result.returncode == 2, str(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("processtap: "), str(result)
    assert str(output) in lines[0], str(result)
    # The reason is the system's: the directory does not exist.
    assert "no such file" in lines[0].lower(), str(result)
    assert "hello, world" not in result.stdout, str(result)


# ---------------------------------------------------------------------------
# The banner

BANNER_SCRIPT = """\
@module_load(module_name.like("libc*"))
def on_load(ctx):
    pass
@module_load
def every_module(ctx):
    print("[module]", ctx.module_path, ctx.module_base, ctx.module_end)
@thread_start
def started(ctx):
    pass
"""


def test_banner(trace, target):
    hello = target("hello")
    result = trace(BANNER_SCRIPT, hello)
    assert result.returncode == 0, str(result)
    lines = result.stderr.splitlines()
    assert lines[0] == f"[*] Executable file: {hello} (x86-64)", str(result)
    assert lines[1] == f"[*] PTAP file: {result.script}", str(result)
    assert "[*] Loaded probes:" in lines, str(result)
    probes = lines[lines.index("[*] Loaded probes:") + 1:]
    assert probes[:5] == [
        "    [*] module.load",
        '        [+] (module.name like "libc*") on_load',
        "        [+] (true) every_module",
        "    [*] thread.start",
        "        [+] (true) started",
    ], str(result)
    # Every module the target loads gets a Parsing line with its range, and
    # the ranges are those module_load reports.
    parsed = []
    for line in lines:
        if line.startswith("[*] Parsing "):
            match = re.fullmatch(r"\[\*\] Parsing '(.+)' \[([0-9a-f]{16})-([0-9a-f]{16})\]", line)
            assert match, f"malformed line {line!r}\n{result}"
            parsed.append((match.group(1), int(match.group(2), 16), int(match.group(3), 16)))
    reported = []
    for line in script_lines(result.stdout, "[module] "):
        path, base, end = line.split()
        reported.append((path, int(base), int(end)))
    assert len(reported) >= 4, str(result)  # hello, ld.so, vdso, libc
    assert sorted(parsed) == sorted(reported), str(result)
    paths = [path for path, _, _ in parsed]
    assert hello in paths, str(result)
    assert any(path.endswith("/libc.so.6") for path in paths), str(result)
    assert any(path.endswith("/ld-linux-x86-64.so.2") for path in paths), str(result)
    # The banner is on stderr only.
    assert "[*]" not in result.stdout, str(result)


def test_banner_lists_a_module_loaded_at_run_time(trace, target):
    result = trace(EMPTY_SCRIPT, target("dlopen_lib"))
    assert result.returncode == 0, str(result)
    parsing = [line for line in result.stderr.splitlines() if line.startswith("[*] Parsing ")]
    assert any("/libm.so.6' [" in line for line in parsing), str(result)
    assert "/libm.so.6' [" in parsing[-1], str(result)


def test_q_removes_the_banner(trace, target):
    result = trace(BANNER_SCRIPT, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stderr == "", str(result)
    assert HELLO_OUTPUT in result.stdout, str(result)


def test_handler_output_is_line_by_line_in_event_order(trace, target):
    # Script output to a pipe is line-buffered: each line is whole, and in
    # order, even though the target's own output is block-buffered.
    script = """\
@module_load
def loaded(ctx):
    print("[ptap] load", ctx.module)
@process_exit
def done(ctx):
    print("[ptap] exit", ctx.exit_code)
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    lines = result.stdout.splitlines()
    ours = [line for line in lines if line.startswith("[ptap] ")]
    assert ours[0] == "[ptap] load hello", str(result)
    assert ours[-1] == "[ptap] exit 0", str(result)
    assert lines[-1] == "[ptap] exit 0", str(result)
    assert [line for line in lines if not line.startswith("[ptap] ")] == HELLO_OUTPUT.splitlines(), str(result)
