"""The command line: options, usage errors and finding the command.

Every usage error must stop processtap before the target runs, with exit
status 2 and a one-line message starting with ``processtap:``.
"""

import os
import re
import shutil
import subprocess
import tomllib

import pytest

from conftest import HELLO_OUTPUT, PYTHON, REPO_ROOT, run_command


def the_error_line(result):
    """Check that stderr is one ``processtap: ...`` line and return it."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected a one-line error\n{result}"
    assert lines[0].startswith("processtap: "), str(result)
    return lines[0]


def assert_target_did_not_run(result):
    assert result.stdout == "", f"the target (or the script) ran\n{result}"


def workspace_version():
    with open(REPO_ROOT / "Cargo.toml", "rb") as file:
        return tomllib.load(file)["workspace"]["package"]["version"]


# ---------------------------------------------------------------------------
# --help, --version


def test_help_prints_usage_and_exits_0(run_processtap):
    result = run_processtap("--help")
    assert result.returncode == 0, str(result)
    assert "usage: processtap" in result.stdout, str(result)
    for option in ("-o FILE", "-q", "-v", "-I DIR", "--help", "--version"):
        assert option in result.stdout, f"--help does not mention {option}\n{result}"


def test_version_prints_the_version(run_processtap):
    result = run_processtap("--version")
    assert result.returncode == 0, str(result)
    match = re.match(r"processtap (\d+\.\d+\.\d+)\b", result.stdout)
    assert match, str(result)
    assert match.group(1) == workspace_version(), str(result)


# ---------------------------------------------------------------------------
# Usage errors


def test_missing_script(run_processtap, target, tmp_path):
    script = tmp_path / "no-such-script.ptap"
    result = run_processtap(script, "--", target("hello"))
    assert result.returncode == 2, str(result)
    assert str(script) in the_error_line(result)
    assert_target_did_not_run(result)


@pytest.mark.parametrize("command", ["/nonexistent/program", "no-such-command-for-ptap-tests"])
def test_missing_command(trace, command):
    result = trace("print('script ran')\n", command)
    assert result.returncode == 2, str(result)
    assert command in the_error_line(result)
    assert_target_did_not_run(result)


def test_non_executable_command(trace, tmp_path):
    command = tmp_path / "not-executable"
    command.write_text("just text\n")
    command.chmod(0o644)
    result = trace("print('script ran')\n", command)
    assert result.returncode == 2, str(result)
    assert str(command) in the_error_line(result)
    assert_target_did_not_run(result)


def test_directory_as_command(trace, tmp_path):
    directory = tmp_path / "a-directory"
    directory.mkdir()
    result = trace("print('script ran')\n", directory)
    assert result.returncode == 2, str(result)
    assert str(directory) in the_error_line(result)
    assert_target_did_not_run(result)


def test_unknown_option(run_processtap, target, tmp_path):
    script = tmp_path / "empty.ptap"
    script.write_text("")
    result = run_processtap("-Z", script, "--", target("hello"))
    assert result.returncode == 2, str(result)
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("processtap: ") and "-Z" in lines[0], str(result)
    # One error line; anything after it is the usage text, not more errors.
    assert [line for line in lines if line.startswith("processtap:")] == [lines[0]], str(result)
    assert "Traceback" not in result.stderr, str(result)
    assert_target_did_not_run(result)


def test_option_without_its_argument(run_processtap):
    result = run_processtap("-o")
    assert result.returncode == 2, str(result)
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("processtap: ") and "-o" in lines[0], str(result)


def test_no_arguments(run_processtap):
    result = run_processtap()
    assert result.returncode == 2, str(result)
    assert result.stderr.startswith("processtap: "), str(result)


@pytest.mark.parametrize("rest", [[], ["--"]], ids=["no-dashes", "dashes"])
def test_no_command(run_processtap, tmp_path, rest):
    script = tmp_path / "empty.ptap"
    script.write_text("print('script ran')\n")
    result = run_processtap(script, *rest)
    assert result.returncode == 2, str(result)
    the_error_line(result)
    assert_target_did_not_run(result)


# ---------------------------------------------------------------------------
# The command and its arguments


def test_arguments_after_dashes_belong_to_the_target(trace, run_native):
    command = ["/bin/echo", "-q", "-o", "x", "--help", "-v"]
    native = run_native(*command)
    result = trace("", *command, options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == native.stdout == "-q -o x --help -v\n", str(result)


def test_dashes_are_optional_as_usage_says(run_processtap, tmp_path):
    script = tmp_path / "s.ptap"
    script.write_text("")
    result = run_processtap("-q", script, "/bin/echo", "no", "dashes")
    assert result.returncode == 0, str(result)
    assert result.stdout == "no dashes\n", str(result)


def test_command_is_looked_up_on_path(trace):
    result = trace("print('exe=' + exe)\n", "echo", "from", "path", options=["-q"])
    assert result.returncode == 0, str(result)
    lines = result.stdout.splitlines()
    assert lines[-1] == "from path", str(result)
    exe = lines[0].removeprefix("exe=")
    assert os.path.realpath(exe) == os.path.realpath(shutil.which("echo")), str(result)


def test_include_dir_option_is_accepted(trace, target, tmp_path):
    result = trace("", target("hello"), options=["-q", "-I", str(tmp_path)])
    assert result.returncode == 0, str(result)
    assert result.stdout == HELLO_OUTPUT, str(result)


def test_verbose_banner_adds_detail(trace, target, tmp_path):
    script = tmp_path / "quiet-handler.ptap"
    script.write_text("@process_exit\ndef done(ctx):\n    pass\n")
    plain = trace(script, target("hello"))
    verbose = trace(script, target("hello"), options=["-v"])
    assert plain.returncode == verbose.returncode == 0
    assert plain.stdout == verbose.stdout == HELLO_OUTPUT

    def normalised(stderr):
        # Addresses differ from run to run.
        return [re.sub(r"[0-9a-f]{16}", "X", line) for line in stderr.splitlines()]

    plain_lines, verbose_lines = normalised(plain.stderr), normalised(verbose.stderr)
    missing = [line for line in plain_lines if line not in verbose_lines]
    assert not missing, f"-v dropped banner lines {missing}\n{verbose}"
    assert len(verbose_lines) > len(plain_lines), f"-v adds nothing\n{plain}\n{verbose}"


# ---------------------------------------------------------------------------
# '#!/usr/bin/env processtap'


def test_executable_script_with_shebang(processtap, tmp_path, run_native):
    script = tmp_path / "shebang.ptap"
    script.write_text(
        "#!/usr/bin/env processtap\n"
        "print('script says hi to', argv[1:])\n"
        "@process_exit\n"
        "def done(ctx):\n"
        "    print('exit code', ctx.exit_code)\n"
    )
    script.chmod(0o755)
    env = {"PATH": f"{processtap.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    returncode, stdout, stderr = run_command(
        ["./shebang.ptap", "--", "/bin/echo", "yo"], cwd=tmp_path, env=env
    )
    assert returncode == 0, stderr
    assert stdout == "script says hi to ['yo']\nyo\nexit code 0\n", stderr
    assert "[*] PTAP file: " in stderr and "shebang.ptap" in stderr


def test_executable_script_with_options_after_it(processtap, tmp_path):
    # The kernel runs `./s.ptap -q -o f -- cmd` as `processtap ./s.ptap -q -o f -- cmd`.
    script = tmp_path / "shebang.ptap"
    script.write_text(
        "#!/usr/bin/env processtap\n"
        "@process_exit\n"
        "def done(ctx):\n"
        "    print('exit code', ctx.exit_code)\n"
    )
    script.chmod(0o755)
    env = {"PATH": f"{processtap.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    returncode, stdout, stderr = run_command(
        ["./shebang.ptap", "-q", "-o", "out.txt", "--", "/bin/echo", "yo"], cwd=tmp_path, env=env
    )
    assert (returncode, stdout, stderr) == (0, "yo\n", ""), stderr
    assert (tmp_path / "out.txt").read_text() == "exit code 0\n"


def test_options_after_the_script_need_dashes_before_the_command(run_processtap, tmp_path, target):
    script = tmp_path / "empty.ptap"
    script.write_text("print('script ran')\n")
    result = run_processtap(script, "-q", target("hello"))
    assert result.returncode == 2, str(result)
    assert "'--'" in the_error_line(result)
    assert_target_did_not_run(result)


@pytest.mark.parametrize("content", ["just text\n", "\x7fEL"], ids=["text", "short-magic"])
def test_command_neither_elf_nor_shebang(trace, tmp_path, content):
    command = tmp_path / "not-a-program"
    command.write_text(content)
    command.chmod(0o755)
    result = trace("print('script ran')\n", command)
    assert result.returncode == 2, str(result)
    line = the_error_line(result)
    assert str(command) in line and "not an ELF executable nor a #! script" in line, str(result)
    assert_target_did_not_run(result)


# ---------------------------------------------------------------------------
# Scripts that can be read once


def test_script_from_stdin(processtap):
    script = b"print('from stdin', argv[1:])\n@process_exit\ndef done(ctx):\n    print('exit', ctx.pid > 0)\n"
    completed = subprocess.run(
        [str(processtap), "-q", "/dev/stdin", "--", "/bin/sh", "-c", "/bin/echo child"],
        input=script, capture_output=True, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    # Every process runs the script: the shell, and echo, which it executes.
    lines = completed.stdout.decode().splitlines()
    assert lines.count("from stdin ['-c', '/bin/echo child']") == 1, lines
    assert lines.count("from stdin ['child']") == 1 and lines.count("exit True") == 2, lines
    assert "child" in lines, lines


def test_script_from_process_substitution(processtap):
    shell = f"{processtap} -q <(echo \"print('substituted')\") -- /bin/sh -c /bin/true"
    returncode, stdout, stderr = run_command(["/bin/bash", "-c", shell])
    assert (returncode, stdout) == (0, "substituted\nsubstituted\n"), stderr


def test_traceback_names_the_script_as_given(processtap):
    completed = subprocess.run(
        [str(processtap), "-q", "/dev/stdin", "--", "/bin/true"],
        input=b"x = 1\nraise ValueError('from the script')\n", capture_output=True, timeout=60,
    )
    assert completed.returncode == 2, completed.stderr
    stderr = completed.stderr.decode()
    assert 'File "/dev/stdin", line 2' in stderr and "raise ValueError('from the script')" in stderr, stderr


# ---------------------------------------------------------------------------
# Probes that never match

NEVER_MATCHING = """\
@function_entry(function_name == "mallo")
def malloc_entry(ctx):
    pass

