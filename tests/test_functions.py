"""Function probes: function_entry and function_exit, their predicates and ctx.

Targets: tests/targets/{malloc_sizes,password,recurse,longjmp_out,workers,
dlopen_plugin,secret,memargs}.c, cxx_throw.cpp and plugin.c (libplugin.so).
Handler output is unbuffered while a C target's stdout (a pipe) is flushed at
exit, so tests compare the order of handler lines among themselves only.
Tests that take ``arch_target`` run twice: on x86-64 programs and on the
same programs built with gcc -m32 (function_targets.ARCHES).
"""

import ast
import math
import re
import subprocess

import pytest

from conftest import HELLO_OUTPUT, script_lines
from function_targets import arch, arch_target, fields_of, ftarget, nm_address, without_handler_lines  # noqa: F401

# ---------------------------------------------------------------------------
# 1. The malloctrace example of the contract

#: The sizes malloc_sizes passes to malloc, in order (see malloc_sizes.c).
MALLOC_SIZES = [17, 1000, 4242, 1, 65536, 333333, 24, 4096]

MALLOCTRACE_PY3 = """\
#!/usr/bin/env processtap
app = {}

@module_load(module_name == "malloc_sizes")
def on_app(ctx):
    app["range"] = (ctx.module_base, ctx.module_end)

@function_entry(function_name == "malloc")
def malloc_entry(ctx):
    low, high = app["range"]
    if low <= ctx.caller < high:
        print(">>> %s called from %.8x with argument %u"
              % (ctx.function_name, ctx.caller, ctx.args[0]))
    else:
        print("[other] %s %s" % (ctx.module, ctx.function_name))
"""

MALLOCTRACE_PY2 = """\
#!/usr/bin/env processtap
app = {}

@module_load(module_name == "malloc_sizes")
def on_app(ctx):
    app["range"] = (ctx.module_base, ctx.module_end)

@function_entry(function_name == "malloc")
def malloc_entry(ctx):
    low, high = app["range"]
    if low <= ctx.caller < high:
        print ">>> %s called from %.8x with argument %u" % (ctx.function_name, ctx.caller, ctx.args[0])
    else:
        print "[other] %s %s" % (ctx.module, ctx.function_name)
"""


@pytest.mark.parametrize("script", [MALLOCTRACE_PY3, MALLOCTRACE_PY2], ids=["python3", "python2"])
def test_malloctrace_sees_the_targets_malloc_calls(trace, arch_target, run_native, script):
    native = run_native(arch_target("malloc_sizes"))
    printed = [int(size) for size in script_lines(native.stdout, "malloc ")]
    assert native.returncode == 0 and printed == MALLOC_SIZES, "the test target itself misbehaves"

    result = trace(script, arch_target("malloc_sizes"), options=["-q"])
    assert result.returncode == 0, str(result)
    calls = [line.split() for line in script_lines(result.stdout, ">>> ")]
    # "malloc called from 5581c0a4b1d5 with argument 17"
    assert all(len(c) == 7 and c[0] == "malloc" and c[1:3] == ["called", "from"] for c in calls), str(result)
    sizes = [int(c[6]) for c in calls]
    assert sizes == printed, str(result)
    # One call site, in a loop: one return address.
    assert len({c[3] for c in calls}) == 1, str(result)
    # stdio's own buffer is malloc'ed by libc: those calls are there too.
    others = script_lines(result.stdout, "[other] ")
    assert others and set(others) == {"libc.so.6 malloc"}, str(result)
    # The target's own output is unchanged.
    assert without_handler_lines(result.stdout, (">>> ", "[other] ")) == native.stdout.splitlines(), str(result)
    translated = any("Python 2 script translated" in line for line in result.stderr.splitlines())
    assert translated == (script is MALLOCTRACE_PY2), str(result)


# ---------------------------------------------------------------------------
# 2. Changing a return value

OBSERVE_PASSWORD = """\
@function_exit(function_name == "check_password")
def checked(ctx):
    print("[checked]", ctx.mem.string(ctx.args[0]), ctx.retval, ctx.unwound)
"""

FORCE_PASSWORD = """\
@function_exit(function_name == "check_password")
def checked(ctx):
    print("[forced]", ctx.retval)
    ctx.retval = {verdict}
"""


@pytest.mark.parametrize(
    "password, verdict, native_line, forced_line, forced_status",
    [
        ("letmein", 1, "access denied", "access granted", 0),
        ("swordfish", 0, "access granted", "access denied", 1),
    ],
    ids=["grant", "deny"],
)
def test_exit_handler_changes_the_return_value(trace, arch_target, run_native, password, verdict,
                                               native_line, forced_line, forced_status):
    native = run_native(arch_target("password"), password)
    assert native.stdout == native_line + "\n", "the test target itself misbehaves"

    observed = trace(OBSERVE_PASSWORD, arch_target("password"), password, options=["-q"])
    assert observed.returncode == native.returncode, str(observed)
    assert script_lines(observed.stdout, "[checked] ") == [f"{password} {1 - verdict} False"], str(observed)
    assert without_handler_lines(observed.stdout) == [native_line], str(observed)

    forced = trace(FORCE_PASSWORD.format(verdict=verdict), arch_target("password"), password, options=["-q"])
    assert script_lines(forced.stdout, "[forced] ") == [str(1 - verdict)], str(forced)
    assert without_handler_lines(forced.stdout) == [forced_line], str(forced)
    assert forced.returncode == forced_status, str(forced)


