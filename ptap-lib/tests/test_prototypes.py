"""Tests for ptap.prototypes: include(), declare(), prototype() and what the runtime fetches."""

import os
import sys
import types

import pytest

import ptap
from ptap import cdecl, cparse, headers, prepare, prototypes, script
from ptap.cdecl import ILP32, LP64
from ptap.errors import MissingPrototype, PrototypeError

#: Each header the issue names, with a function it declares and that function's data.
SYSTEM_HEADERS = [
    ("stdlib.h", "malloc", ("pointer", 8, False, None), (("int", 8, False, None),)),
    ("stdio.h", "fopen", ("pointer", 8, False, None), (("string", 8, False, None),) * 2),
    ("string.h", "strlen", ("int", 8, False, None), (("string", 8, False, None),)),
    ("unistd.h", "close", ("int", 4, True, None), (("int", 4, True, None),)),
    ("fcntl.h", "creat", ("int", 4, True, None), (("string", 8, False, None), ("int", 4, False, None))),
    ("math.h", "pow", ("double", 8, False, None), (("double", 8, False, None),) * 2),
    ("sys/socket.h", "listen", ("int", 4, True, None), (("int", 4, True, None),) * 2),
    ("pthread.h", "pthread_self", ("int", 8, False, None), ()),
    ("time.h", "time", ("int", 8, True, None), (("pointer", 8, False, None),)),
    ("sys/stat.h", "mkdir", ("int", 4, True, None), (("string", 8, False, None), ("int", 4, False, None))),
    ("dirent.h", "opendir", ("pointer", 8, False, None), (("string", 8, False, None),)),
]


@pytest.fixture
def include_dir(tmp_path, monkeypatch):
    """A directory searched for headers, as -I DIR, with its own header cache."""
    directory = tmp_path / "include"
    directory.mkdir()
    monkeypatch.setattr(script, "_include_dirs", (str(directory),))
    monkeypatch.setenv("PTAP_CACHE_DIR", str(tmp_path / "cache"))
    return directory


@pytest.fixture
def preprocessor_runs(monkeypatch):
    """Count the runs of the C preprocessor."""
    runs = []
    real = prepare._preprocess

    def counting(header, include_dirs, model=None):
        runs.append(header)
        return real(header, include_dirs, model)

    monkeypatch.setattr(prepare, "_preprocess", counting)
    return runs


@pytest.fixture
def inside_target(monkeypatch):
    """Pretend to run inside a traced program, where the native module _ptap exists."""
    monkeypatch.setitem(sys.modules, "_ptap", types.ModuleType("_ptap"))


# --- include() -----------------------------------------------------------------


@pytest.mark.skipif(sys.maxsize < 2**32, reason="sizes of x86-64")
@pytest.mark.parametrize("header, function, restype, params", SYSTEM_HEADERS)
def test_system_headers_parse(header, function, restype, params):
    ptap.include(header)
    name, returned, taken, variadic = ptap.prototype(function).to_data()
    assert (name, returned, taken, variadic) == (function, restype, params, False)


def test_prototypes_print_as_the_header_wrote_them():
    ptap.include("string.h")
    ptap.include("stdlib.h")
    ptap.include("stdio.h")
    assert str(ptap.prototype("strlen")) == "size_t strlen(const char *__s);"
    assert str(ptap.prototype("malloc")) == "void *malloc(size_t __size);"
    assert str(ptap.prototype("printf")) == "int printf(const char *restrict __format, ...);"


def test_variadic_functions_and_typedef_chains_from_a_header():
    ptap.include("stdio.h")
    ptap.include("unistd.h")
    assert ptap.prototype("printf").to_data(LP64) == (
        "printf", ("int", 4, True, None), (("string", 8, False, None),), True,
    )
    # ssize_t -> __ssize_t -> long
    restype = ptap.prototype("read").restype
    assert (restype.name, restype.target.name, restype.resolve().name) == (
        "ssize_t", "__ssize_t", "long int",
    )
    assert restype.to_data(LP64) == ("int", 8, True, None)


