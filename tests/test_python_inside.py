"""The Python that handlers run in: the standard library, inside the target's process."""

import json

import pytest

from conftest import HELLO_OUTPUT, REPO_ROOT, script_lines


def test_json_decimal_ctypes_in_a_handler(trace, target):
    script = """\
@process_exit
def done(ctx):
    import json, decimal, ctypes
    print("[json]", json.dumps({"b": [1, 2.5, None], "a": "\\u00e9"}, sort_keys=True))
    print("[decimal]", decimal.Decimal("0.1") + decimal.Decimal("0.2"),
          decimal.Decimal(1) / decimal.Decimal(7))
    print("[sizeof]", ctypes.sizeof(ctypes.c_int32), ctypes.sizeof(ctypes.c_void_p),
          ctypes.sizeof(ctypes.c_double))
    buffer = ctypes.create_string_buffer(b"abc", 8)
    print("[buffer]", buffer.value, ctypes.sizeof(buffer))
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[json] ") == [
        json.dumps({"b": [1, 2.5, None], "a": "\u00e9"}, sort_keys=True)
    ], str(result)
    assert script_lines(result.stdout, "[decimal] ") == [
        "0.3 0.1428571428571428571428571429"
    ], str(result)
    assert script_lines(result.stdout, "[sizeof] ") == ["4 8 8"], str(result)
    assert script_lines(result.stdout, "[buffer] ") == ["b'abc' 8"], str(result)
    assert result.stderr == "", str(result)


def test_ctypes_calls_into_libc(trace, target):
    script = """\
import ctypes, os
@process_exit
def done(ctx):
    libc = ctypes.CDLL("libc.so.6")
    print("[abs]", libc.abs(-5))
    print("[getpid]", libc.getpid() == ctx.pid == os.getpid())
    print("[atoi]", libc.atoi(b"123"), libc.toupper(ord("a")))
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[abs] ") == ["5"], str(result)
    assert script_lines(result.stdout, "[getpid] ") == ["True"], str(result)
    assert script_lines(result.stdout, "[atoi] ") == ["123 65"], str(result)


def test_ctypes_calls_libc_functions_chosen_at_load_time(trace, target):
    # strlen, memcmp and strcmp are GNU indirect functions (IFUNC) in glibc:
    # the symbol names a resolver that picks the implementation for the CPU.
    script = """\
import ctypes
@process_exit
def done(ctx):
    libc = ctypes.CDLL("libc.so.6")
    libc.strlen.restype = ctypes.c_size_t
    print("[strlen]", libc.strlen(b"processtap"))
    print("[memcmp]", libc.memcmp(b"same", b"same", 4))
    print("[strcmp]", libc.strcmp(b"a", b"b") < 0, libc.strcmp(b"b", b"a") > 0)
    print("[global]", hasattr(ctypes.CDLL(None), "strlen"))
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[strlen] ") == ["10"], str(result)
    assert script_lines(result.stdout, "[memcmp] ") == ["0"], str(result)
    assert script_lines(result.stdout, "[strcmp] ") == ["True True"], str(result)
    assert script_lines(result.stdout, "[global] ") == ["True"], str(result)


def test_ctypes_global_namespace(trace, target):
    # ctypes.CDLL(None) is dlopen(NULL): the symbols of the process.
    script = """\
import ctypes, os
@process_exit
def done(ctx):
    print("[getpid]", ctypes.CDLL(None).getpid() == os.getpid())
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[getpid] ") == ["True"], str(result)


@pytest.mark.parametrize("where", ["top level", "handler"])
def test_stdlib_modules_work(trace, target, where):
    body = """\
import hashlib, zlib, re, collections, struct, sqlite3
db = sqlite3.connect(":memory:")
db.execute("create table t (x)")
db.executemany("insert into t values (?)", [(1,), (2,), (3,)])
print("[stdlib]", hashlib.sha256(b"abc").hexdigest()[:16], zlib.crc32(b"abc"),
      re.sub(r"\\d+", "#", "a1b22"), collections.Counter("aab")["a"],
      struct.pack("<I", 258).hex(), db.execute("select sum(x) from t").fetchone()[0])
"""
    if where == "handler":
        body = "@process_exit\ndef done(ctx):\n" + "".join("    " + line + "\n" for line in body.splitlines())
    result = trace(body, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[stdlib] ") == [
        "ba7816bf8f01cfea 891568578 a#b# 2 02010000 6"
    ], str(result)


def test_handlers_run_inside_the_target_process(trace, target):
    script = """\
import os
@process_exit
def done(ctx):
    cmdline = open("/proc/self/cmdline", "rb").read().split(b"\\0")[:-1]
    print("[cmdline]", [arg.decode() for arg in cmdline] == argv)
    print("[pid]", os.getpid() == ctx.pid)
"""
    result = trace(script, target("exit_with"), "0", options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[cmdline] ") == ["True"], str(result)
    assert script_lines(result.stdout, "[pid] ") == ["True"], str(result)


def test_os_errors_are_the_right_exceptions(trace, target):
    script = """\
@process_exit
def done(ctx):
    try:
        open("/nonexistent-ptap-dir/file")
    except OSError as error:
        print("[error]", type(error).__name__, error.errno)
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[error] ") == ["FileNotFoundError 2"], str(result)


def test_file_io_errors_carry_their_errno(trace, target):
    # DynamoRIO binds the private libraries' read/write/close to its own,
    # which return -errno without setting errno: these raised OSError(0).
    script = """\
import os
def attempt(what, call):
    try:
        call()
    except OSError as error:
        print("[error]", what, type(error).__name__, error.errno)

@process_exit
def done(ctx):
    attempt("write", lambda: os.write(987654, b"x"))
    attempt("read", lambda: os.read(987654, 1))
    attempt("close", lambda: os.close(987654))
    r, w = os.pipe()
    os.set_blocking(w, False)
    attempt("full pipe", lambda: [os.write(w, b"y" * 4096) for _ in range(10_000)])
    os.set_blocking(r, False)
    attempt("empty pipe", lambda: [os.read(r, 1 << 20) for _ in range(10_000)])
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[error] ") == [
        "write OSError 9",
        "read OSError 9",
        "close OSError 9",
        "full pipe BlockingIOError 11",
        "empty pipe BlockingIOError 11",
    ], str(result)


