"""Loading the script: its top level, its globals, and scripts that fail to load.

A script that fails to compile or raises at its top level stops everything
before the target runs: exit status 2 and a traceback naming the script's
own lines (and none of ptap's).
"""

import ast
import os

import pytest

from conftest import HELLO_OUTPUT, PYTHON


def assert_hello_did_not_run(result):
    assert "hello, world" not in result.stdout, f"the target ran\n{result}"


def assert_no_ptap_frames(result):
    assert "ptap/script.py" not in result.stderr, f"ptap's own frames are shown\n{result}"
    assert "ptap/probes.py" not in result.stderr, f"ptap's own frames are shown\n{result}"


# ---------------------------------------------------------------------------
# The top level


def test_top_level_runs_before_the_target(trace, target):
    result = trace("print('script top level')\n", target("hello"))
    assert result.returncode == 0, str(result)
    assert result.stdout == "script top level\n" + HELLO_OUTPUT, str(result)


def test_exe_and_argv_are_the_targets(trace, target):
    hello = target("hello")
    script = "print(repr(exe))\nprint(repr(argv))\nprint(type(argv).__name__)\n"
    result = trace(script, hello, "one", "two words", "", "--x", options=["-q"])
    assert result.returncode == 0, str(result)
    exe, argv, argv_type, *rest = result.stdout.splitlines()
    assert os.path.realpath(ast.literal_eval(exe)) == os.path.realpath(hello), str(result)
    assert ast.literal_eval(argv) == [hello, "one", "two words", "", "--x"], str(result)
    assert argv_type == "list", str(result)
    assert "\n".join(rest) + "\n" == HELLO_OUTPUT, str(result)