def test_parsed_headers_lists_each_header_once_in_order():
    ptap.include("string.h")
    ptap.include("dirent.h")
    ptap.include("string.h")
    listed = prototypes.parsed_headers()
    assert [header for header, _ in listed] == ["string.h", "dirent.h"]
    assert all(count > 10 for _, count in listed)


def test_linux_syscalls_h_is_built_in():
    ptap.include("linux_syscalls.h")
    assert prototypes.parsed_headers() == []


def test_header_not_found(include_dir):
    with pytest.raises(PrototypeError, match=r"header 'nosuch\.h' not found \(searched .*include"):
        ptap.include("nosuch.h")


def test_header_that_does_not_parse_quotes_its_line(include_dir):
    (include_dir / "broken.h").write_text("int fine(void);\nint broken(int x) $;\n")
    with pytest.raises(PrototypeError) as raised:
        ptap.include("broken.h")
    message = str(raised.value)
    assert "cannot parse header 'broken.h'" in message
    assert "broken.h, line 2" in message
    assert "int broken(int x) $;" in message


def test_include_takes_a_string():
    with pytest.raises(TypeError, match="header name"):
        ptap.include(42)


def test_headers_from_include_dirs(include_dir):
    (include_dir / "mylib.h").write_text(
        "#include <stddef.h>\n"
        "typedef struct foo foo_t;\n"
        "int foo_init(foo_t *f, size_t n);\n"
    )
    ptap.include("mylib.h")
    assert str(ptap.prototype("foo_init")) == "int foo_init(foo_t *f, size_t n);"
    assert prototypes.parsed_headers() == [("mylib.h", 1)]


# --- the cache -----------------------------------------------------------------


def test_a_cached_header_is_not_preprocessed_again(include_dir, preprocessor_runs):
    (include_dir / "mylib.h").write_text("int one(int x);\n")
    ptap.include("mylib.h")
    prototypes.reset()
    ptap.include("mylib.h")
    assert preprocessor_runs == ["mylib.h"]
    assert str(ptap.prototype("one")) == "int one(int x);"


def test_a_changed_header_is_prepared_again(include_dir, preprocessor_runs):
    header = include_dir / "mylib.h"
    header.write_text("int one(int x);\n")
    ptap.include("mylib.h")
    header.write_text("long one(long x, long y);\n")
    os.utime(header, ns=(1, 1))  # Even with an older time, the size says it changed.
    prototypes.reset()
    ptap.include("mylib.h")
    assert preprocessor_runs == ["mylib.h", "mylib.h"]
    assert str(ptap.prototype("one")) == "long one(long x, long y);"


def test_a_change_to_a_nested_header_is_seen(include_dir):
    (include_dir / "outer.h").write_text('#include "inner.h"\n')
    inner = include_dir / "inner.h"
    inner.write_text("int first(void);\n")
    ptap.include("outer.h")
    inner.write_text("int second(void);\n")
    prototypes.reset()
    ptap.include("outer.h")
    assert str(ptap.prototype("second")) == "int second(void);"
    with pytest.raises(MissingPrototype):
        ptap.prototype("first")


