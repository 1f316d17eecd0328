"""Scripts written for the original ProcessTap, in Python 2: translated with a warning."""

from conftest import HELLO_OUTPUT, script_lines


def translation_warning(result):
    return f"[!] {result.script}: Python 2 script translated to Python 3"


LEGACY_SCRIPT = """\
#!/usr/bin/env processtap
import sys

counts = {"module": 0}
if counts.has_key("module"):
    print "has_key works: %s" % counts.has_key("module")

try:
    raise ValueError("old style")
except ValueError, e:
    print "caught %s" % e

print >>sys.stderr, "[legacy] to stderr"

def on_load(ctx):
    counts["module"] += 1

def on_exit(ctx):
    print "exit code %d after %d modules" % (ctx.exit_code, counts["module"])

module_load(on_load)
process_exit(on_exit)
"""


def test_python2_script_runs_with_a_warning(trace, target):
    result = trace(LEGACY_SCRIPT, target("exit_with"), "4")
    assert result.returncode == 4, str(result)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["has_key works: True", "caught old style"], str(result)
    (exit_line,) = [line for line in lines if line.startswith("exit code ")]
    assert exit_line.startswith("exit code 4 after "), str(result)
    assert int(exit_line.split()[4]) >= 3, str(result)  # exit_with, ld.so, libc
    assert result.stderr.splitlines().count(translation_warning(result)) == 1, str(result)
    assert "[legacy] to stderr" in result.stderr.splitlines(), str(result)


def test_python2_script_with_q_keeps_the_warning(trace, target):
    # -q silences the banner, not a warning about the script.
    result = trace('print "legacy %d" % 1\n', target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == "legacy 1\n" + HELLO_OUTPUT, str(result)
    assert translation_warning(result) in result.stderr.splitlines(), str(result)


def test_python3_script_gets_no_warning(trace, target):
    result = trace('print("modern %d" % 1)\n', target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == "modern 1\n" + HELLO_OUTPUT, str(result)
    assert result.stderr == "", str(result)


def test_python2_traceback_keeps_the_scripts_line_numbers(trace, target):
    script = """\
print "line 1"

def on_exit(ctx):
    print "line 4"
    raise RuntimeError, "raised at line 5"

process_exit(on_exit)
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "line ") == ["1", "4"], str(result)
    assert f'File "{result.script}", line 5, in on_exit' in result.stderr, str(result)
    assert "RuntimeError: raised at line 5" in result.stderr, str(result)


def test_invalid_in_both_pythons_is_a_syntax_error(trace, target):
    script = "x = 1\nprint 'ok'\ndef broken(:\n    pass\n"
    result = trace(script, target("hello"))
    assert result.returncode == 2, str(result)
    assert "SyntaxError" in result.stderr, str(result)
    assert f'File "{result.script}", line ' in result.stderr, str(result)
    assert "Python 2 script translated" not in result.stderr, str(result)
    assert "hello, world" not in result.stdout, str(result)
