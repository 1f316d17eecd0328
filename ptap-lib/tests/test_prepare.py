"""Tests for ptap.prepare: caching a script's headers before the target starts."""

import os
import subprocess
import sys
import textwrap

import pytest

import ptap
from ptap import cdecl, headers, prepare, script
from ptap.errors import PrototypeError
from ptap.prepare import included_headers, main

LIB_DIR = os.path.dirname(os.path.dirname(ptap.__file__))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A cache of the test's own."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("PTAP_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def include_dir(tmp_path):
    """A header directory holding mylib.h."""
    directory = tmp_path / "include"
    directory.mkdir()
    (directory / "mylib.h").write_text("#include <stddef.h>\nsize_t mylen(const char *s);\n")
    return directory


def write_script(tmp_path, source):
    """Write a script and return its path."""
    path = tmp_path / "script.ptap"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return str(path)


# --- finding include() calls ---------------------------------------------------


def test_included_headers_in_order_without_repeats():
    source = textwrap.dedent("""\
        include("stdio.h")
        import ptap
        ptap.include("sys/stat.h")
        if True:
            include("stdio.h")
        def later():
            include("string.h")
        include(name)             # Not a literal: the loader cannot know it.
        include("a.h", "b.h")     # Not a call include() accepts.
        declare("int include(int);")
    """)
    assert included_headers(source, "s.ptap") == ["stdio.h", "sys/stat.h", "string.h"]


def test_included_headers_of_a_python2_script():
    source = 'include("stdlib.h")\nprint "loaded"\n'
    assert included_headers(source, "s.ptap") == ["stdlib.h"]


def test_included_headers_of_a_script_that_is_not_python():
    assert included_headers('include("stdio.h")\n)))\n', "s.ptap") == []


# --- the command ---------------------------------------------------------------


def test_main_prepares_silently(tmp_path, cache_dir, include_dir, capsys):
    path = write_script(tmp_path, """\
        include("mylib.h")
        include("string.h")
    """)
    assert main(["-I", str(include_dir), path]) == 0
    assert capsys.readouterr() == ("", "")
    assert headers.is_prepared("mylib.h", [str(include_dir)])
    assert headers.is_prepared("string.h", [str(include_dir)])
    # Not for other -I directories.
    assert not headers.is_prepared("mylib.h", [])


def test_main_prepares_for_the_targets_data_model(tmp_path, cache_dir, include_dir):
    # A 32-bit target's runtime looks its headers up under ILP32, and glibc's
    # headers are those of i386 there (gcc -m32).
    (include_dir / "sizes.h").write_text(
        "#include <bits/wordsize.h>\n#if __WORDSIZE == 32\nint narrow(void);\n#else\nint wide(void);\n#endif\n")
    path = write_script(tmp_path, 'include("sizes.h")\n')
    for model, name in ((cdecl.ILP32, "narrow"), (cdecl.LP64, "wide")):
        assert not headers.is_prepared("sizes.h", [str(include_dir)], model)
        assert main(["--data-model", model.name, "-I", str(include_dir), path]) == 0
        assert headers.is_prepared("sizes.h", [str(include_dir)], model)
        assert [p.name for p in headers.load("sizes.h", [str(include_dir)], model).prototypes] == [name]


def test_main_skips_prepared_headers(tmp_path, cache_dir, include_dir, monkeypatch):
    path = write_script(tmp_path, 'include("mylib.h")\n')
    assert main([f"-I{include_dir}", path]) == 0
    runs = []
    monkeypatch.setattr(prepare, "_preprocess", lambda *args: runs.append(args))
    assert main([f"-I{include_dir}", path]) == 0
    assert runs == []


def test_main_prepares_a_python2_script(tmp_path, cache_dir, include_dir):
    path = write_script(tmp_path, """\
        include("mylib.h")
        print "hello"
    """)
    assert main(["-I", str(include_dir), path]) == 0
    assert headers.is_prepared("mylib.h", [str(include_dir)])


def test_errors_are_stored_for_the_target(tmp_path, cache_dir, include_dir, monkeypatch, capsys):
    (include_dir / "broken.h").write_text("int broken(int x) $;\n")
    path = write_script(tmp_path, 'include("nosuch.h")\ninclude("broken.h")\n')
    assert main(["-I", str(include_dir), path]) == 0
    assert capsys.readouterr() == ("", "")
    monkeypatch.setattr(script, "_include_dirs", (str(include_dir),))
    for header, message in (("nosuch.h", "not found"), ("broken.h", "cannot parse")):
        entry = headers.load(header, [str(include_dir)])
        assert message in entry.error
        with pytest.raises(PrototypeError, match=message):
            ptap.include(header)


def test_errors_are_tried_again(tmp_path, cache_dir, include_dir):
    path = write_script(tmp_path, 'include("later.h")\n')
    assert main(["-I", str(include_dir), path]) == 0
    assert not headers.is_prepared("later.h", [str(include_dir)])
    (include_dir / "later.h").write_text("int later(void);\n")
    assert main(["-I", str(include_dir), path]) == 0
    assert headers.is_prepared("later.h", [str(include_dir)])


def test_main_missing_script(tmp_path, cache_dir, capsys):
    assert main([str(tmp_path / "missing.ptap")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_main_usage_error(capsys):
    with pytest.raises(SystemExit) as raised:
        main([])
    assert raised.value.code == 2


def test_program_headers_are_found_through_the_translation():
    from ptap.prepare import _program_headers

    program = 'include("string.h") ;; function_entry(function_name == "strlen"): include("stdio.h")'
    assert _program_headers(program) == ["string.h", "stdio.h"]
    assert _program_headers("function_entry(: broken") == []


def test_main_unwritable_cache(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("PTAP_CACHE_DIR", str(blocker))
    path = write_script(tmp_path, 'include("string.h")\n')
    assert main([path]) == 1
    assert "cannot write the header cache" in capsys.readouterr().err


def test_a_script_without_includes_needs_nothing(tmp_path, cache_dir):
    path = write_script(tmp_path, "print('no headers')\n")
    assert main([path]) == 0
    assert not cache_dir.exists()


def test_run_as_a_module(tmp_path, cache_dir, include_dir):
    path = write_script(tmp_path, 'include("mylib.h")\n')
    environment = dict(os.environ, PYTHONPATH=LIB_DIR)
    result = subprocess.run(
        [sys.executable, "-m", "ptap.prepare", "-I", str(include_dir), path],
        capture_output=True, text=True, env=environment,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert headers.is_prepared("mylib.h", [str(include_dir)])


def test_preprocessor_flags_parse_the_system_headers(cache_dir):
    # Headers beyond those of the issue, from glibc, the kernel and gcc.
    for header in ("signal.h", "sys/mman.h", "stddef.h", "link.h", "linux/fs.h", "wchar.h"):
        entry = prepare.prepare_header(header, [])
        assert entry.error is None, entry.error
        assert headers.is_prepared(header, [])