def test_include_dirs_are_part_of_the_key(tmp_path, monkeypatch, preprocessor_runs):
    monkeypatch.setenv("PTAP_CACHE_DIR", str(tmp_path / "cache"))
    for name, declaration in (("a", "int from_a(void);\n"), ("b", "int from_b(void);\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "lib.h").write_text(declaration)
    monkeypatch.setattr(script, "_include_dirs", (str(tmp_path / "a"),))
    ptap.include("lib.h")
    monkeypatch.setattr(script, "_include_dirs", (str(tmp_path / "b"),))
    prototypes.reset()
    ptap.include("lib.h")
    assert str(ptap.prototype("from_b")) == "int from_b(void);"
    assert len(preprocessor_runs) == 2


def test_cache_entries_are_named_after_the_header(include_dir, tmp_path):
    (include_dir / "mylib.h").write_text("int one(int x);\n")
    ptap.include("mylib.h")
    [entry] = (tmp_path / "cache" / "headers").iterdir()
    assert entry.name.startswith("mylib.h-") and entry.suffix == ".marshal"
    assert not [path for path in entry.parent.iterdir() if ".tmp" in path.name]


def test_loading_a_cached_header_parses_nothing(include_dir, monkeypatch):
    (include_dir / "mylib.h").write_text("int one(int x);\n")
    ptap.include("mylib.h")
    prototypes.reset()

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again")

    monkeypatch.setattr(cparse, "parse", no_parsing)
    ptap.include("mylib.h")
    assert str(ptap.prototype("one")) == "int one(int x);"


# --- inside the target ---------------------------------------------------------


def test_inside_the_target_an_unprepared_header_is_an_error(include_dir, inside_target):
    (include_dir / "mylib.h").write_text("int one(int x);\n")
    with pytest.raises(PrototypeError) as raised:
        ptap.include("mylib.h")
    message = str(raised.value)
    assert "'mylib.h' was not prepared" in message
    assert "launcher" in message and "drrun" in message and "string literal" in message
    assert str(include_dir.parent / "cache") in message


def test_inside_the_target_a_prepared_header_loads(include_dir, preprocessor_runs, monkeypatch):
    (include_dir / "mylib.h").write_text("int one(int x);\n")
    prepare.prepare_header("mylib.h", script.include_dirs())
    monkeypatch.setitem(sys.modules, "_ptap", types.ModuleType("_ptap"))
    ptap.include("mylib.h")
    assert preprocessor_runs == ["mylib.h"]
    assert str(ptap.prototype("one")) == "int one(int x);"


def test_inside_the_target_a_corrupt_entry_is_not_prepared(include_dir, preprocessor_runs, monkeypatch):
    (include_dir / "mylib.h").write_text("int one(int x);\n")
    prepare.prepare_header("mylib.h", script.include_dirs())
    entry = headers.entry_path("mylib.h", script.include_dirs())
    with open(entry, "r+b") as file:
        file.truncate(os.path.getsize(entry) // 2)
    monkeypatch.setitem(sys.modules, "_ptap", types.ModuleType("_ptap"))
    with pytest.raises(PrototypeError, match="'mylib.h' was not prepared"):
        ptap.include("mylib.h")


def test_outside_the_target_a_corrupt_entry_is_prepared_again(include_dir, preprocessor_runs):
    (include_dir / "mylib.h").write_text("int one(int x);\n")
    prepare.prepare_header("mylib.h", script.include_dirs())
    with open(headers.entry_path("mylib.h", script.include_dirs()), "wb") as file:
        file.write(b"not an entry")
    ptap.include("mylib.h")
    assert preprocessor_runs == ["mylib.h", "mylib.h"]
    assert str(ptap.prototype("one")) == "int one(int x);"
    assert headers.is_prepared("mylib.h", script.include_dirs())


def test_inside_the_target_a_stored_error_is_raised(include_dir, inside_target):
    prepare.prepare_header("nosuch.h", script.include_dirs())
    with pytest.raises(PrototypeError, match="'nosuch.h' not found"):
        ptap.include("nosuch.h")


# --- declare() -----------------------------------------------------------------


def test_declare_returns_the_prototype():
    proto = ptap.declare("int parse(const char *s, size_t n);")
    assert str(proto) == "int parse(const char *s, size_t n);"
    assert ptap.prototype("parse") is proto
    assert proto.to_data(LP64) == (
        "parse", ("int", 4, True, None),
        (("string", 8, False, None), ("int", 8, False, None)), False,
    )


def test_declare_several_returns_a_list():
    declared = ptap.declare("int f(int);\nvoid g(double d, ...);")
    assert [str(proto) for proto in declared] == ["int f(int);", "void g(double d, ...);"]
    assert ptap.declare("typedef int handle_t;") == []


def test_declare_with_its_own_typedefs():
    proto = ptap.declare("typedef struct foo foo_t; int f(foo_t *p, foo_t q);")
    assert str(proto) == "int f(foo_t *p, foo_t q);"
    assert proto.to_data(LP64)[2] == (
        ("pointer", 8, False, None), ("unsupported", 0, False, "struct by value"),
    )
    # Typedefs stay known to later declarations.
    assert str(ptap.declare("foo_t *make(void);")) == "foo_t *make(void);"


@pytest.mark.parametrize(
    "name, data",
    [
        ("size_t", ("int", 8, False, None)),
        ("ssize_t", ("int", 8, True, None)),
        ("off_t", ("int", 8, True, None)),
        ("pid_t", ("int", 4, True, None)),
        ("uid_t", ("int", 4, False, None)),
        ("gid_t", ("int", 4, False, None)),
        ("mode_t", ("int", 4, False, None)),
        ("int8_t", ("int", 1, True, None)),
        ("uint16_t", ("int", 2, False, None)),
        ("int32_t", ("int", 4, True, None)),
        ("uint64_t", ("int", 8, False, None)),
        ("intptr_t", ("int", 8, True, None)),
        ("uintptr_t", ("int", 8, False, None)),
        ("socklen_t", ("int", 4, False, None)),
        ("time_t", ("int", 8, True, None)),
        ("FILE *", ("pointer", 8, False, None)),
    ],
)
def test_common_typedefs_need_no_include(name, data):
    proto = ptap.declare(f"void f({name} x);")
    assert proto.to_data(LP64)[2] == (data,)
    assert str(proto) == f"void f({name}{'' if name.endswith('*') else ' '}x);"


def test_declare_uses_the_typedefs_of_included_headers():
    ptap.include("dirent.h")
    proto = ptap.declare("int walk(DIR *d, struct dirent *e, __ino_t ino);")
    assert proto.to_data(LP64)[2][2] == ("int", 8, False, None)


def test_declare_with_comments():
    proto = ptap.declare("/* parse it */ int parse(const char *s, // the text\n size_t n);")
    assert str(proto) == "int parse(const char *s, size_t n);"


def test_declared_again_replaces():
    ptap.declare("int f(int x);")
    ptap.declare("long f(long x);")
    assert str(ptap.prototype("f")) == "long f(long x);"


def test_declare_syntax_error_quotes_the_line():
    with pytest.raises(PrototypeError) as raised:
        ptap.declare("int ok(void);\nint parse(int x) $;")
    assert str(raised.value) == (
        "C syntax error in <declare>, line 2, column 18: before $\n"
        "    int parse(int x) $;\n"
        "                     ^"
    )


def test_declare_unknown_type_names_the_suspect():
    with pytest.raises(PrototypeError, match=r"is 'parser_t' a type\?"):
        ptap.declare("int parse(parser_t *p);")
    with pytest.raises(PrototypeError, match=r"is 'parser_t' a type\?"):
        ptap.declare("int parse(int n, parser_t p);")


def test_declare_unfinished():
    with pytest.raises(PrototypeError, match="ends in the middle of a declaration"):
        ptap.declare("int parse(int x")


def test_declare_takes_a_string():
    with pytest.raises(TypeError):
        ptap.declare(None)


# --- prototype(), exported(), reset() -------------------------------------------


def test_unknown_prototype_is_missing():
    ptap.include("string.h")
    with pytest.raises(MissingPrototype) as raised:
        ptap.prototype("no_such_function")
    assert str(raised.value) == (
        "no prototype of 'no_such_function' (headers included: string.h); "
        "include() its header or declare() it"
    )


def test_exported_maps_names_to_data():
    ptap.declare("int parse(const char *s, size_t n);")
    ptap.declare("double scale(double x, float f);")
    assert prototypes.exported(LP64) == {
        "parse": ("parse", ("int", 4, True, None),
                  (("string", 8, False, None), ("int", 8, False, None)), False),
        "scale": ("scale", ("double", 8, False, None),
                  (("double", 8, False, None), ("float", 4, False, None)), False),
    }


def test_exported_holds_included_functions():
    ptap.include("string.h")
    exported = prototypes.exported()
    assert exported["strlen"] == ptap.prototype("strlen").to_data()
    assert len(exported) == prototypes.parsed_headers()[0][1]


def test_including_a_cached_header_decodes_nothing(include_dir, monkeypatch):
    # A traced process that includes a header and has no function probe
    # pays for reading the entry, not for a hundred prototypes.
    (include_dir / "mylib.h").write_text("typedef long handle_t; int one(handle_t h);\n")
    ptap.include("mylib.h")
    prototypes.reset()

    def no_decoding(*args):
        raise AssertionError("decoded")

    with monkeypatch.context() as patched:
        patched.setattr(cdecl, "decode_prototype", no_decoding)
        patched.setattr(cdecl, "decode_type", no_decoding)
        ptap.include("mylib.h")
        assert prototypes.exported()["one"] == ("one", ("int", 4, True, None), (("int", 8, True, None),), False)
    assert str(ptap.prototype("one")) == "int one(handle_t h);"
    assert ptap.declare("handle_t two(void);").to_data(LP64)[1] == ("int", 8, True, None)


def test_exported_header_functions_for_another_data_model(include_dir):
    (include_dir / "mylib.h").write_text("long one(long x);\n")
    ptap.include("mylib.h")
    assert prototypes.exported(ILP32)["one"] == ("one", ("int", 4, True, None), (("int", 4, True, None),), False)


def test_declare_after_include_replaces_the_header_prototype(include_dir):
    (include_dir / "mylib.h").write_text("int one(int x);\n")
    ptap.include("mylib.h")
    ptap.declare("long one(const char *s);")
    assert str(ptap.prototype("one")) == "long one(const char *s);"
    assert prototypes.exported(LP64)["one"][2] == (("string", 8, False, None),)


def test_include_after_declare_replaces_the_declared_prototype(include_dir):
    (include_dir / "mylib.h").write_text("int one(int x);\n")
    ptap.declare("long one(const char *s);")
    ptap.include("mylib.h")
    assert prototypes.exported(LP64)["one"][2] == (("int", 4, True, None),)
    assert str(ptap.prototype("one")) == "int one(int x);"


def test_typedefs_of_later_headers_and_declarations_replace_earlier_ones(include_dir):
    (include_dir / "a.h").write_text("typedef short handle_t;\n")
    (include_dir / "b.h").write_text("typedef long handle_t;\n")
    ptap.include("a.h")
    ptap.declare("typedef char handle_t;")
    ptap.include("b.h")
    assert ptap.declare("int f(handle_t h);").to_data(LP64)[2] == (("int", 8, True, None),)
    ptap.declare("typedef short handle_t;")
    assert ptap.declare("int g(handle_t h);").to_data(LP64)[2] == (("int", 2, True, None),)


def test_reset_forgets_everything():
    ptap.include("string.h")
    ptap.declare("typedef int handle_t; int f(handle_t h);")
    prototypes.reset()
    assert prototypes.exported() == {}
    assert prototypes.parsed_headers() == []
    with pytest.raises(PrototypeError, match="handle_t"):
        ptap.declare("int g(handle_t h);")


def test_header_entries_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("PTAP_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "inc").mkdir()
    monkeypatch.chdir(tmp_path)
    absolute = headers.entry_path("lib.h", [str(tmp_path / "inc")])
    assert headers.entry_path("lib.h", ["inc"]) == absolute
