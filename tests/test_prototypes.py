"""C prototypes: include(), declare(), prototype(), and arguments decoded by them.

Targets: tests/targets/{strlens,fpargs,fpflags,records}.c (fpargs.h declares
fpargs' functions, included with -I tests/targets); those of the tests that
take ``arch_target`` are built for 32-bit x86 too, and the tests run on
both (the launcher prepares headers for the target's data model). Every test that
includes a header sets $PTAP_CACHE_DIR to a directory of its own, where the
launcher keeps the preprocessed headers.
"""

import ast
import re

import pytest

from conftest import TARGETS_SOURCE_DIR, script_lines
from function_targets import arch, arch_target, fields_of, ftarget, without_handler_lines  # noqa: F401


@pytest.fixture
def cache_env(tmp_path):
    """The environment of a run that includes headers: a cache of its own."""
    return {"PTAP_CACHE_DIR": str(tmp_path / "cache")}


def cached_files(directory):
    """{relative path: (contents, mtime_ns)} of the files below *directory*."""
    return {
        str(path.relative_to(directory)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*")) if path.is_file()
    }


# ---------------------------------------------------------------------------
# 1. include("string.h"): strlen's argument as a str

STRLEN_SCRIPT = """\
include("string.h")
@function_entry(function_name == "strlen")
def enter(ctx):
    if module(ctx.caller) == "strlens":
        print("[entry]", repr(ctx.args[0]), len(ctx.args), ctx.args.raw(0) != 0)
@function_exit(function_name == "strlen")
def leave(ctx):
    if module(ctx.caller) == "strlens":
        print("[exit]", repr(ctx.args[0]), ctx.retval)
"""

#: strlens' arguments: a space, an empty string and UTF-8 among them.
STRINGS = ["alpha", "two words", "", "café ☕", "x" * 300]


def test_strlen_argument_is_the_string(trace, ftarget, run_native, cache_env):
    native = run_native(ftarget("strlens"), *STRINGS)
    assert native.stdout.splitlines() == [f"{i}: {len(s.encode())}" for i, s in enumerate(STRINGS, 1)]
    result = trace(STRLEN_SCRIPT, ftarget("strlens"), *STRINGS, options=["-q"], env=cache_env)
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == native.stdout.splitlines(), str(result)
    assert script_lines(result.stdout, "[entry] ") == [f"{s!r} 1 True" for s in STRINGS], str(result)
    assert script_lines(result.stdout, "[exit] ") == [f"{s!r} {len(s.encode())}" for s in STRINGS], str(result)


#: A script that needs string.h, and prints what it got from it.
INCLUDE_SCRIPT = 'include("string.h")\nprint("[strlen]", str(prototype("strlen")))\n'


def included_strlen(result):
    """Whether the run of INCLUDE_SCRIPT found strlen's prototype."""
    printed = script_lines(result.stdout, "[strlen] ")
    return result.returncode == 0 and len(printed) == 1 and "strlen(const char *" in printed[0]


def test_second_run_reuses_the_header_cache(trace, ftarget, cache_env, tmp_path):
    script = tmp_path / "include.ptap"
    script.write_text(INCLUDE_SCRIPT)
    first = trace(script, ftarget("strlens"), "alpha", options=["-q"], env=cache_env)
    assert included_strlen(first), str(first)
    cache = tmp_path / "cache"
    before = cached_files(cache)
    assert any(name.startswith("headers/") for name in before), f"no header cached in {cache}\n{first}"
    assert any(name.startswith("scripts/") for name in before), f"no script cached in {cache}\n{first}"
    second = trace(script, ftarget("strlens"), "alpha", options=["-q"], env=cache_env)
    assert second.returncode == 0, str(second)
    assert second.stdout == first.stdout and second.stderr == first.stderr == "", str(second)
    # The header's and the script's entries reused as they were: not written again.
    assert cached_files(cache) == before, str(second)


def test_header_cache_defaults_to_the_home_directory(trace, ftarget, tmp_path, monkeypatch):
    monkeypatch.delenv("PTAP_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = trace(INCLUDE_SCRIPT, ftarget("strlens"), "alpha", options=["-q"])
    assert included_strlen(result), str(result)
    assert cached_files(tmp_path / ".cache" / "processtap"), str(result)


def test_include_banner(trace, ftarget, cache_env):
    script = 'include("string.h")\n'
    result = trace(script, ftarget("strlens"), "alpha", env=cache_env)
    assert result.returncode == 0, str(result)
    counts = [int(m.group(1)) for m in (re.fullmatch(r"\[\*\] Parsing 'string\.h' \((\d+) functions\)", line)
                                        for line in result.stderr.splitlines()) if m]
    assert len(counts) == 1 and counts[0] >= 20, str(result)   # strlen, strcpy, memcpy, ...
    quiet = trace(script, ftarget("strlens"), "alpha", options=["-q"], env=cache_env)
    assert quiet.returncode == 0 and quiet.stderr == "", str(quiet)
    assert quiet.stdout == "1: 5\n", str(quiet)


def test_missing_header_stops_before_the_target_runs(trace, ftarget, cache_env):
    result = trace('include("no_such_header_anywhere.h")\n', ftarget("strlens"), "alpha", env=cache_env)
    assert result.returncode == 2, str(result)
    assert "no_such_header_anywhere.h" in result.stderr and "NameError" not in result.stderr, str(result)
    assert result.stdout == "", str(result)


# ---------------------------------------------------------------------------
# 2. Floating point, narrow and stack arguments: fpargs and fpargs.h

FPARGS_SCRIPT = """\
include("fpargs.h")
NAMES = ["mix", "scale", "wide"]
def args(ctx):
    return [ctx.args[i] for i in range(len(ctx.args))]
@function_entry(function_name >> NAMES)
def enter(ctx):
    print("[entry]", ctx.function_name, repr(args(ctx)))
    if ctx.function_name == "mix":
        print("[raw]", ctx.args.raw(1), ctx.args.raw(7) & 0xff)
@function_exit(function_name >> NAMES)
def leave(ctx):
    print("[exit]", ctx.function_name, repr(args(ctx)), repr(ctx.retval))
"""

#: The arguments fpargs passes (on x86-64; 32-bit x86's long wraps them).
FPARGS_CALLS = {
    "mix": [-2.5, -1234567890123, -42, -300, 4000000000, 77, -8, -7],
    "scale": [1.5, -0.125, 3],
    "wide": [0xfffffffffffffff0, 200, -100],
}

#: The bits of a long on each architecture.
LONG_BITS = {"x86-64": 64, "i686": 32}


def wrapped(value, bits, signed):
    """*value* as a C integer of *bits* bits holds it."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if signed and value >> (bits - 1) else value


def test_arguments_by_prototype(trace, arch, arch_target, run_native, cache_env):
    bits = LONG_BITS[arch]
    calls = dict(FPARGS_CALLS, mix=[*FPARGS_CALLS["mix"][:1], wrapped(FPARGS_CALLS["mix"][1], bits, True), *FPARGS_CALLS["mix"][2:]],
                 wide=[wrapped(FPARGS_CALLS["wide"][0], bits, False), *FPARGS_CALLS["wide"][1:]])
    native = run_native(arch_target("fpargs"))
    results = dict(line.split(" = ") for line in native.stdout.splitlines())
    assert set(results) == set(calls), "the target itself misbehaves"
    result = trace(FPARGS_SCRIPT, arch_target("fpargs"), options=["-q", "-I", TARGETS_SOURCE_DIR], env=cache_env)
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == native.stdout.splitlines(), str(result)
    entries = [(f[0], ast.literal_eval(" ".join(f[1:]))) for f in fields_of(result.stdout, "[entry] ")]
    assert entries == list(calls.items()), str(result)
    # At exit: the arguments as they were at entry, and the return value by
    # its type (double or unsigned long); a double comes back in xmm0 on
    # x86-64 and in x87's st0 on 32-bit x86.
    exits = []
    for fields in fields_of(result.stdout, "[exit] "):
        *args, retval = fields[1:]
        exits.append((fields[0], ast.literal_eval(" ".join(args)), ast.literal_eval(retval)))
    expected = [(name, args, (float if name != "wide" else int)(results[name])) for name, args in calls.items()]
    assert exits == expected, str(result)
    assert [type(e[2]) for e in exits] == [float, float, int], str(result)
    # Raw words: the long as an unsigned word; char g from the stack.
    assert script_lines(result.stdout, "[raw] ") == [f"{wrapped(calls['mix'][1], bits, False)} {256 - 7}"], str(result)


#: Reads fpflags' results by their types, does arithmetic that raises
#: "inexact" in the handler, and changes both results.
FPFLAGS_SCRIPT = """\
declare("long long twice(long long v); double third(double v); long double half(long double v);")
@function_exit(function_name >> ["twice", "third", "half"])
def leave(ctx):
    if ctx.function_name != "half":
        inexact = 1.0 / 3.0 * ctx.args[0]
    print("[exit]", ctx.function_name, repr(ctx.retval))
    ctx.retval = -(1 << 40) - 5 if ctx.function_name == "twice" else ctx.retval * 3
"""


def test_wide_and_floating_results_change_and_the_programs_flags_stay(trace, arch_target, run_native):
    # 32-bit x86 returns a long long in EDX:EAX and a double in st0, both a
    # long double in st0 (whose argument, in memory, is not read); on both
    # the handler's arithmetic (in SSE, or in x87 for i386's CPython) must
    # not leave its exception flags in the program's.
    native = run_native(arch_target("fpflags"))
    assert native.stdout == "twice = 9773436690\nthird = 0.5\nhalf = 0.75\nflags = 0\n", "the target itself misbehaves"
    result = trace(FPFLAGS_SCRIPT, arch_target("fpflags"), options=["-q"])
    assert result.returncode == 0 and "Traceback" not in result.stderr, str(result)
    assert script_lines(result.stdout, "[exit] ") == ["twice 9773436690", "third 0.5", "half 0.75"], str(result)
    assert without_handler_lines(result.stdout) == [f"twice = {-(1 << 40) - 5}", "third = 1.5", "half = 2.25", "flags = 0"], str(result)


def test_changed_header_is_parsed_again(trace, ftarget, cache_env, tmp_path):
    # The cache must not outlive the header it was made from.
    headers = tmp_path / "include"
    headers.mkdir()
    header = headers / "fpargs.h"
    script = """\
include("fpargs.h")
@function_exit(function_name == "wide")
def leave(ctx):
    print("[wide]", [ctx.args[i] for i in range(len(ctx.args))], ctx.retval)
"""
    header.write_text((TARGETS_SOURCE_DIR / "fpargs.h").read_text())
    first = trace(script, ftarget("fpargs"), options=["-q", "-I", headers], env=cache_env)
    assert script_lines(first.stdout, "[wide] ") == [f"[{0xfffffffffffffff0}, 200, -100] 84"], str(first)
    header.write_text("long wide(long u, int b, int s);\n")
    second = trace(script, ftarget("fpargs"), options=["-q", "-I", headers], env=cache_env)
    assert script_lines(second.stdout, "[wide] ") == ["[-16, 200, -100] 84"], str(second)


def test_pointer_arguments_are_addresses(trace, ftarget):
    script = """\
declare("int inspect(const void *r);")
@function_entry(function_name == "inspect")
def enter(ctx):
    r = ctx.args[0]
    print("[inspect]", type(r).__name__, r == ctx.args.raw(0), hex(ctx.mem.u8(r)), len(ctx.args))
"""
    result = trace(script, ftarget("memargs"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[inspect] ") == ["int True 0x12 1"], str(result)


# ---------------------------------------------------------------------------
# 3. declare(): a function that no header declares

RECORDS_SCRIPT = """\
{declare}
@function_entry(function_name == "parse_record")
def enter(ctx):
    print("[entry]", repr(ctx.args[1]), ctx.args.raw(1), ctx.mem.string(ctx.args.raw(0)) if ctx.args[1] else "-")
    print("[arg0]", repr(ctx.args[0]) if isinstance(ctx.args[0], str) else type(ctx.args[0]).__name__)
    try:
        print("[len]", len(ctx.args))
    except MissingPrototype:
        print("[len] MissingPrototype")
@function_exit(function_name == "parse_record")
def leave(ctx):
    print("[exit]", ctx.retval)
"""

DECLARATION = "int parse_record(const char *s, size_t n);"


def test_declare_gives_a_prototype(trace, ftarget):
    script = RECORDS_SCRIPT.format(declare=f"declare({DECLARATION!r})")
    result = trace(script, ftarget("records"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == ["fields: 3", "fields: -1"], str(result)
    record = "id=7;name=ptap;size=42"
    assert script_lines(result.stdout, "[entry] ") == [f"22 22 {record}", "0 0 -"], str(result)
    assert script_lines(result.stdout, "[arg0] ") == [repr(record), "''"], str(result)
    assert script_lines(result.stdout, "[len] ") == ["2", "2"], str(result)
    # The int return value, signed.
    assert script_lines(result.stdout, "[exit] ") == ["3", "-1"], str(result)


def test_without_a_prototype_arguments_are_raw(trace, ftarget):
    script = RECORDS_SCRIPT.format(declare="")
    result = trace(script, ftarget("records"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[arg0] ") == ["int", "int"], str(result)
    assert script_lines(result.stdout, "[len] ") == ["MissingPrototype"] * 2, str(result)
    assert script_lines(result.stdout, "[entry] ") == ["22 22 id=7;name=ptap;size=42", "0 0 -"], str(result)


def normalised(declaration):
    """A C declaration with its spacing and final ';' made canonical."""
    text = " ".join(declaration.replace(";", " ").split())
    return re.sub(r"\s*([*(),])\s*", r"\1", text)


def test_prototype_helper(trace, ftarget, cache_env):
    script = f"""\
include("stdlib.h")
declare({DECLARATION!r})
print("[malloc]", str(prototype("malloc")))
print("[parse_record]", str(prototype("parse_record")))
"""
    result = trace(script, ftarget("records"), options=["-q"], env=cache_env)
    assert result.returncode == 0, str(result)
    (malloc,) = script_lines(result.stdout, "[malloc] ")
    assert re.fullmatch(r"(extern )?void \*malloc ?\(size_t( \w+)?\);?", malloc), str(result)
    (parse_record,) = script_lines(result.stdout, "[parse_record] ")
    assert normalised(parse_record) == normalised(DECLARATION), str(result)


def test_bad_declaration_stops_before_the_target_runs(trace, ftarget):
    result = trace('declare("this is not C at all")\n', ftarget("records"))
    assert result.returncode == 2, str(result)
    assert result.stdout == "", str(result)
    assert "declare" in result.stderr and "NameError" not in result.stderr, str(result)


# ---------------------------------------------------------------------------
# 4. A script of the original ProcessTap

ORIGINAL_SCRIPT = """\
include('string.h')
include('linux_syscalls.h')

@function_entry(function_name == "strlen")
def strlen_entry(ctx):
    print ">>> %s('%s')" % (ctx.function_name, ctx.args[0])

syscalls = ["open", "openat", "read", "write"]

@syscall_entry()
def sys_entry(ctx):
    if ctx.syscall_name not in syscalls:
        return
    print ">>> %s -->" % (ctx.syscall_name),
    try:
        for i in range(len(ctx.args)):
            print ctx.args[i],
        print
    except MissingPrototype:
        print "missing prototype"
"""


def test_original_processtap_script(trace, ftarget, run_native, cache_env):
    native = run_native(ftarget("strlens"), "alpha", "two words")
    result = trace(ORIGINAL_SCRIPT, ftarget("strlens"), "alpha", "two words", env=cache_env)
    assert result.returncode == 0, str(result)
    assert f"[!] {result.script}: Python 2 script translated to Python 3" in result.stderr.splitlines(), str(result)
    assert "Traceback" not in result.stderr, str(result)
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert [line for line in lines if not line.startswith(">>> ")] == native.stdout.splitlines(), str(result)
    strlens = [line for line in lines if line.startswith(">>> strlen(")]
    assert ">>> strlen('alpha')" in strlens and ">>> strlen('two words')" in strlens, str(result)
    assert strlens.index(">>> strlen('alpha')") < strlens.index(">>> strlen('two words')"), str(result)
    # openat(dirfd, path, flags, mode), read(fd, buf, count), write(fd, buf, count).
    assert ">>> openat --> -100 /etc/ld.so.cache 524288 0" in lines, str(result)
    assert any(re.fullmatch(r">>> read --> 3 \d+ 832", line) for line in lines), str(result)
    assert f">>> write --> 1 {native.stdout.encode()!r} {len(native.stdout)}" in lines, str(result)
    assert "missing prototype" not in lines, str(result)