def test_function_context_fields(trace, arch_target):
    offset = nm_address(arch_target("password"), "check_password")
    main = nm_address(arch_target("password"), "main")
    script = """\
import os
base = {}
@module_load(module_name == "password")
def loaded(ctx):
    base["app"] = ctx.module_base
@function_entry(function_name == "check_password")
@function_exit(function_name == "check_password")
def both(ctx):
    print("[ctx]", ctx.event, ctx.pid == os.getpid(), ctx.tid == os.getpid(), ctx.function - base["app"],
          ctx.function_name, ctx.module, ctx.pc == ctx.function, ctx.caller - base["app"])
"""
    result = trace(script, arch_target("password"), "nope", options=["-q"])
    assert result.returncode == 1, str(result)
    events = fields_of(result.stdout, "[ctx] ")
    assert [e[0] for e in events] == ["function_entry", "function_exit"], str(result)
    for event, same_pid, initial_thread, function, name, module, pc_is_function, caller in events:
        assert (same_pid, initial_thread) == ("True", "True"), str(result)
        assert int(function) == offset, str(result)
        assert (name, module) == ("check_password", "password"), str(result)
        # The caller is the return address of the call in main.
        assert main < int(caller) < main + 0x200, str(result)
    assert events[0][6] == "True", "at entry, ctx.pc is the function's first instruction\n" + str(result)
    assert events[0][7] == events[1][7], str(result)


# ---------------------------------------------------------------------------
# 3. Recursion

RECURSION_SCRIPT = """\
depth = [0]
deepest = [0]
@function_entry(function_name == "factorial")
def enter(ctx):
    depth[0] += 1
    deepest[0] = max(deepest[0], depth[0])
    print("[entry]", ctx.args[0], depth[0], ctx.caller)
@function_exit(function_name == "factorial")
def leave(ctx):
    print("[exit]", ctx.args[0], depth[0], ctx.retval, ctx.unwound)
    depth[0] -= 1
@process_exit
def done(ctx):
    print("[deepest]", deepest[0], depth[0])
"""