def test_text_files_are_utf8(trace, target, tmp_path):
    # The private libc's locale is "C": without UTF-8 mode the tracer's
    # Python read text and file names as ASCII.
    text = tmp_path / "caf\u00e9.txt"
    text.write_text("na\u00efve \u2713\n", encoding="utf-8")
    script = f"""\
import sys
print("[enc]", sys.getfilesystemencoding(), open({str(text)!r}).read().strip())
"""
    result = trace(script, target("hello"), options=["-q"], env={"LANG": "C.UTF-8"})
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[enc] ") == ["utf-8 na\u00efve \u2713"], str(result)


def test_python_version_is_3(trace, target):
    script = "import sys\nprint('[version]', sys.version_info[0])\n"
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == "[version] 3\n" + HELLO_OUTPUT, str(result)


def test_thread_local_data_lasts_from_thread_start_to_thread_exit(trace, target):
    # Like DTrace's self-> variables: threading.local set when a thread
    # starts is still there, on that thread, when it exits.
    script = """\
import threading
local = threading.local()
seen = []
lock = threading.Lock()
@thread_start
def started(ctx):
    local.tid = ctx.tid
@thread_exit
def ended(ctx):
    with lock:
        seen.append(getattr(local, "tid", None) == ctx.tid)
@process_exit
def done(ctx):
    print("[seen]", len(seen), all(seen))
"""
    result = trace(script, target("threads"), "4", options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[seen] ") == ["4 True"], str(result)


def test_starting_a_thread_in_a_handler_is_an_error_not_a_crash(trace, target, run_native):
    # A thread started inside the target would run where DynamoRIO does not
    # know it (it crashed the target); starting one raises RuntimeError,
    # through threading and _thread alike, and the target runs on.
    script = """\
import threading, _thread
@module_load(module_name == "libc.so.6")
def start(ctx):
    for name, start_thread in (("threading", lambda: threading.Thread(target=print).start()),
                               ("_thread", lambda: _thread.start_new_thread(print, ()))):
        try:
            start_thread()
            print("[started]", name)
        except RuntimeError as e:
            print("[refused]", name, "cannot start threads" in str(e))
"""
    native = run_native(target("hello"))
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == native.returncode == 0, str(result)
    assert script_lines(result.stdout, "[refused] ") == ["threading True", "_thread True"], str(result)
    assert script_lines(result.stdout, "[started] ") == [], str(result)
    assert HELLO_OUTPUT in result.stdout, str(result)


#: Prints what an import of distutils gives and which finders are then on
#: sys.meta_path: both change when a .pth file installs an import hook
#: (Debian's setuptools: distutils from setuptools), so they tell whether
#: the .pth files' import lines ran before the import.
_IMPORT_HOOKS_PROBE = """\
import sys
try:
    import distutils
    found = distutils.__file__
except ImportError as error:
    found = f"ImportError {error.name}"
finders = [getattr(f, "__name__", type(f).__name__) for f in sys.meta_path]
print("[distutils]", found)
print("[finders]", [f for f in finders if f != "_DeferredSite"])
"""


@pytest.mark.parametrize("where", ["top level", "handler"])
def test_imports_are_found_as_python_itself_finds_them(trace, target, run_native, where):
    # The tracer's Python runs site's steps itself, the costly ones only
    # when the script first imports (runtime/src/deferred_site.py): what
    # the script sees must be what /usr/bin/python3.11 -I sees.
    native = run_native(
        "/usr/bin/python3.11", "-I", "-c", "import sys; print('[path]', sys.path)\n" + _IMPORT_HOOKS_PROBE
    )
    assert native.returncode == 0, native.stderr
    paths = """\
import sys
print("[path]", [p for p in sys.path if p != PTAP_LIB and p != SCRIPT_DIR])
"""
    body = _IMPORT_HOOKS_PROBE + "import pycparser\nprint('[pycparser]', pycparser.__file__)\n"
    if where == "handler":
        body = "@process_exit\ndef done(ctx):\n" + "".join("    " + line + "\n" for line in body.splitlines())
    script = (
        f"import os\nPTAP_LIB = {str(REPO_ROOT / 'ptap-lib')!r}\n"
        "SCRIPT_DIR = os.path.dirname(__file__)\n" + paths + body
    )
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    for tag in ("[path] ", "[distutils] ", "[finders] "):
        assert script_lines(result.stdout, tag) == script_lines(native.stdout, tag), str(result)
    assert script_lines(result.stdout, "[pycparser] ")[0].endswith("pycparser/__init__.py"), str(result)
    assert result.stderr == "", str(result)