def test_argv_is_what_the_target_sees(trace):
    # The target itself reports its argv; the script's argv must agree.
    script = "print('script argv', argv)\n"
    code = "import sys; print('target argv', sys.argv[1:])"
    result = trace(script, PYTHON, "-c", code, "a", "b c", options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout.splitlines() == [
        f"script argv {[PYTHON, '-c', code, 'a', 'b c']}",
        "target argv ['a', 'b c']",
    ], result


def test_script_globals_without_import_and_the_ptap_package(trace, target):
    script = (
        "import ptap\n"
        "for name in ptap.__all__:\n"
        "    assert globals()[name] is getattr(ptap, name), name\n"
        "print('names:', len(ptap.__all__))\n"
        "from ptap import module_load as ml\n"
        "print(ml is module_load, issubclass(MemoryFault, Exception),"
        " issubclass(MissingPrototype, Exception))\n"
    )
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("names: ") and int(lines[0].split()[1]) >= 12, str(result)
    assert lines[1] == "True True True", str(result)


def test_script_directory_is_importable(trace, target, tmp_path):
    (tmp_path / "ptap_test_helper.py").write_text("GREETING = 'from the helper module'\n")
    script = tmp_path / "uses_helper.ptap"
    script.write_text("import ptap_test_helper\nprint(ptap_test_helper.GREETING)\n")
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == "from the helper module\n" + HELLO_OUTPUT, str(result)


def test_script_is_run_as_main(trace, target):
    script = "print(__name__)\nprint(__file__)\n"
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    name, file, *_ = result.stdout.splitlines()
    assert name == "__main__", str(result)
    assert file == str(result.script), str(result)


# ---------------------------------------------------------------------------
# Scripts that fail to load


def test_syntax_error(trace, target):
    script = "print('never printed')\n\ndef broken(:\n    pass\n"
    result = trace(script, target("hello"))
    assert result.returncode == 2, str(result)
    assert f'File "{result.script}", line 3' in result.stderr, str(result)
    assert "SyntaxError" in result.stderr, str(result)
    assert "def broken(:" in result.stderr, str(result)
    assert "never printed" not in result.stdout, str(result)
    assert_hello_did_not_run(result)
    assert_no_ptap_frames(result)


def test_top_level_exception(trace, target):
    script = (
        "print('top level starts')\n"
        "\n"
        "def check():\n"
        "    raise ValueError('bad configuration')\n"
        "\n"
        "check()\n"
        "print('not reached')\n"
    )
    result = trace(script, target("hello"))
    assert result.returncode == 2, str(result)
    assert "Traceback (most recent call last):" in result.stderr, str(result)
    assert f'File "{result.script}", line 6, in <module>' in result.stderr, str(result)
    assert f'File "{result.script}", line 4, in check' in result.stderr, str(result)
    assert "ValueError: bad configuration" in result.stderr, str(result)
    assert "not reached" not in result.stdout, str(result)
    assert_hello_did_not_run(result)
    assert_no_ptap_frames(result)


@pytest.mark.parametrize(
    "raising, shown",
    [
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("class Stop(BaseException):\n    pass\nraise Stop('stop')", "Stop: stop"),
        ("raise GeneratorExit('gen')", "GeneratorExit: gen"),
    ],
)
def test_top_level_base_exception_is_shown_like_any_other(trace, target, raising, shown):
    # Found by tests/hostile_scripts.py: only Exception and SystemExit were
    # caught, and a KeyboardInterrupt's traceback showed ptap's run_script.
    script = f"print('top level starts')\n{raising}\n"
    result = trace(script, target("hello"))
    assert result.returncode == 2, str(result)
    last = len(script.splitlines())
    assert f'File "{result.script}", line {last}, in <module>' in result.stderr, str(result)
    assert shown in result.stderr.splitlines(), str(result)
    assert_hello_did_not_run(result)
    assert_no_ptap_frames(result)


def test_top_level_exception_leaves_no_probe_running(trace, target):
    script = (
        "@process_exit\n"
        "def done(ctx):\n"
        "    print('process_exit ran')\n"
        "raise RuntimeError('stop here')\n"
    )
    result = trace(script, target("exit_with"), "5")
    assert result.returncode == 2, str(result)
    assert "RuntimeError: stop here" in result.stderr, str(result)
    assert "process_exit ran" not in result.stdout, str(result)


@pytest.mark.parametrize(
    "line, error",
    [
        # A variable that module_load does not provide.
        ('@module_load(function_name == "malloc")', "ValueError"),
        # 'and' instead of '&': a predicate has no truth value.
        ('@module_load((module_name == "a") and (module_name == "b"))', "TypeError"),
        # A value of the wrong type.
        ("@module_load(module_name == 42)", "TypeError"),
    ],
    ids=["wrong-variable", "and-instead-of-&", "wrong-type"],
)
def test_bad_predicate_is_reported_at_its_line(trace, target, line, error):
    script = f"x = 1\n{line}\ndef handler(ctx):\n    pass\n"
    result = trace(script, target("hello"))
    assert result.returncode == 2, str(result)
    assert f'File "{result.script}", line 2' in result.stderr, str(result)
    assert f"{error}:" in result.stderr, str(result)
    assert_hello_did_not_run(result)
    assert_no_ptap_frames(result)


def test_handler_with_wrong_signature_is_refused(trace, target):
    script = "x = 1\n@process_exit\ndef done():\n    pass\n"
    result = trace(script, target("hello"))
    assert result.returncode == 2, str(result)
    assert f'File "{result.script}", line 2' in result.stderr, str(result)
    assert "TypeError:" in result.stderr and "ctx" in result.stderr, str(result)
    assert_hello_did_not_run(result)


# ---------------------------------------------------------------------------
# The compiled script, kept between processes


SHELL_LOOP = "for i in 1 2 3; do /bin/true; done"


def test_a_shell_loop_compiles_the_script_once(trace, tmp_path):
    # Every process of the loop runs the script; the first compiles it.
    cache = tmp_path / "cache"
    script = tmp_path / "loop.ptap"
    script.write_text("@process_exit\ndef bye(ctx):\n    print('exit', ctx.pid)\n")
    result = trace(script, "/bin/sh", "-c", SHELL_LOOP, options=["-q"], env={"PTAP_CACHE_DIR": str(cache)})
    assert result.returncode == 0, str(result)
    assert len(set(result.stdout.split())) == 1 + 4, str(result)  # "exit" and 4 pids.
    entries = list((cache / "scripts").iterdir())
    assert len(entries) == 1, entries
    written = entries[0].stat().st_mtime_ns
    again = trace(script, "/bin/sh", "-c", SHELL_LOOP, options=["-q"], env={"PTAP_CACHE_DIR": str(cache)})
    assert again.stdout.count("exit") == 4, str(again)
    assert entries[0].stat().st_mtime_ns == written, "the entry was written again"


def test_a_changed_script_runs_its_new_text(trace, target, tmp_path):
    # Same path, size and time: only the text tells the cached code is stale.
    script = tmp_path / "changing.ptap"
    script.write_text("print('version one')\n")
    stat = script.stat()
    first = trace(script, target("hello"), options=["-q"], env={"PTAP_CACHE_DIR": str(tmp_path / "cache")})
    assert first.stdout.startswith("version one\n"), str(first)
    script.write_text("print('version two')\n")
    os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = trace(script, target("hello"), options=["-q"], env={"PTAP_CACHE_DIR": str(tmp_path / "cache")})
    assert second.stdout.startswith("version two\n"), str(second)


def test_a_script_runs_without_a_writable_cache(trace, target, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    script = (
        "@syscall_entry(syscall_name == 'write')\n"
        "def on_write(ctx):\n"
        "    print('write', len(ctx.args[1]))\n"
    )
    for _ in range(2):
        result = trace(script, target("hello"), options=["-q"], env={"PTAP_CACHE_DIR": str(blocker)})
        assert result.returncode == 0, str(result)
        written = [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("write ")]
        assert sum(written) == len(HELLO_OUTPUT), str(result)
        assert result.stderr == "", str(result)


# ---------------------------------------------------------------------------
# Sources as CPython reads them (PEP 263), and what no compiler takes


def test_a_latin1_script_with_its_coding_line_runs(trace, target, tmp_path):
    script = tmp_path / "latin1.ptap"
    script.write_bytes(b"# -*- coding: latin-1 -*-\nprint('[ptap] caf\xe9', len('caf\xe9'))\n")
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout.splitlines()[0] == "[ptap] caf\u00e9 4", str(result)


def test_a_non_utf8_script_without_a_coding_line_is_refused_as_cpython_does(trace, target, tmp_path):
    script = tmp_path / "latin1.ptap"
    script.write_bytes(b"x = 1\ny = 'caf\xe9'\n")
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 2, str(result)
    assert_hello_did_not_run(result)
    assert (
        f"SyntaxError: Non-UTF-8 code starting with '\\xe9' in file {script} on line 2, but no encoding declared"
        in result.stderr
    ), str(result)
    assert "codecs" not in result.stderr and "UnicodeDecodeError" not in result.stderr, str(result)


def test_too_deep_nesting_is_pythons_own_syntax_error(trace, target):
    # Not lib2to3's RecursionError: the Python 2 translation is tried, and
    # its failure is not the one to show.
    script = "p = " + "(" * 1000 + "1" + ")" * 1000 + "\n"
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 2, str(result)
    assert "SyntaxError: too many nested parentheses" in result.stderr, str(result)
    assert "lib2to3" not in result.stderr and "RecursionError" not in result.stderr, str(result)


def test_a_predicate_of_hundreds_of_terms_works(trace, target):
    # The client decides predicates by recursion, on DynamoRIO's 56 KiB
    # stack at module load: a 600-term chain overflowed it.
    terms = " | ".join(f'(function_name == "no_such_{i}")' for i in range(600))
    script = f'@function_entry({terms} | (function_name == "puts"))\ndef seen(ctx):\n    print("[ptap] puts")\n'
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert "[ptap] puts" in result.stdout and "hello, world" in result.stdout, str(result)


def test_a_predicate_nested_too_deep_is_refused(trace, target):
    script = 'p = function_name == "puts"\nfor i in range(150):\n    p = ~p if i % 2 else (p & (thread_id > 0))\n@function_entry(p)\ndef f(ctx):\n    pass\n'
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 2, str(result)
    assert "predicate nested more than 100 levels deep" in result.stderr, str(result)
    assert_hello_did_not_run(result)


def test_os_fork_at_the_top_level_is_a_clear_error(trace, target):
    result = trace("import os\nos.fork()\n", target("hello"), options=["-q"])
    assert result.returncode == 2, str(result)
    assert "RuntimeError: the script runs inside the target and cannot fork it" in result.stderr, str(result)
    assert "Tool internal crash" not in result.stderr and "signal" not in result.stderr, str(result)