def test_recursion_entries_and_exits_pair_up(trace, ftarget):
    n = 12
    result = trace(RECURSION_SCRIPT, ftarget("recurse"), str(n), options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == [f"factorial({n}) = {math.factorial(n)}"], str(result)
    events = [line.split() for line in result.stdout.splitlines() if line.startswith(("[entry]", "[exit]"))]
    entries = [e for e in events if e[0] == "[entry]"]
    exits = [e for e in events if e[0] == "[exit]"]
    assert len(entries) == len(exits) == n, str(result)
    assert [int(e[1]) for e in entries] == list(range(n, 0, -1)), str(result)
    assert script_lines(result.stdout, "[deepest] ") == [f"{n} 0"], str(result)
    # Replay: each exit closes the innermost open call, with its arguments.
    stack = []
    for event in events:
        if event[0] == "[entry]":
            stack.append(int(event[1]))
            assert int(event[2]) == len(stack), str(result)
        else:
            assert stack, f"exit without an open call: {event}\n{result}"
            arg = stack.pop()
            assert int(event[1]) == arg, f"exit of factorial({event[1]}) closes factorial({arg})\n{result}"
            assert int(event[3]) == math.factorial(arg), str(result)
            assert event[4] == "False", str(result)
    assert stack == [], str(result)
    # The outermost call comes from main, the others from one site in factorial.
    callers = [int(e[3]) for e in entries]
    assert len(set(callers[1:])) == 1 and callers[0] != callers[1], str(result)


# ---------------------------------------------------------------------------
# 4, 5. Calls left by longjmp or by a C++ exception

UNWIND_SCRIPT = """\
@function_entry(function_name >> {names!r})
def enter(ctx):
    print("[entry]", ctx.function_name, ctx.args[0], ctx.args[1])
@function_exit(function_name >> {names!r})
def leave(ctx):
    if ctx.unwound:
        print("[exit]", ctx.function_name, ctx.args[0], ctx.args[1], "unwound")
    else:
        print("[exit]", ctx.function_name, ctx.args[0], ctx.args[1], "returned", ctx.retval)
"""

#: target, (outer, inner) function names, rounds, the value each returns when
#: it returns: (outer, inner) of round r.
UNWIND_CASES = {
    "longjmp": ("longjmp_out", ("outer", "inner"), 5, lambda r: (r * 10 + 1, r * 10)),
    "c++": ("cxx_throw", ("middle", "thrower"), 4, lambda r: (r * 10 + 6, r * 10)),
}


def unwind_events(result):
    return [line.split() for line in result.stdout.splitlines() if line.startswith(("[entry]", "[exit]"))]


@pytest.mark.parametrize("case", UNWIND_CASES, ids=list(UNWIND_CASES))
def test_unwound_calls_get_one_exit_each(trace, ftarget, run_native, case):
    name, (outer, inner), rounds, returns = UNWIND_CASES[case]
    native = run_native(ftarget(name))
    assert native.returncode == 0 and native.stdout.splitlines()[-1] == "done", "the test target misbehaves"
    result = trace(UNWIND_SCRIPT.format(names=[outer, inner]), ftarget(name), options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == native.stdout.splitlines(), str(result)
    events = unwind_events(result)
    entries = sorted((e[1], int(e[2])) for e in events if e[0] == "[entry]")
    expected_calls = sorted((f, r) for r in range(rounds) for f in (outer, inner))
    assert entries == expected_calls, str(result)
    exits = {}
    for e in events:
        if e[0] == "[exit]":
            exits.setdefault((e[1], int(e[2])), []).append(e[3:])
    for function, r in expected_calls:
        got = exits.get((function, r), [])
        assert len(got) == 1, f"{function}(round {r}) has {len(got)} exit events\n{result}"
        ((_jump, *rest),) = got
        if r % 2:
            assert rest == ["unwound"], f"{function}(round {r}) was left by unwinding\n{result}"
        else:
            value = returns(r)[0 if function == outer else 1]
            assert rest == ["returned", str(value)], f"{function}(round {r})\n{result}"
    assert len([e for e in events if e[0] == "[exit]"]) == len(expected_calls), str(result)


@pytest.mark.parametrize("case", UNWIND_CASES, ids=list(UNWIND_CASES))
def test_unwound_exits_come_in_stack_order(trace, ftarget, case):
    # A script that keeps a stack of open calls (as test 3 does) must see
    # each exit close the innermost open call: the exits of unwound calls
    # come innermost first, before any later call's events.
    name, (outer, inner), rounds, returns = UNWIND_CASES[case]
    result = trace(UNWIND_SCRIPT.format(names=[outer, inner]), ftarget(name), options=["-q"])
    assert result.returncode == 0, str(result)
    stack = []
    for event in unwind_events(result):
        call = (event[1], event[2])
        if event[0] == "[entry]":
            stack.append(call)
        else:
            assert stack and stack[-1] == call, (
                f"exit of {call} while the open calls are {stack}\n{result}"
            )
            stack.pop()
    assert stack == [], f"calls never closed: {stack}\n{result}"


# ---------------------------------------------------------------------------
# 6. Threads

THREADS_SCRIPT = """\
import os
entries = {}
exits = {}
first_args = {}
bad_retvals = []
@function_entry(function_name == "work")
def enter(ctx):
    entries[ctx.tid] = entries.get(ctx.tid, 0) + 1
    first_args.setdefault(ctx.tid, set()).add(ctx.args[0])
@function_exit(function_name == "work")
def leave(ctx):
    exits[ctx.tid] = exits.get(ctx.tid, 0) + 1
    if ctx.retval != ctx.args[0] * 1000003 + ctx.args[1]:
        bad_retvals.append((ctx.tid, ctx.args[0], ctx.args[1], ctx.retval))
@process_exit
def done(ctx):
    for tid in sorted(set(entries) | set(exits)):
        print("[tid]", tid, entries.get(tid, 0), exits.get(tid, 0), sorted(first_args.get(tid, ())))
    print("[pid]", os.getpid())
    print("[bad]", bad_retvals[:5])
"""


def test_threads_each_call_is_seen_once(trace, arch_target, run_native):
    threads, calls = 8, 10_000
    native = run_native(arch_target("workers"), str(threads), str(calls), "0")
    assert native.returncode == 0, "the test target itself misbehaves"
    result = trace(THREADS_SCRIPT, arch_target("workers"), str(threads), str(calls), "0", options=["-q"], timeout=120)
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == native.stdout.splitlines(), str(result)
    rows = [line.split(None, 3) for line in script_lines(result.stdout, "[tid] ")]
    (pid,) = script_lines(result.stdout, "[pid] ")
    assert len(rows) == threads, f"{len(rows)} distinct tids, not {threads}\n{result}"
    assert str(pid) not in [r[0] for r in rows], "the initial thread called work()\n" + str(result)
    for tid, entered, exited, args in rows:
        assert (int(entered), int(exited)) == (calls, calls), f"thread {tid}\n{result}"
    # Each thread passes its own number: the tids are the calls' own threads.
    assert sorted(r[3] for r in rows) == sorted(f"[{t}]" for t in range(1, threads + 1)), str(result)
    assert script_lines(result.stdout, "[bad] ") == ["[]"], str(result)


# ---------------------------------------------------------------------------
# 7. A library loaded by dlopen

PLUGIN_SCRIPT = """\
base = {{}}
@module_load(module_name == "libplugin.so")
def loaded(ctx):
    base["plugin"] = ctx.module_base
@function_entry({predicate})
def enter(ctx):
    offset = ctx.function - base["plugin"] if ctx.module == "libplugin.so" else None
    print("[entry]", ctx.module, ctx.function_name, ctx.args[0], ctx.args[1], offset)
@function_exit({predicate})
def leave(ctx):
    print("[exit]", ctx.module, ctx.function_name, ctx.args[0], ctx.args[1], ctx.retval)
"""


@pytest.mark.parametrize(
    "predicate, modules",
    [
        ('function_name == "plugin_compute"', ["libplugin.so", "dlopen_plugin"]),
        ('(function_name == "plugin_compute") & (module_name == "libplugin.so")', ["libplugin.so"]),
        ('(function_name == "plugin_compute") & (module_name != "libplugin.so")', ["dlopen_plugin"]),
        ('(function_name == "plugin_compute") & (module_name == "libc.so.6")', []),
    ],
    ids=["any-module", "plugin-only", "not-plugin", "libc"],
)
def test_function_in_a_dlopened_library(trace, ftarget, predicate, modules):
    library = ftarget("libplugin.so")
    offset = nm_address(library, "plugin_compute")
    result = trace(PLUGIN_SCRIPT.format(predicate=predicate), ftarget("dlopen_plugin"), library, options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == ["plugin: 49", "local: 1005"], str(result)
    calls = {"libplugin.so": ("6", "7", "49"), "dlopen_plugin": ("2", "3", "1005")}
    entries = fields_of(result.stdout, "[entry] ")
    exits = fields_of(result.stdout, "[exit] ")
    # The plugin's function is called first.
    expected_entries = [
        [m, "plugin_compute", *calls[m][:2], str(offset) if m == "libplugin.so" else "None"] for m in modules
    ]
    assert entries == expected_entries, str(result)
    assert exits == [[m, "plugin_compute", *calls[m]] for m in modules], str(result)


def test_every_function_of_a_dlopened_library(trace, ftarget):
    script = """\
@function_entry(module_name == "libplugin.so")
def enter(ctx):
    print("[entry]", ctx.module, ctx.function_name)
"""
    library = ftarget("libplugin.so")
    result = trace(script, ftarget("dlopen_plugin"), library, options=["-q"])
    assert result.returncode == 0, str(result)
    entries = fields_of(result.stdout, "[entry] ")
    assert ["libplugin.so", "plugin_compute"] in entries, str(result)
    assert all(e[0] == "libplugin.so" for e in entries), str(result)
    assert without_handler_lines(result.stdout) == ["plugin: 49", "local: 1005"], str(result)


# ---------------------------------------------------------------------------
# 8. Stripped binaries: probes on addresses

ADDRESS_SCRIPT = """\
@function_entry(function_address == {address!r})
def enter(ctx):
    print("[entry]", ctx.function_name, ctx.module, ctx.args[0], ctx.args[1], ctx.function == ctx.pc)
@function_exit(function_address == {address!r})
def leave(ctx):
    print("[exit]", ctx.function_name, ctx.args[0], ctx.args[1], ctx.retval)
"""


def text_section(path):
    """(address, contents) of the .text section of the ELF file at *path*."""
    headers = subprocess.run(["objdump", "-h", path], stdout=subprocess.PIPE, text=True, check=True).stdout
    (vma,) = [line.split()[3] for line in headers.splitlines() if line.split()[1:2] == [".text"]]
    contents = subprocess.run(
        ["objcopy", "-O", "binary", "-j", ".text", path, "/dev/stdout"], stdout=subprocess.PIPE, check=True
    ).stdout
    return int(vma, 16), contents


def first_load_address(path):
    """The virtual address of the first PT_LOAD segment of the ELF at *path*
    (a non-PIE's load base: 0x400000 on x86-64, 0x8048000 on i386)."""
    headers = subprocess.run(["readelf", "-lW", path], stdout=subprocess.PIPE, check=True, text=True).stdout
    return int(re.search(r"^\s*LOAD\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)", headers, re.M).group(1), 16)


@pytest.fixture
def secret_offsets(arch_target):
    """(secret_function's nm address in the PIE build, in the non-PIE build,
    the non-PIE's load base), checked to be where the stripped copies have
    the same code."""
    for full, stripped in (("secret", "secret_stripped"), ("secret_nopie", "secret_nopie_stripped")):
        listed = subprocess.run(["nm", arch_target(stripped)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert "no symbols" in listed.stdout, f"{stripped} is not stripped"
        assert text_section(arch_target(full)) == text_section(arch_target(stripped)), f"{full} and {stripped} differ"
    return (nm_address(arch_target("secret"), "secret_function"), nm_address(arch_target("secret_nopie"), "secret_function"),
            first_load_address(arch_target("secret_nopie")))


@pytest.mark.parametrize(
    "name, form, function_name",
    [
        ("secret_stripped", "app", None),
        ("secret_stripped", "secret_stripped", None),
        ("secret", "app", "secret_function"),
        ("secret_nopie_stripped", "app", None),
        ("secret_nopie_stripped", "absolute", None),
    ],
    ids=["stripped-app", "stripped-filename", "symbols-app", "nopie-stripped-app", "nopie-stripped-absolute"],
)
def test_probe_on_a_function_address(trace, arch_target, secret_offsets, name, form, function_name):
    pie_offset, nopie_address, nopie_base = secret_offsets
    if form == "absolute":
        address = nopie_address
    else:
        # Module-relative: the offset from where the module is loaded (for
        # the non-PIE, its first segment's address).
        offset = pie_offset if "nopie" not in name else nopie_address - nopie_base
        address = f"{form}+{offset:#x}"
    result = trace(ADDRESS_SCRIPT.format(address=address), arch_target(name), "11", "5", options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == ["secret(11, 5) = 38"], str(result)
    assert fields_of(result.stdout, "[entry] ") == [[str(function_name), name, "11", "5", "True"]], str(result)
    assert fields_of(result.stdout, "[exit] ") == [[str(function_name), "11", "5", "38"]], str(result)


def test_address_probes_that_match_nothing_never_fire(trace, arch_target, secret_offsets):
    pie_offset, nopie_address, _ = secret_offsets
    script = "\n".join(
        ADDRESS_SCRIPT.replace("enter", f"enter{i}").replace("leave", f"leave{i}").format(address=address)
        for i, address in enumerate([
            "app+0x7ffff000",                     # beyond the executable
            f"no_such_module.so+{pie_offset:#x}",  # another module's name
            f"libplugin.so+{pie_offset:#x}",       # a module that is never loaded
            nopie_address,                        # the non-PIE's address, in a PIE
        ])
    )
    result = trace(script, arch_target("secret_stripped"), "11", "5", options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout.splitlines() == ["secret(11, 5) = 38"], str(result)


# ---------------------------------------------------------------------------
# 9. ctx.mem

MEMORY_SCRIPT = """\
faults = []
def fault(what, action):
    try:
        action()
    except MemoryFault:
        faults.append(what + ":fault")
    except Exception as e:
        faults.append(what + ":" + type(e).__name__)
    else:
        faults.append(what + ":none")

@function_entry(function_name == "greet")
def greet(ctx):
    print("[greet]", repr(ctx.mem.string(ctx.args[0])), repr(ctx.mem.string(ctx.args[0], max=3)))
    if not faults:
        for address in (0, 0xdead00000000):
            fault("string", lambda: ctx.mem.string(address))
            fault("byte", lambda: ctx.mem[address])
            fault("slice", lambda: ctx.mem[address:address + 4])
            fault("read", lambda: ctx.mem.read(address, 4))
            fault("u64", lambda: ctx.mem.u64(address))
            fault("write", lambda: ctx.mem.write(address, b"x"))
        print("[faults]", " ".join(faults))

@function_entry(function_name == "inspect")
def inspect(ctx):
    r = ctx.args[0]
    m = ctx.mem
    print("[record]", m.u8(r), m.u16(r + 2), m.u32(r + 4), m.u64(r + 8),
          m.i8(r + 16), m.i16(r + 18), m.i32(r + 20), m.i64(r + 24), m.string(m.ptr(r + 32)))
    print("[bytes]", m[r], m[r + 2:r + 4].hex(), m.read(r + 4, 4).hex())

@function_entry(function_name == "show")
def show(ctx):
    buffer = ctx.args[0]
    print("[show]", ctx.mem.string(buffer))
    ctx.mem.write(buffer, b"patched text\\0")
    ctx.mem[buffer:buffer + 1] = b"P"
"""


def test_memory_reads_writes_and_faults(trace, ftarget, run_native):
    native = run_native(ftarget("memargs"))
    assert native.returncode == 0, "the test target itself misbehaves"
    result = trace(MEMORY_SCRIPT, ftarget("memargs"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[greet] ") == ["'world' 'wor'", "b'caf\\xe9' 'caf'"], str(result)
    faults = script_lines(result.stdout, "[faults] ")
    assert faults == [" ".join(f"{what}:fault" for what in ("string", "byte", "slice", "read", "u64", "write") * 2)], (
        str(result)
    )
    assert script_lines(result.stdout, "[record] ") == [
        f"{0x12} {0x3456} {0x789ABCDE} {0x0123456789ABCDEF} -2 -300 -70000 -5000000000 pointed-to"
    ], str(result)
    assert script_lines(result.stdout, "[bytes] ") == ["18 5634 debc9a78"], str(result)
    assert script_lines(result.stdout, "[show] ") == ["original text"], str(result)
    # The target printed the patched buffer, and is otherwise unchanged.
    expected = native.stdout.replace("show: original text", "show: Patched text")
    assert without_handler_lines(result.stdout) == expected.splitlines(), str(result)
    assert "Traceback" not in result.stderr, str(result)


def test_uncaught_memory_fault_leaves_the_target_unharmed(trace, ftarget, run_native):
    script = """\
@function_entry(function_name == "greet")
def greet(ctx):
    print("[greet]", ctx.mem.string(ctx.args[0]))
    ctx.mem[0]
"""
    native = run_native(ftarget("memargs"))
    result = trace(script, ftarget("memargs"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == native.stdout.splitlines(), str(result)
    # The handler ran for both calls, and raised in both.
    assert script_lines(result.stdout, "[greet] ") == ["world", "b'caf\\xe9'"], str(result)
    stderr = result.stderr
    assert stderr.count("Traceback (most recent call last):") == 1, str(result)
    assert f'File "{result.script}", line 4, in greet' in stderr, str(result)
    assert any(line.startswith("ptap.errors.MemoryFault") or line.startswith("MemoryFault")
               for line in stderr.splitlines()), str(result)
    assert ("[!] handler greet (function_entry) raised 2 exception(s); the first is shown above"
            in stderr.splitlines()), str(result)


# ---------------------------------------------------------------------------
# 10. Changing an argument

ARGS_SCRIPT = """\
@function_entry(function_name == "show_number")
def enter(ctx):
    n = ctx.args[0]
    print("[entry]", n, ctx.args.raw(0))
    try:
        len(ctx.args)
    except MissingPrototype:
        print("[len] MissingPrototype")
    ctx.args[0] = {1: 42, 2: -7}.get(n, n)
"""


def test_entry_handler_changes_an_argument(trace, ftarget, run_native):
    native = run_native(ftarget("memargs"))
    assert script_lines(native.stdout, "number: ") == ["1", "2", "-3"], "the test target itself misbehaves"
    result = trace(ARGS_SCRIPT, ftarget("memargs"), options=["-q"])
    assert result.returncode == 0, str(result)
    # Raw words: -3 is the unsigned 64-bit word.
    assert script_lines(result.stdout, "[entry] ") == ["1 1", "2 2", f"{2**64 - 3} {2**64 - 3}"], str(result)
    assert script_lines(result.stdout, "[len] ") == ["MissingPrototype"] * 3, str(result)
    assert script_lines(result.stdout, "number: ") == ["42", "-7", "-3"], str(result)


# ---------------------------------------------------------------------------
# 11. A real program: /bin/ls

LS_SCRIPT = """\
counts = {"malloc": 0, "opendir": 0}
@function_entry(function_name == "malloc")
def on_malloc(ctx):
    counts["malloc"] += 1
@function_entry(function_name == "opendir")
def on_opendir(ctx):
    counts["opendir"] += 1
    print("[opendir]", ctx.mem.string(ctx.args[0]), ctx.module)
@process_exit
def done(ctx):
    print("[counts]", counts["malloc"], counts["opendir"])
"""


def test_ls_runs_unchanged_under_function_probes(trace, run_native):
    native = run_native("/bin/ls", "-la", "/usr")
    result = trace(LS_SCRIPT, "/bin/ls", "-la", "/usr", options=["-q"])
    assert result.returncode == native.returncode == 0, str(result)
    assert without_handler_lines(result.stdout, ("[opendir] ", "[counts] ")) == native.stdout.splitlines(), str(result)
    assert result.stderr == native.stderr, str(result)
    assert script_lines(result.stdout, "[opendir] ") == ["/usr libc.so.6"], str(result)
    ((malloc_count, opendir_count),) = fields_of(result.stdout, "[counts] ")
    assert int(malloc_count) > 0 and int(opendir_count) == 1, str(result)


# ---------------------------------------------------------------------------
# 11b. The target's 256-bit vector registers survive every kind of probe
# (the client clears their upper halves while it runs: DynamoRIO must have
# saved them).

VECTORS_SCRIPT = """\
counts = {}
def count(ctx):
    counts[ctx.event] = counts.get(ctx.event, 0) + 1
for probe in (function_entry(function_name >> ["sum4", "twice"]),
              function_exit(function_name >> ["sum4", "twice"]),
              syscall_entry(syscall_name == "getppid"),
              syscall_exit(syscall_name == "getppid")):
    probe(count)
@process_exit
def done(ctx):
    print("[counts]", sorted(counts.items()))
"""


def cpu_has_avx():
    with open("/proc/cpuinfo") as cpuinfo:
        return any(line.startswith("flags") and " avx " in line for line in cpuinfo)


@pytest.mark.skipif(not cpu_has_avx(), reason="the target needs AVX")
def test_vector_registers_survive_probes(trace, ftarget, run_native):
    native = run_native(ftarget("vectors"))
    assert native.returncode == 0 and native.stdout == "bad=0\n", "the test target itself misbehaves"
    result = trace(VECTORS_SCRIPT, ftarget("vectors"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout, ("[counts] ",)) == ["bad=0"], str(result)
    assert script_lines(result.stdout, "[counts] ") == [
        "[('function_entry', 200), ('function_exit', 200), ('syscall_entry', 100), ('syscall_exit', 100)]"
    ], str(result)


# ---------------------------------------------------------------------------
# 12. Predicates on thread ids and function names

PREDICATE_SCRIPT = """\
import os
PID = os.getpid()   # the script runs in the target: its pid, and its initial thread's tid
@function_entry({predicate})
def enter(ctx):
    print("[entry]", ctx.function_name, ctx.args[0], "initial" if ctx.tid == PID else "other",
          ctx.pid == PID)
"""


def count_calls(result):
    """{(name, arg0, thread kind): count} of the [entry] lines."""
    counts = {}
    for name, arg, kind, same_pid in fields_of(result.stdout, "[entry] "):
        assert same_pid == "True", str(result)
        counts[(name, int(arg), kind)] = counts.get((name, int(arg), kind), 0) + 1
    return counts


@pytest.mark.parametrize(
    "predicate, expected",
    [
        ('(function_name == "work") & (thread_id == PID)', {("work", 0, "initial"): 30}),
        ('(function_name == "work") & (thread_id != PID)',
         {("work", 1, "other"): 50, ("work", 2, "other"): 50}),
        ('(function_name == "work") & ~(thread_id == PID)',
         {("work", 1, "other"): 50, ("work", 2, "other"): 50}),
        ('(function_name == "work") & (process_id == PID)',
         {("work", 0, "initial"): 30, ("work", 1, "other"): 50, ("work", 2, "other"): 50}),
        ('(function_name == "work") & (process_id != PID)', {}),
        ('function_name.like("work*")',
         {("work", 0, "initial"): 30, ("work", 1, "other"): 50, ("work", 2, "other"): 50,
          ("worker", 4, "initial"): 1}),
        ('function_name >> ["alpha", "beta"]', {("alpha", 1, "initial"): 1, ("beta", 2, "initial"): 1}),
        ('(function_name == "alpha") | (function_name == "delta")',
         {("alpha", 1, "initial"): 1, ("delta", 3, "initial"): 1}),
        ('function_name.like("?or*") & (module_name == "workers") & (thread_id == PID)',
         {("work", 0, "initial"): 30, ("worker", 4, "initial"): 1, ("wor", 5, "initial"): 1}),
    ],
    ids=["initial-thread", "other-threads", "not-initial", "pid", "other-pid", "like", "one-of", "or",
         "like-module-thread"],
)
def test_function_predicates(trace, ftarget, run_native, predicate, expected):
    native = run_native(ftarget("workers"), "2", "50", "30")
    result = trace(PREDICATE_SCRIPT.format(predicate=predicate), ftarget("workers"), "2", "50", "30", options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == native.stdout.splitlines(), str(result)
    assert count_calls(result) == expected, str(result)


def test_several_probes_on_one_function(trace, ftarget):
    # Two entry probes and two exit probes on one function, with different
    # predicates: each fires when its own predicate holds, in the order the
    # script declared them.
    script = """\
import os
PID = os.getpid()
@function_entry(function_name == "work")
def first(ctx):
    print("[first]", ctx.args[0])
@function_entry((function_name == "work") & (thread_id != PID))
def second(ctx):
    print("[second]", ctx.args[0])
@function_exit(function_name == "work")
def third(ctx):
    print("[third]", ctx.args[0], ctx.retval)
@function_exit(function_name.like("wor*") & (thread_id == PID))
def fourth(ctx):
    print("[fourth]", ctx.function_name, ctx.args[0], ctx.retval)
"""
    result = trace(script, ftarget("workers"), "1", "3", "2", options=["-q"])
    assert result.returncode == 0, str(result)
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    # Thread 1's calls: first and second at entry, third at exit.
    thread = [line for line in lines if line.split()[1] == "1"]
    assert thread == [
        line for i in (0, 1, 2) for line in ("[first] 1", "[second] 1", f"[third] 1 {1000003 + i}")
    ], str(result)
    # The initial thread's calls of work: first at entry; third, then fourth at exit.
    initial = [line for line in lines if line.split()[1] == "0" or line.split()[2:3] == ["0"]]
    assert initial == [
        line for i in (0, 1) for line in ("[first] 0", f"[third] 0 {i}", f"[fourth] work 0 {i}")
    ], str(result)
    assert sorted(line for line in lines if line.startswith("[fourth]") and " work " not in line) == [
        "[fourth] wor 5 55", "[fourth] worker 4 44"
    ], str(result)


# ---------------------------------------------------------------------------
# 13. The banner

def test_banner_lists_function_probes(trace, ftarget):
    script = """\
@function_entry(function_name == "malloc")
def malloc_entry(ctx):
    pass
@function_exit(function_name == "check_password")
def checked(ctx):
    pass
"""
    result = trace(script, ftarget("password"), "x")
    assert result.returncode == 1, str(result)
    lines = result.stderr.splitlines()
    for expected in (
        "    [*] function.entry",
        "        [+] (function.name == @malloc) malloc_entry",
        "    [*] function.exit",
        "        [+] (function.name == @check_password) checked",
    ):
        assert expected in lines, f"no line {expected!r} in the banner\n{result}"
    assert lines.index("    [*] function.entry") + 1 == lines.index("        [+] (function.name == @malloc) malloc_entry")
    assert lines.index("    [*] function.exit") + 1 == lines.index(
        "        [+] (function.name == @check_password) checked"
    )


# ---------------------------------------------------------------------------
# 14. A function no module has

def test_probe_on_a_missing_function_never_fires(trace, target):
    script = """\
@function_entry(function_name == "no_such_function_xyz")
def enter(ctx):
    print("[entry]", ctx.function_name)
@function_exit((function_name == "malloc") & (module_name == "no_such_module.so"))
def leave(ctx):
    print("[exit]", ctx.function_name)
@process_exit
def done(ctx):
    print("[exit-code]", ctx.exit_code)
"""
    result = trace(script, target("hello"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert result.stdout == "[exit-code] 0\n" + HELLO_OUTPUT or result.stdout == HELLO_OUTPUT + "[exit-code] 0\n", (
        str(result)
    )
    # Each is warned about at the end, in the predicate's words.
    assert result.stderr.splitlines() == [
        "[!] probe enter never matched: no function named 'no_such_function_xyz'",
        '[!] probe leave never matched: no function matched ((function.name == @malloc) & (module.name == "no_such_module.so"))',
    ], str(result)


def test_unwound_call_has_no_return_value(trace, ftarget):
    # An unwound call returned nothing: ctx.retval says so instead of
    # inventing a value; calls that returned have theirs.
    script = """
@function_exit(function_name == "inner")
def on_exit(ctx):
    try:
        print("[exit]", ctx.args[0], ctx.unwound, ctx.retval)
    except AttributeError as error:
        print("[exit]", ctx.args[0], ctx.unwound, "error:", error)
"""
    result = trace(script, ftarget("longjmp_out"), options=["-q"])
    assert result.returncode == 0, str(result)
    exits = {fields[0]: fields[1:] for fields in fields_of(result.stdout, "[exit] ")}
    assert exits["0"] == ["False", "0"], str(result)
    assert exits["2"] == ["False", "20"], str(result)
    assert exits["1"][0] == "True", str(result)
    assert "unwound" in " ".join(exits["1"][1:]) and "returned nothing" in result.stdout, str(result)


def test_library_loaded_and_unloaded_again_is_probed_each_time(trace, ftarget, run_native):
    # dlclose unwraps the library's functions; the next dlopen (often at
    # another address) wraps them again.
    library = ftarget("libplugin.so")
    command = [ftarget("dlopen_plugin"), library, "3"]
    script = """
@function_exit((function_name == "plugin_compute") & (module_name == "libplugin.so"))
def on_exit(ctx):
    print("[plugin]", ctx.args[0], ctx.args[1], ctx.retval)
@module_load(module_name == "libplugin.so")
def on_load(ctx):
    print("[load]", ctx.module)
"""
    native = run_native(*command)
    result = trace(script, *command, options=["-q"])
    assert result.returncode == native.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == native.stdout.splitlines(), str(result)
    assert fields_of(result.stdout, "[plugin] ") == [["6", "7", "49"], ["7", "7", "56"], ["8", "7", "63"]], str(result)
    assert len(fields_of(result.stdout, "[load] ")) == 3, str(result)


# ---------------------------------------------------------------------------
# Many probes at one site

MANY_PROBES_SCRIPT = """\
N = {n}
order = []

def make(kind, i):
    def handler(ctx):
        order.append((kind, i))
    return handler

for i in range(N):
    # Alternate probes that always fire with probes whose predicate is left
    # to the event (the thread id), and one that never fires.
    rest = (thread_id != 0) if i % 2 else None
    never = i == N // 2
    for kind, probe in (("entry", function_entry), ("exit", function_exit)):
        predicate = {site}
        if rest is not None:
            predicate = predicate & rest
        if never:
            predicate = predicate & (thread_id == 0)
        probe(predicate)(make(kind, i))

@process_exit
def done(ctx):
    print("[order]", order)
"""


@pytest.mark.parametrize("site, command", [
    ('function_name == "factorial"', ["recurse", "4"]),
    ('syscall_name == "getppid"', ["forks"]),
], ids=["function", "syscall"])
def test_every_probe_of_a_crowded_site_fires_in_order(trace, ftarget, site, command):
    """A site with far more probes than fit a machine word loses none."""
    n = 150
    script = MANY_PROBES_SCRIPT.format(n=n, site=site)
    if "syscall" in site:
        script = script.replace("function_entry", "syscall_entry").replace("function_exit", "syscall_exit")
    result = trace(script, ftarget(command[0]), *command[1:], options=["-q"])
    assert result.returncode == 0, str(result)
    fired = [i for i in range(n) if i != n // 2]
    orders = [ast.literal_eval(line) for line in script_lines(result.stdout, "[order] ")]
    # forks: the child makes 3 getppid calls, the parent 2; recurse 4: 4 calls.
    events = sorted(len(o) // (2 * len(fired)) for o in orders)
    assert events == ([2, 3] if "syscall" in site else [4]), str(result)
    for order in orders:
        calls = len(order) // (2 * len(fired))
        if "syscall" in site:
            # Each call's entry handlers, then its exit handlers.
            expected = [(kind, i) for _ in range(calls) for kind in ("entry", "exit") for i in fired]
        else:
            # The recursion enters 4 times, then returns 4 times.
            expected = [("entry", i) for _ in range(calls) for i in fired]
            expected += [("exit", i) for _ in range(calls) for i in fired]
        assert order == expected, str(result)


STACKED_ARGS_SCRIPT = """\
@function_entry(function_name == "malloc")
@function_exit(function_name == "malloc")
def both(ctx):
    try:
        ctx.args[6]
        print("[args6]", ctx.event, "read")
    except IndexError as e:
        print("[args6]", ctx.event, "IndexError")
"""


def test_entry_reads_raw_words_beyond_those_kept_for_the_exit(trace, ftarget):
    """A handler on entry and exit of a function with no prototype: at entry
    argument 6 is the raw stack word, at exit it was not kept."""
    result = trace(STACKED_ARGS_SCRIPT, ftarget("malloc_sizes"), options=["-q"])
    assert result.returncode == 0, str(result)
    lines = set(script_lines(result.stdout, "[args6] "))
    assert lines == {"function_entry read", "function_exit IndexError"}, str(result)
