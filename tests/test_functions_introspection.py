"""Function probes: registers, backtraces, symbolization and the symbol helpers.

ctx.regs (read at entry and exit, written at entry), ctx.backtrace(),
ctx.symbolize(addr), and the script helpers symbol() and module().
Targets: tests/targets/{secret,recurse,malloc_sizes}.c.
"""

import pytest

from conftest import script_lines
from function_targets import arch, arch_target, fields_of, ftarget, nm_address, without_handler_lines  # noqa: F401

REGISTERS = [
    "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP",
    "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15",
    "RIP", "RFLAGS", "STACKPTR", "INSTPTR",
]

# ---------------------------------------------------------------------------
# ctx.regs

REGS_SCRIPT = """\
REGISTERS = {registers!r}
def bad_registers(regs):
    bad = []
    for name in REGISTERS:
        try:
            value = getattr(regs, name)
        except Exception as e:
            bad.append(name + ":" + type(e).__name__)
        else:
            if not (isinstance(value, int) and 0 <= value < 2**64):
                bad.append(name + ":" + repr(value))
    return bad

@function_entry(function_name == "secret_function")
def enter(ctx):
    r = ctx.regs
    print("[entry-regs]", r.RDI, r.RSI, r.RDI == ctx.args[0], r.RSI == ctx.args[1])
    print("[entry-pc]", r.RIP == ctx.function, r.INSTPTR == r.RIP, ctx.pc == r.RIP)
    # At a function's first instruction the return address is on top of the
    # stack, and the stack is 16-byte aligned but for that word (SysV ABI).
    print("[entry-sp]", r.STACKPTR == r.RSP, ctx.mem.u64(r.RSP) == ctx.caller, r.RSP % 16)
    print("[entry-flags]", r.RFLAGS & 2)   # bit 1 of RFLAGS is always set
    print("[entry-bad]", bad_registers(r))

@function_exit(function_name == "secret_function")
def leave(ctx):
    r = ctx.regs
    print("[exit-regs]", r.RAX, ctx.retval, r.STACKPTR == r.RSP, r.INSTPTR == r.RIP)
    print("[exit-bad]", bad_registers(r))
"""