@function_exit(function_name >> ["no_such_a", "no_such_b"])
def two_names(ctx):
    pass

@function_entry(function_name == "Py_InitializeFromConfig")
def in_python_only(ctx):
    pass

@syscall_entry(syscall_num == 4000)
def past_the_table(ctx):
    pass

@function_entry(function_name == "malloc")
def matches(ctx):
    pass
"""


def test_a_probe_that_never_matched_is_warned_about_once(trace):
    # The shell and three programs run the script; Python's function is in
    # python3 only, so it matched in the run.
    command = ["/bin/sh", "-c", f"/bin/true; /bin/true; {PYTHON} -c pass"]
    result = trace(NEVER_MATCHING, *command, options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stderr.splitlines() == [
        "[!] probe malloc_entry never matched: no function named 'mallo'",
        "[!] probe two_names never matched: no function named 'no_such_a', 'no_such_b'",
        "[!] probe past_the_table never matched: no system call matched (syscall.num == 4000)",
    ], str(result)


def test_handler_traceback_of_a_piped_script_shows_its_lines(processtap):
    # Python's own display reads the script's file again, which is a drained
    # pipe here (and in the target /dev/stdin would be the target's stdin).
    script = "@process_exit\\ndef done(ctx):\\n    raise ValueError('boom')\\n"
    returncode, stdout, stderr = run_command(["/bin/bash", "-c", f"{processtap} -q <(printf \"{script}\") -- /bin/true"])
    assert returncode == 0, stderr
    assert re.search(r'File "/dev/fd/\d+", line 3, in done\n    raise ValueError\(.boom.\)\n', stderr), stderr
