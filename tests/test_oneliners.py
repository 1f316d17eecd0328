"""One-liners (issue 15, item 1): ``processtap -e 'KIND(PREDICATE): STATEMENTS' -- COMMAND``.

The programs are translated inside the target (ptap.oneliner); these tests
run them on real programs and compare with what the programs do
untraced and, for system calls, with strace.
"""

import re
import shutil
import subprocess

import pytest

from conftest import script_lines
from function_targets import ftarget  # noqa: F401

CAT = shutil.which("cat") or "/bin/cat"


def openat_paths_by_strace(tmp_path, command):
    log = tmp_path / "strace.txt"
    subprocess.run(["strace", "-o", log, "-e", "trace=openat", *command], check=True, capture_output=True)
    return re.findall(r'^openat\(AT_FDCWD, "([^"]*)"', log.read_text(), re.M)


def test_the_issues_example_prints_each_openat_path(run_processtap, tmp_path):
    (tmp_path / "hostname").write_text("box\n")
    command = [CAT, str(tmp_path / "hostname")]
    expected = openat_paths_by_strace(tmp_path, command)
    assert str(tmp_path / "hostname") in expected
    out = tmp_path / "handlers.txt"
    result = run_processtap("-q", "-o", out, "-e", 'syscall_entry(syscall_name == "openat"): print(ctx.args[1])', "--", *command)
    assert (result.returncode, result.stdout, result.stderr) == (0, "box\n", ""), result
    assert out.read_text().splitlines() == expected


def test_several_clauses_state_and_a_script_file_first(run_processtap, tmp_path):
    # The file runs first; -e's plain lines and clauses share its globals;
    # clauses by newlines and by ' ;; ', a bare lifecycle kind.
    script = tmp_path / "base.ptap"
    script.write_text("import collections\ncounts = collections.Counter()\n")
    program = ('syscall_entry(syscall_name >> ["openat", "close"]): counts[ctx.syscall_name] += 1 ;; opened = []\n'
               'syscall_exit(syscall_name == "openat"): opened.append(ctx.retval >= 0)\n'
               'process_exit: print("[counts]", counts["openat"], counts["close"], all(opened[-1:]), ctx.exit_code)')
    result = run_processtap("-q", script, "-e", program, "--", CAT, "/etc/hostname")
    assert result.returncode == 0, result
    (line,) = script_lines(result.stdout, "[counts] ")
    openat, close, last_ok, status = line.split()
    expected = openat_paths_by_strace(tmp_path, [CAT, "/etc/hostname"])
    assert (int(openat), last_ok, status) == (len(expected), "True", "0"), result
    assert int(close) >= 3, result


def test_a_syntax_error_names_the_clause_and_column_and_the_command_does_not_run(run_processtap, tmp_path):
    marker = tmp_path / "ran"
    result = run_processtap("-q", "-e", 'n = [0] ;; syscall_entry(syscall_name == "read": n[0] += 1', "--",
                            "/usr/bin/touch", marker)
    assert result.returncode == 2, result
    assert 'File "-e", line 1' in result.stderr and "syscall_entry( is not closed" in result.stderr, result
    # The caret under the unclosed parenthesis (column 25 of the program).
    lines = result.stderr.splitlines()
    text = next(i for i, l in enumerate(lines) if l.strip().startswith("n = [0]"))
    assert lines[text + 1].index("^") - lines[text].index("n") == 24, result.stderr
    assert not marker.exists()


def test_a_handlers_exception_shows_its_clause(run_processtap):
    result = run_processtap("-q", "-e", 'syscall_entry(syscall_name == "write"): print(undefined_name)', "--", "/bin/echo", "hi")
    assert (result.returncode, result.stdout) == (0, "hi\n"), result
    assert 'File "-e", line 3, in _clause_1' in result.stderr and "NameError" in result.stderr, result


def test_e_needs_a_program_and_a_command(run_processtap):
    result = run_processtap("-e")
    assert result.returncode == 2 and "option -e needs an argument" in result.stderr, result
    result = run_processtap("-e", "process_exit: pass")
    assert result.returncode == 2 and "no command" in result.stderr, result


def test_a_program_that_includes_a_header_gets_its_prototypes(run_processtap, ftarget, tmp_path):
    # The launcher prepares the headers of -e programs too: strlen's
    # argument is the string, not its address.
    env = {"PTAP_CACHE_DIR": str(tmp_path / "cache")}
    program = 'include("string.h") ;; function_entry(function_name == "strlen"): print(repr(ctx.args[0]))'
    result = run_processtap("-q", "-e", program, "--", ftarget("strlens"), "alpha", "beta", env=env)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result
    assert "'alpha'" in result.stdout.splitlines() and "'beta'" in result.stdout.splitlines(), result