def test_registers_at_entry_and_exit(trace, ftarget):
    result = trace(REGS_SCRIPT.format(registers=REGISTERS), ftarget("secret"), "7", "35", options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == ["secret(7, 35) = 56"], str(result)
    assert script_lines(result.stdout, "[entry-bad] ") == ["[]"], str(result)
    assert script_lines(result.stdout, "[entry-regs] ") == ["7 35 True True"], str(result)
    assert script_lines(result.stdout, "[entry-pc] ") == ["True True True"], str(result)
    assert script_lines(result.stdout, "[entry-sp] ") == ["True True 8"], str(result)
    assert script_lines(result.stdout, "[entry-flags] ") == ["2"], str(result)
    assert script_lines(result.stdout, "[exit-bad] ") == ["[]"], str(result)
    assert script_lines(result.stdout, "[exit-regs] ") == ["56 56 True True"], str(result)


def test_writing_a_register_at_entry_changes_an_argument(trace, ftarget):
    script = """\
@function_entry(function_name == "secret_function")
def enter(ctx):
    ctx.regs.RDI = 100
    ctx.regs.RSI = 2
@function_exit(function_name == "secret_function")
def leave(ctx):
    print("[exit]", ctx.retval, ctx.regs.RAX)
"""
    result = trace(script, ftarget("secret"), "7", "35", options=["-q"])
    assert result.returncode == 0, str(result)
    # main prints its own a and b; the function computed 100 * 3 + 2.
    assert without_handler_lines(result.stdout) == ["secret(7, 35) = 302"], str(result)
    assert script_lines(result.stdout, "[exit] ") == ["302 302"], str(result)


# ---------------------------------------------------------------------------
# ctx.backtrace() and ctx.symbolize()

BACKTRACE_SCRIPT = """\
base = {}
@module_load(module_name == "recurse")
def loaded(ctx):
    base["app"] = ctx.module_base
depth = [0]
@function_entry(function_name == "factorial")
def enter(ctx):
    depth[0] += 1
    bt = ctx.backtrace()
    app = base["app"]
    print("[bt]", depth[0], ctx.args[0], ctx.caller - app, isinstance(bt, list),
          " ".join(str(a - app) for a in bt))
    print("[sym]", depth[0], ctx.symbolize(ctx.function), ctx.symbolize(ctx.caller),
          " ".join(ctx.symbolize(a) for a in bt[:depth[0] + 1]))
@function_exit(function_name == "factorial")
def leave(ctx):
    depth[0] -= 1
"""


def test_backtrace_of_a_recursion(trace, arch_target):
    n = 6
    result = trace(BACKTRACE_SCRIPT, arch_target("recurse"), str(n), options=["-q"])
    assert result.returncode == 0, str(result)
    assert without_handler_lines(result.stdout) == ["factorial(6) = 720"], str(result)
    rows = fields_of(result.stdout, "[bt] ")
    assert [int(r[0]) for r in rows] == list(range(1, n + 1)), str(result)
    outer_caller = int(rows[0][2])       # in main
    inner_caller = int(rows[1][2])       # in factorial
    for depth, arg, caller, is_list, *backtrace in rows:
        depth, caller = int(depth), int(caller)
        backtrace = [int(a) for a in backtrace]
        assert is_list == "True", str(result)
        assert backtrace and backtrace[0] == caller, f"depth {depth}: backtrace()[0] is not ctx.caller\n{result}"
        # depth - 1 frames of factorial, then main's.
        assert len(backtrace) >= depth, f"depth {depth}: backtrace too short\n{result}"
        assert backtrace[:depth] == [inner_caller] * (depth - 1) + [outer_caller], f"depth {depth}\n{result}"


def test_symbolize_names_functions_and_offsets(trace, arch_target):
    n = 4
    recurse = arch_target("recurse")
    main = nm_address(recurse, "main")
    factorial = nm_address(recurse, "factorial")
    result = trace(BACKTRACE_SCRIPT, recurse, str(n), options=["-q"])
    assert result.returncode == 0, str(result)
    rows = {int(r[0]): r for r in fields_of(result.stdout, "[bt] ")}
    syms = {int(s[0]): s for s in fields_of(result.stdout, "[sym] ")}
    assert sorted(syms) == list(range(1, n + 1)), str(result)
    outer_caller, inner_caller = int(rows[1][2]), int(rows[2][2])
    in_main = f"recurse!main+{outer_caller - main:#x}"
    in_factorial = f"recurse!factorial+{inner_caller - factorial:#x}"
    for depth, sym in syms.items():
        # An exact function start has no offset.
        assert sym[1] == "recurse!factorial", str(result)
        assert sym[2] == (in_main if depth == 1 else in_factorial), str(result)
        assert sym[3:3 + depth] == [in_factorial] * (depth - 1) + [in_main], str(result)
        # Beyond main: where libc called it.
        if len(sym) > 3 + depth:
            assert sym[3 + depth].startswith("libc.so.6!"), str(result)


# ---------------------------------------------------------------------------
# symbol(), module(), and the malloctrace example filtered with module()

HELPERS_SCRIPT = """\
seen = []
@function_entry(function_name == "malloc")
def enter(ctx):
    if module(ctx.caller) != "malloc_sizes":
        return
    print("[app]", ctx.args[0])
    if seen:
        return
    seen.append(1)
    by_name = symbol("malloc")
    names = symbol(ctx.function)
    print("[symbol-name]", type(by_name).__name__, ctx.function in by_name)
    print("[symbol-addr]", type(names).__name__, "malloc" in names)
    none = symbol("no_such_function_xyz")
    print("[symbol-none]", len(none), bool(none), ctx.function in none, symbol(0))
    print("[symbolize]", ctx.symbolize(ctx.function) in ["libc.so.6!" + n for n in names],
          ctx.symbolize(ctx.function + 4) in ["libc.so.6!" + n + "+0x4" for n in names])
    print("[module]", module(ctx.function), module(ctx.caller), module(0))
    bt = ctx.backtrace()
    print("[bt]", bt[0] == ctx.caller, ctx.symbolize(bt[0]).startswith("malloc_sizes!main+0x"))
    mains = symbol("main")
    print("[main]", len(mains), module(min(mains)) if mains else None)
"""


def test_symbol_and_module_helpers(trace, arch_target, run_native):
    native = run_native(arch_target("malloc_sizes"))
    sizes = script_lines(native.stdout, "malloc ")
    result = trace(HELPERS_SCRIPT, arch_target("malloc_sizes"), options=["-q"])
    assert result.returncode == 0, str(result)
    # The calls from the program itself, told by module(ctx.caller).
    assert script_lines(result.stdout, "[app] ") == sizes and len(sizes) == 8, str(result)
    assert script_lines(result.stdout, "[symbol-name] ") == ["set True"], str(result)
    assert script_lines(result.stdout, "[symbol-addr] ") == ["list True"], str(result)
    assert script_lines(result.stdout, "[symbol-none] ") == ["0 False False []"], str(result)
    assert script_lines(result.stdout, "[symbolize] ") == ["True True"], str(result)
    assert script_lines(result.stdout, "[module] ") == ["libc.so.6 malloc_sizes None"], str(result)
    assert script_lines(result.stdout, "[bt] ") == ["True True"], str(result)
    # main of malloc_sizes (libc has no "main").
    assert script_lines(result.stdout, "[main] ") == ["1 malloc_sizes"], str(result)


def test_symbol_finds_a_function_of_the_executable(trace, arch_target):
    script = """\
base = {}
@module_load(module_name == "secret")
def loaded(ctx):
    base["app"] = ctx.module_base
@function_entry(function_name == "secret_function")
def enter(ctx):
    print("[symbol]", symbol("secret_function") == {ctx.function}, symbol(ctx.function),
          ctx.function - base["app"], module(ctx.function))
"""
    offset = nm_address(arch_target("secret"), "secret_function")
    result = trace(script, arch_target("secret"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[symbol] ") == [f"True ['secret_function'] {offset} secret"], str(result)


def test_helpers_on_a_stripped_binary(trace, arch_target):
    offset = nm_address(arch_target("secret"), "secret_function")
    script = f"""\
@function_entry(function_address == "app+{offset:#x}")
def enter(ctx):
    print("[stripped]", ctx.function_name, symbol(ctx.function), module(ctx.function),
          len(symbol("secret_function")), ctx.backtrace()[0] == ctx.caller)
"""
    result = trace(script, arch_target("secret_stripped"), options=["-q"])
    assert result.returncode == 0, str(result)
    assert script_lines(result.stdout, "[stripped] ") == ["None [] secret_stripped 0 True"], str(result)
