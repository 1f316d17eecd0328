"""Tests for ptap.script: running a script's top level and collecting its probes."""

import linecache
import os
import sys
import textwrap

import pytest

import ptap
from ptap import cache
from ptap.errors import ScriptError
from ptap.probes import current_registry
from ptap.prototypes import exported, parsed_headers
from ptap.script import include_dirs, run_script

PTAP_DIR = os.path.dirname(ptap.__file__)


@pytest.fixture(autouse=True)
def restore_sys_path(monkeypatch):
    """Undo the loader's change to sys.path after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture
def write_script(tmp_path):
    """Write a script into a temporary directory and return its path."""

    def write(source, name="test.ptap"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        return str(path)

    return write


def run(path, warn=None, **options):
    """Run a script as the runtime would, with a fixed target."""
    options.setdefault("exe", "/bin/ls")
    options.setdefault("argv", ["/bin/ls", "-l"])
    if warn is not None:
        options["warn"] = warn
    return run_script(path, **options)


def assert_no_ptap_frames(text):
    assert PTAP_DIR not in text
    assert "ptap/script.py" not in text


# --- scripts that load ---------------------------------------------------------


def test_probes_are_returned_in_order(write_script):
    path = write_script("""\
        @function_entry(function_name == "malloc")
        def malloc_entry(ctx):
            pass

        @syscall_exit(syscall_name >> ["open", "openat"])
        @syscall_entry(syscall_name >> ["open", "openat"])
        def on_open(ctx):
            pass

        @process_exit
        def on_exit(ctx):
            pass
    """)
    probes = run(path)
    assert [(p.kind, p.name) for p in probes] == [
        ("function_entry", "malloc_entry"),
        ("syscall_entry", "on_open"),
        ("syscall_exit", "on_open"),
        ("process_exit", "on_exit"),
    ]
    assert probes[0].describe() == "(function.name == @malloc) malloc_entry"


def test_each_run_has_its_own_registry(write_script):
    path = write_script("process_exit(lambda ctx: None)\n")
    before = len(current_registry())
    assert len(run(path)) == 1
    assert len(run(path)) == 1
    assert len(current_registry()) == before


def test_exe_and_argv_are_visible(write_script, capsys):
    path = write_script("print(exe, argv)\n")
    run(path, exe="/usr/bin/true", argv=("/usr/bin/true", "x"))
    assert capsys.readouterr().out == "/usr/bin/true ['/usr/bin/true', 'x']\n"


def test_script_globals(write_script, capsys):
    path = write_script("""\
        import ptap
        print(__name__)
        print(__file__)
        print([n for n in ptap.__all__ if globals()[n] is not getattr(ptap, n)])
    """)
    run(path)
    assert capsys.readouterr().out == f"__main__\n{path}\n[]\n"


def test_handlers_see_the_script_globals(write_script):
    path = write_script("""\
        count = 0

        @function_entry
        def counter(ctx):
            global count
            count += 1
            return count, exe
    """)
    [probe] = run(path)
    assert probe.handler(None) == (1, "/bin/ls")
    assert probe.handler(None) == (2, "/bin/ls")


def test_script_directory_comes_first_on_sys_path(write_script):
    write_script("VALUE = 42\n", name="ptap_test_helper_module.py")
    path = write_script("""\
        import ptap_test_helper_module
        process_exit(lambda ctx: ptap_test_helper_module.VALUE)
    """)
    try:
        [probe] = run(path)
    finally:
        sys.modules.pop("ptap_test_helper_module", None)
    assert sys.path[0] == os.path.dirname(path)
    assert probe.handler(None) == 42


def test_include_dirs_are_recorded(write_script):
    path = write_script("pass\n")
    run(path, include_dirs=["/opt/include"])
    assert include_dirs() == ("/opt/include",)


def test_script_with_shebang_and_bom(tmp_path):
    path = tmp_path / "bom.ptap"
    path.write_bytes(
        b"\xef\xbb\xbf#!/usr/bin/env processtap\nprocess_exit(lambda ctx: None)\n"
    )
    assert len(run(str(path))) == 1


# --- scripts that fail ---------------------------------------------------------


def test_syntax_error(write_script, capsys):
    path = write_script("""\
        x = 1

        def broken(:
            pass
    """)
    with pytest.raises(ScriptError) as caught:
        run(path)
    assert caught.value.path == path
    assert isinstance(caught.value.__cause__, SyntaxError)
    err = capsys.readouterr().err
    assert f'File "{path}", line 3' in err
    assert "    def broken(:\n" in err
    assert "^" in err
    assert "SyntaxError: " in err
    assert "Traceback" not in err
    assert_no_ptap_frames(err)


def test_exception_at_top_level(write_script, capsys):
    path = write_script("""\
        x = 1
        raise ValueError("boom")
    """)
    with pytest.raises(ScriptError) as caught:
        run(path)
    assert isinstance(caught.value.__cause__, ValueError)
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert f'File "{path}", line 2, in <module>' in err
    assert '    raise ValueError("boom")' in err
    assert err.endswith("ValueError: boom\n")
    assert_no_ptap_frames(err)


def test_exception_in_a_function_called_at_top_level(write_script, capsys):
    path = write_script("""\
        def setup():
            return 1 / 0

        setup()
    """)
    with pytest.raises(ScriptError):
        run(path)
    err = capsys.readouterr().err
    assert f'File "{path}", line 4, in <module>' in err
    assert f'File "{path}", line 2, in setup' in err
    assert err.endswith("ZeroDivisionError: division by zero\n")


def test_decorator_error_points_at_the_script_line(write_script, capsys):
    path = write_script("""\
        @module_load(syscall_name == "open")
        def on_load(ctx):
            pass
    """)
    with pytest.raises(ScriptError):
        run(path)
    err = capsys.readouterr().err
    assert f'File "{path}", line 1, in <module>' in err
    assert "ValueError: module_load probe 'on_load': predicate uses syscall_name" in err
    assert_no_ptap_frames(err)


def test_predicate_misuse_points_at_the_script_line(write_script, capsys):
    path = write_script("""\
        @memory_read(0x1000 < memory_address < 0x2000)
        def on_read(ctx):
            pass
    """)
    with pytest.raises(ScriptError):
        run(path)
    err = capsys.readouterr().err
    assert f'File "{path}", line 1, in <module>' in err
    assert "TypeError: a predicate has no truth value" in err
    assert_no_ptap_frames(err)


def test_prototypes_at_top_level(write_script, capsys):
    path = write_script("""\
        include("string.h")
        declare("int parse(const char *s, size_t n);")
        print(prototype("strlen"))
        print(prototype("parse"))
    """)
    run(path)
    assert capsys.readouterr().out == (
        "size_t strlen(const char *__s);\nint parse(const char *s, size_t n);\n"
    )
    assert parsed_headers()[0][0] == "string.h"


def test_each_run_has_its_own_prototypes(write_script):
    run(write_script('include("string.h")\ndeclare("int parse(int);")\n'))
    run(write_script("pass\n"))
    assert parsed_headers() == []
    assert exported() == {}


def test_include_error_points_at_the_script_line(write_script, capsys):
    path = write_script("""\
        include("stdio.h")
        include("no_such_header.h")
    """)
    with pytest.raises(ScriptError):
        run(path)
    err = capsys.readouterr().err
    assert f'File "{path}", line 2, in <module>' in err
    assert "PrototypeError: header 'no_such_header.h' not found" in err
    assert_no_ptap_frames(err)


def test_unknown_syscall_name_points_at_the_script_line(write_script, capsys):
    path = write_script("""\
        @syscall_entry(syscall_name == "opnat")
        def on_open(ctx):
            pass
    """)
    with pytest.raises(ScriptError):
        run(path)
    err = capsys.readouterr().err
    assert f'File "{path}", line 1, in <module>' in err
    assert "ValueError: syscall_entry probe 'on_open': no system call is named 'opnat'" in err


def test_system_exit_is_an_error(write_script, capsys):
    path = write_script("import sys\nsys.exit(0)\n")
    with pytest.raises(ScriptError):
        run(path)
    err = capsys.readouterr().err
    assert f'File "{path}", line 2, in <module>' in err
    assert "SystemExit: 0" in err


def test_missing_script(tmp_path, capsys):
    path = str(tmp_path / "missing.ptap")
    with pytest.raises(ScriptError):
        run(path)
    err = capsys.readouterr().err
    assert "FileNotFoundError" in err
    assert "missing.ptap" in err
    assert_no_ptap_frames(err)


# --- scripts for the original ProcessTap ---------------------------------------

OLD_SCRIPT = """\
    count = 0
    def on_exit(ctx):
        print "exit code %d" % ctx.exit_code
    process_exit(on_exit)
"""


class ExitContext:
    exit_code = 3


def test_python2_script_is_translated_with_one_warning(write_script, capsys):
    path = write_script(OLD_SCRIPT)
    warnings = []
    [probe] = run(path, warn=warnings.append)
    assert warnings == [f"{path}: Python 2 script translated to Python 3"]
    assert probe.kind == "process_exit"
    assert probe.name == "on_exit"
    probe.handler(ExitContext())
    assert capsys.readouterr().out == "exit code 3\n"


def test_python2_print_at_top_level(write_script, capsys):
    path = write_script('print "hello"\n')
    warnings = []
    assert run(path, warn=warnings.append) == []
    assert len(warnings) == 1
    assert capsys.readouterr().out == "hello\n"


def test_default_warning_goes_to_stderr(write_script, capsys):
    path = write_script('print "hello"\n')
    run(path)
    captured = capsys.readouterr()
    assert captured.out == "hello\n"
    assert captured.err == f"[!] {path}: Python 2 script translated to Python 3\n"


def test_python2_traceback_shows_the_translated_lines(write_script, capsys):
    path = write_script("""\
        print "starting"
        raise ValueError, "old style"
    """)
    with pytest.raises(ScriptError):
        run(path, warn=lambda message: None)
    err = capsys.readouterr().err
    assert f'File "{path}", line 2, in <module>' in err
    assert '    raise ValueError("old style")' in err
    assert linecache.getline(path, 1) == 'print("starting")\n'


def test_python3_script_is_not_translated(write_script):
    path = write_script('print("hello", end="")\n')
    warnings = []
    run(path, warn=warnings.append)
    assert warnings == []


def test_script_broken_in_both_pythons_reports_the_python3_error(write_script, capsys):
    path = write_script("""\
        print "a"
        def broken(:
            pass
    """)
    warnings = []
    with pytest.raises(ScriptError) as caught:
        run(path, warn=warnings.append)
    assert warnings == []
    assert isinstance(caught.value.__cause__, SyntaxError)
    err = capsys.readouterr().err
    assert f'File "{path}", line 1' in err
    assert "Missing parentheses in call to 'print'" in err


# --- the compiled code, kept in the cache ------------------------------------------


@pytest.fixture
def compiles(monkeypatch):
    """Count the loader's calls of compile()."""
    calls = []

    def counting(source, filename, *args, **kwargs):
        calls.append(filename)
        return compile(source, filename, *args, **kwargs)

    monkeypatch.setattr(script_module, "compile", counting, raising=False)
    return calls


script_module = sys.modules["ptap.script"]


def test_an_unchanged_script_is_compiled_once(write_script, compiles, capsys):
    path = write_script('print("hello")\n')
    run(path)
    run(path)
    assert compiles == [path]
    assert capsys.readouterr().out == "hello\nhello\n"


def test_a_changed_script_is_compiled_again(write_script, compiles, capsys):
    path = write_script('print("one")\n')
    stat = os.stat(path)
    run(path)
    write_script('print("two")\n')
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # Same size and time: only the text differs.
    run(path)
    assert capsys.readouterr().out == "one\ntwo\n"
    assert compiles == [path, path]


def test_a_translated_script_is_translated_once_and_still_warned_about(write_script, monkeypatch, capsys):
    path = write_script('print "hello"\n')
    run(path, warn=lambda message: None)
    from ptap import legacy

    def no_translation(*args):
        raise AssertionError("translated again")

    monkeypatch.setattr(legacy, "translate", no_translation)
    warnings = []
    run(path, warn=warnings.append)
    assert warnings == [f"{path}: Python 2 script translated to Python 3"]
    assert capsys.readouterr().out == "hello\nhello\n"


def test_a_cached_script_traceback_shows_the_translated_lines(write_script, capsys):
    path = write_script("""\
        print "starting"
        raise ValueError, "old style"
    """)
    for _ in range(2):  # Translated, then from the cache.
        linecache.cache.pop(path, None)
        with pytest.raises(ScriptError):
            run(path, warn=lambda message: None)
        assert '    raise ValueError("old style")' in capsys.readouterr().err


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_a_damaged_cache_entry_is_compiled_again(write_script, compiles, capsys, where):
    # Wherever the damage is, in the key, the script's text or its code.
    path = write_script('print("hello")\n')
    run(path)
    entry = cache.entry_path("scripts/script", script_module._code_key(path))
    with open(entry, "r+b") as file:
        file.seek(int(os.path.getsize(entry) * where))
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0x20]))
    run(path)
    assert capsys.readouterr().out == "hello\nhello\n"
    assert compiles == [path, path]


def test_a_script_runs_with_an_unwritable_cache(write_script, tmp_path, monkeypatch, compiles, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PTAP_CACHE_DIR", str(blocker))
    path = write_script('print("hello")\n')
    run(path)
    run(path)
    assert capsys.readouterr().out == "hello\nhello\n"
    assert compiles == [path, path]


def test_scripts_are_read_as_utf8_with_universal_newlines(write_script, tmp_path, capsys):
    path = tmp_path / "crlf.ptap"
    path.write_bytes('\ufeffprint("caf\u00e9")\r\nprint(2)\r'.encode("utf-8"))
    for _ in range(2):
        run(str(path))
    assert capsys.readouterr().out == "caf\u00e9\n2\n" * 2
