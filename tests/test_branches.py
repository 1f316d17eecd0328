"""Branch probes end to end: branch(pred), ctx.taken forced, once=True (issue 13).

Targets: tests/targets/branchy.c (at -O0 and -O2), password.c,
branchplugin.c (loaded by dlopen_plugin); their header comments say what
each does and prints.

Every expected number comes from outside the tracer: the program's own
counts of its decisions, and objdump of the built binary for which
instruction makes each decision and which way is which (``je`` taken
when the number is even, the loop's ``jb`` going back while it counts).

Handlers print to ``-o FILE``; the target's own stdout must be exactly
what it prints untraced, unless a test forces a branch to change it.
"""

import collections
import re
import subprocess
from pathlib import Path

import pytest

from function_targets import arch, arch_target, ftarget  # noqa: F401
from test_memory import check_untouched, fields, objdump_function, traced as traced_quietly


def conditional_branches(path, function):
    """The conditional branches of *function*: [(address, mnemonic, target)]."""
    found = []
    for address, _, text in objdump_function(path, function):
        match = re.match(r"(j(?!mp)[a-z]+|loop[a-z]*)\s+([0-9a-f]+)", text)
        if match:
            found.append((address, match.group(1), int(match.group(2), 16)))
    return found


def odd_even(stdout):
    odd, even = re.fullmatch(r"odd (\d+) even (\d+)\n", stdout).groups()
    return int(odd), int(even)


def traced(trace, tmp_path, script, command, options=()):
    """Trace *command*, handlers printing to a file, quiet unless *options*
    say -v; returns (result, the handlers' lines)."""
    if "-v" not in options:
        return traced_quietly(trace, tmp_path, script, command, options)
    out = tmp_path / f"handlers{len(list(tmp_path.glob('handlers*')))}.txt"
    result = trace(script, *command, options=["-o", str(out), *options])
    return result, out.read_text().splitlines() if out.exists() else []


def branch_summary(result):
    """(directions instrumented, callouts) from the -v line at exit."""
    match = re.search(r"branch: (\d+) directions instrumented, (\d+) callouts", result.stderr)
    assert match, str(result)
    return int(match.group(1)), int(match.group(2))


def decision(path):
    """decide()'s one branch (objdump): a je past the odd call, taken for an
    even number."""
    branches = conditional_branches(path, "decide")
    assert [m for _, m, _ in branches] == ["je"], branches
    return branches[0]


COUNT_SCRIPT = """\
import collections
seen = collections.Counter()
decide = next(iter(symbol("decide")))

@branch(function_name == "decide")
def on_branch(ctx):
    seen[ctx.condition, ctx.taken, ctx.instruction, ctx.pc - decide, ctx.target - decide, ctx.fallthrough - ctx.pc,
         ctx.function_name, ctx.module] += 1
    assert ctx.regs.RIP == ctx.pc
    # je goes on ZF: the flags are as the branch sees them.
    assert bool(ctx.regs.RFLAGS & 0x40) == ctx.taken

@process_exit
def done(ctx):
    for key, n in sorted(seen.items()):
        print("[branch]", *[str(k).replace(" ", "_") for k in key], n)
"""


@pytest.mark.parametrize("build", ["branchy_O0", "branchy_O2"])
def test_taken_and_not_taken_counts_match_the_programs_own(trace, ftarget, run_native, tmp_path, build):
    path = ftarget(build)
    address, _, target = decision(path)
    start = objdump_function(path, "decide")[0][0]
    native = run_native(path, "decide", "20000")
    odd, even = odd_even(native.stdout)
    assert odd + even == 20000 and odd > 1000 and even > 1000
    result, lines = traced(trace, tmp_path, COUNT_SCRIPT, [path, "decide", "20000"], options=["-v"])
    check_untouched(result, native, lines)
    # PIE: ctx.instruction names the run-time target; offsets are the file's.
    got = [(c, t, i.split("_")[0], int(pc), int(to), int(length), f, m, int(n)) for c, t, i, pc, to, length, f, m, n in fields(lines, "[branch] ")]
    length = 2
    assert got == [
        ("e", "False", "je", address - start, target - start, length, "decide", build, odd),
        ("e", "True", "je", address - start, target - start, length, "decide", build, even),
    ], lines
    # Only decide's branch carries instrumentation: none in libc, none elsewhere.
    assert branch_summary(result) == (2, 20000), str(result)


FLIP_SCRIPT = """\
verdict = next(iter(symbol("main"))) + {offset}     # the branch on check_password's result

@branch(instruction_address == verdict)
def flip(ctx):
    print("[verdict]", ctx.condition, ctx.taken)
    ctx.taken = not ctx.taken
"""


def test_flipping_the_verdict_branch_accepts_a_wrong_key(trace, arch_target, run_native, tmp_path):
    path = arch_target("password")
    main = objdump_function(path, "main")
    call = next(a for a, _, t in main if "<check_password>" in t)
    # The first conditional branch after the call decides on its result.
    verdict, mnemonic, _ = next(b for b in conditional_branches(path, "main") if b[0] > call)
    native = run_native(path, "not-the-password")
    assert (native.returncode, native.stdout) == (1, "access denied\n")
    result, lines = traced(trace, tmp_path, FLIP_SCRIPT.format(offset=verdict - main[0][0]), [path, "not-the-password"])
    assert (result.returncode, result.stdout) == (0, "access granted\n"), str(result)
    # jne skips the denial when check_password returned non-zero: not taken.
    assert lines == [f"[verdict] {mnemonic[1:]} {mnemonic == 'je'}"], str(result)
    right = run_native(path, "swordfish")
    result, lines = traced(trace, tmp_path, FLIP_SCRIPT.format(offset=verdict - main[0][0]), [path, "swordfish"])
    assert (result.returncode, result.stdout) == (1, "access denied\n") != (right.returncode, right.stdout), str(result)


LOOP_SCRIPT = """\
n = 0
@branch(function_name == "count_to")
def on_branch(ctx):
    global n
    if ctx.target < ctx.pc:                   # the loop's back edge
        n += 1
        if n == {stop}:
            ctx.taken = False                 # leave the loop now
"""


@pytest.mark.parametrize("stop", [1, 5, 1000])
def test_forcing_a_loops_exit_branch(trace, arch_target, run_native, tmp_path, stop):
    path = arch_target("branchy_O2")
    # count_to: a check for 0 then the loop, `jb` back while i < limit.
    assert [m for _, m, _ in conditional_branches(path, "count_to")] == ["je", "jb"]
    _, _, back = conditional_branches(path, "count_to")[1]
    assert back < conditional_branches(path, "count_to")[1][0]
    assert run_native(path, "loop", "100000").stdout == "counted 100000\n"
    result, lines = traced(trace, tmp_path, LOOP_SCRIPT.format(stop=stop), [path, "loop", "100000"])
    # The back edge runs after each increment: forced out at the stop-th, i == stop.
    assert (result.returncode, result.stdout) == (0, f"counted {stop}\n"), str(result)


ONCE_SCRIPT = """\
@branch(function_name.like("{functions}"), once=True)
def first(ctx):
    print("[once]", ctx.function_name, ctx.instruction.split()[0], ctx.taken)
"""


def test_once_gives_one_event_per_direction_then_runs_uninstrumented(trace, arch_target, run_native, tmp_path):
    path = arch_target("branchy_O2")
    native = run_native(path, "loop", "300000")
    result, lines = traced(trace, tmp_path, ONCE_SCRIPT.format(functions="count_to"), [path, "loop", "300000"], options=["-v"])
    check_untouched(result, native, lines)
    # je (limit == 0) only ever falls through; jb goes back 299,999 times and out once.
    assert sorted(lines) == ["[once] count_to jb False", "[once] count_to jb True", "[once] count_to je False"], lines
    instrumented, callouts = branch_summary(result)
    # The loop's callouts stop once its branch is flushed (after at most a
    # thousand idle ones); the never-taken je keeps its one direction.
    assert callouts < 2000, str(result)
    native = run_native(path, "decide", "50000")
    result, lines = traced(trace, tmp_path, ONCE_SCRIPT.format(functions="decide"), [path, "decide", "50000"], options=["-v"])
    check_untouched(result, native, lines)
    assert sorted(lines) == ["[once] decide je False", "[once] decide je True"], lines
    assert branch_summary(result)[1] < 2000, str(result)


TAKEN_ONLY_SCRIPT = """\
n = 0
@branch((function_name == "decide") & (branch_taken == True))
def taken(ctx):
    global n
    assert ctx.taken
    n += 1

@process_exit
def done(ctx):
    print("[taken]", n)
"""


def test_branch_taken_true_never_calls_out_for_the_other_direction(trace, ftarget, run_native, tmp_path):
    path = ftarget("branchy_O0")
    native = run_native(path, "decide", "30000")
    odd, even = odd_even(native.stdout)
    result, lines = traced(trace, tmp_path, TAKEN_ONLY_SCRIPT, [path, "decide", "30000"], options=["-v"])
    check_untouched(result, native, lines)
    assert lines == [f"[taken] {even}"], lines
    # One direction instrumented; a callout for each taken branch and none else.
    assert branch_summary(result) == (1, even), str(result)


THREADS_SCRIPT = """\
import collections, threading
per_thread = collections.Counter()
taken = 0

@branch(function_name == "decide")
def on_branch(ctx):
    global taken
    per_thread[ctx.tid] += 1
    taken += ctx.taken

@process_exit
def done(ctx):
    print("[threads]", sorted(per_thread.values()), taken, ctx.tid in per_thread)
"""


def test_eight_threads_each_counted_exactly(trace, arch_target, run_native, tmp_path):
    path = arch_target("branchy_O2")
    native = run_native(path, "threads", "10000")
    odd, even = odd_even(native.stdout)
    assert odd + even == 80000
    result, lines = traced(trace, tmp_path, THREADS_SCRIPT, [path, "threads", "10000"])
    check_untouched(result, native, lines)
    assert lines == [f"[threads] {[10000] * 8} {even} False"], lines


@pytest.mark.parametrize("test, seen", [("thread_id > 1", True), ("thread_id < 1", False)], ids=["every-thread", "no-thread"])
def test_thread_predicates_see_every_thread_or_none(trace, arch_target, run_native, tmp_path, test, seen):
    path = arch_target("branchy_O2")
    script = THREADS_SCRIPT.replace('@branch(function_name == "decide")', f'@branch((function_name == "decide") & ({test}))')
    native = run_native(path, "threads", "5000")
    odd, even = odd_even(native.stdout)
    result, lines = traced(trace, tmp_path, script, [path, "threads", "5000"], options=["-v"])
    check_untouched(result, native, lines, never_matched=() if seen else ("on_branch",))
    expected = f"[threads] {[5000] * 8} {even} False" if seen else "[threads] [] 0 False"
    assert lines == [expected], lines
    # Tested in the code cache: a thread no probe wants makes no callout.
    assert branch_summary(result)[1] == (40000 if seen else 0), str(result)


PLUGIN_SCRIPT = """\
@branch((module_name == "libbranchplugin.so") & (function_name == "plugin_compute"))
def on_branch(ctx):
    print("[plugin]", ctx.function_name, ctx.instruction.split()[0], ctx.taken, ctx.regs.RDI)
"""


def test_a_branch_in_a_library_loaded_with_dlopen(trace, ftarget, run_native, tmp_path):
    dlopen_plugin, plugin = ftarget("dlopen_plugin"), ftarget("libbranchplugin.so")
    # plugin_compute: `jne` to the odd case (objdump).
    assert [m for _, m, _ in conditional_branches(plugin, "plugin_compute")] == ["jne"]
    # (The library's start-up code, frame_dummy and the like, has branches
    # of its own: the predicate names the function.)
    native = run_native(dlopen_plugin, plugin, "3")
    assert native.stdout == "plugin: 42\nlocal: 1005\nplugin: 14\nplugin: 56\n"
    result, lines = traced(trace, tmp_path, PLUGIN_SCRIPT, [dlopen_plugin, plugin, "3"])
    check_untouched(result, native, lines)
    assert lines == ["[plugin] plugin_compute jne False 6", "[plugin] plugin_compute jne True 7",
                     "[plugin] plugin_compute jne False 8"], lines


def test_once_with_threads_racing_reports_each_direction_once(trace, ftarget, run_native, tmp_path):
    # 8 threads run decide() from the start together: the first event of
    # each direction is raced for, and the flushes happen while the other
    # threads run the same code.
    path = ftarget("branchy_O2")
    native = run_native(path, "threads", "20000")
    # decide() and classify() only: flushes of libc's branches would grow
    # the batches (see FLUSH_AFTER in client/src/branches.rs).
    result, lines = traced(trace, tmp_path, ONCE_SCRIPT.format(functions="[cd][el][ac]*"), [path, "threads", "20000"], options=["-v"])
    check_untouched(result, native, lines)
    decide = sorted(line for line in lines if " decide " in line)
    assert decide == ["[once] decide je False", "[once] decide je True"], lines
    classify = [line for line in lines if " classify " in line]
    assert len(classify) == len(set(classify)) >= 2, lines
    assert branch_summary(result)[1] < 20000, str(result)


BOTH_SCRIPT = """\
every = 0
@branch(function_name == "decide", once=True)
def first(ctx):
    print("[once]", ctx.taken)

@branch(function_name == "decide")
def each(ctx):
    global every
    every += 1

@process_exit
def done(ctx):
    print("[every]", every)
"""


def test_a_branch_rebuilt_after_once_keeps_its_other_probes(trace, ftarget, run_native, tmp_path):
    # The once probe's events flush decide()'s blocks; built again, they
    # keep the other probe's callouts, and no event of it is lost.
    path = ftarget("branchy_O2")
    native = run_native(path, "decide", "40000")
    result, lines = traced(trace, tmp_path, BOTH_SCRIPT, [path, "decide", "40000"], options=["-v"])
    check_untouched(result, native, lines)
    assert sorted(lines) == ["[every] 40000", "[once] False", "[once] True"], lines
    assert "[+] (function.name == @decide) once first" in result.stderr, str(result)
    instrumented, callouts = branch_summary(result)
    # Two directions, each built with both probes, then with the other
    # alone: counted once each.
    assert (instrumented, callouts) == (2, 40000), str(result)


FLAGS_SCRIPT = """\
verdict = next(iter(symbol("main"))) + {offset}

@branch(instruction_address == verdict)
def flags(ctx):
    ctx.regs.RFLAGS = ctx.regs.RFLAGS ^ 0x40     # ZF flipped: the jne would go the other way
    print("[verdict]", ctx.taken)                # ctx.taken, unchanged, is where it goes
"""


def test_a_flags_write_does_not_change_where_the_branch_goes(trace, ftarget, run_native, tmp_path):
    path = ftarget("password")
    main = objdump_function(path, "main")
    call = next(a for a, _, t in main if "<check_password>" in t)
    verdict, mnemonic, _ = next(b for b in conditional_branches(path, "main") if b[0] > call)
    assert mnemonic in ("je", "jne")
    native = run_native(path, "not-the-password")
    result, lines = traced(trace, tmp_path, FLAGS_SCRIPT.format(offset=verdict - main[0][0]), [path, "not-the-password"])
    assert (result.returncode, result.stdout) == (native.returncode, native.stdout), str(result)
    assert lines == [f"[verdict] {mnemonic == 'je'}"], str(result)


KEPT_SCRIPT = """\
kept = []

@branch(function_name == "decide")
def on_branch(ctx):
    if not kept:
        kept.append(ctx)
        for field in ("target", "condition"):
            try:
                setattr(ctx, field, 0)
            except AttributeError as e:
                print("[set]", e)
        return
    try:
        kept[0].taken = not ctx.taken          # too late: the kept event is over
    except RuntimeError as e:
        kept.append(str(e))

@process_exit
def done(ctx):
    print("[late]", len(kept) - 1, kept[1], kept[0].pc == kept[0].fallthrough - 2)
"""


def test_a_kept_ctx_cannot_force_a_later_branch(trace, ftarget, run_native, tmp_path):
    path = ftarget("branchy_O0")
    native = run_native(path, "decide", "1000")
    result, lines = traced(trace, tmp_path, KEPT_SCRIPT, [path, "decide", "1000"])
    check_untouched(result, native, lines)
    assert lines == [
        "[set] ctx.target is read-only (a branch handler can set ctx.taken, ctx.regs.NAME)",
        "[set] ctx.condition is read-only (a branch handler can set ctx.taken, ctx.regs.NAME)",
        "[late] 999 this ctx belongs to an event that is over: keep values, not ctx True",
    ], str(result)


MISSPELT_SCRIPT = """\
@branch(function_name == "decid")
def misspelt(ctx):
    print("never")

@branch(function_name == "count_to")
def not_run(ctx):                          # decide mode never counts
    print("never")

@branch(function_name == "decide")
def fine(ctx):
    pass
"""


def test_a_branch_probe_that_never_fires_is_warned_about(trace, ftarget, run_native, tmp_path):
    path = ftarget("branchy_O0")
    native = run_native(path, "decide", "100")
    result, lines = traced(trace, tmp_path, MISSPELT_SCRIPT, [path, "decide", "100"])
    check_untouched(result, native, lines, never_matched=("misspelt", "not_run"))
    assert lines == [], lines
    warnings = [line for line in result.stderr.splitlines() if line.startswith("[!]")]
    assert warnings == [
        "[!] probe misspelt never matched: no conditional branch in a function named 'decid'",
        "[!] probe not_run never matched: no conditional branch in a function named 'count_to'",
    ], str(result)


LIBC_NAMES_SCRIPT = """\
base = {}

@module_load(module_name == "libc.so.6")
def loaded(ctx):
    base["libc"] = ctx.module_base

@branch(module_name == "libc.so.6", once=True)
def named(ctx):
    print("[libc]", ctx.function_name, ctx.pc - base["libc"])
"""


def test_libc_branches_are_named_by_the_symbol_whose_bytes_hold_them(trace, ftarget, run_native, tmp_path):
    # Stripped, libc names its exported functions only (nm -D, with sizes):
    # a branch in a static one (glibc's __strcmp_avx2 behind strcmp, the
    # __pthread_clockjoin_ex pthread_join jumps to) is in no function,
    # not in the exported one before it.
    libc = next(p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6") if Path(p).exists())
    listing = subprocess.run(["nm", "-D", "--defined-only", "-S", libc], capture_output=True, text=True, check=True).stdout
    extents = collections.defaultdict(set)
    starts = []
    for value, size, kind, name in (line.split() for line in listing.splitlines() if len(line.split()) == 4):
        if kind in "TtWiI":
            extents[name.split("@")[0]].add((int(value, 16), int(size, 16)))
            starts.append((int(value, 16), int(size, 16)))
    path = ftarget("password")
    native = run_native(path, "not-the-password")
    result, lines = traced(trace, tmp_path, LIBC_NAMES_SCRIPT, [path, "not-the-password"])
    assert (result.returncode, result.stdout) == (native.returncode, native.stdout), str(result)
    seen = [(name, int(offset)) for name, offset in fields(lines, "[libc] ")]
    assert len(seen) > 50, lines
    for name, offset in seen:
        if name == "None":
            assert not any(start <= offset < start + size for start, size in starts), (offset, "is in a named function")
        else:
            assert any(start <= offset < start + size for start, size in extents[name]), (name, offset)
    assert {"None", "strcmp"} <= {name for name, _ in seen}, seen    # the resolver is strcmp's, its choice unnamed


FORK_ONCE_SCRIPT = """\
@branch(module_name == "forks", once=True)
def first(ctx):
    print("[once]", ctx.pid, ctx.function_name, ctx.pc, ctx.taken)
"""


def test_once_in_a_forked_child_reports_its_own_directions(trace, ftarget, run_native, tmp_path):
    # forks.c: the parent forks, then each process runs calls() (a loop of
    # getppid, an open that fails).
    path = ftarget("forks")
    native = run_native(path)
    result, lines = traced(trace, tmp_path, FORK_ONCE_SCRIPT, [path], options=["-v"])
    # The output is the program's own but for the child's pid.
    assert re.fullmatch(r"child \d+ exited 7\n", native.stdout), native.stdout
    assert result.returncode == native.returncode and re.fullmatch(r"child \d+ exited 7\n", result.stdout), str(result)
    child = int(result.stdout.split()[1])
    events = [(int(pid), function, int(pc), taken) for pid, function, pc, taken in fields(lines, "[once] ")]
    by_pid = collections.defaultdict(list)
    for pid, function, pc, taken in events:
        by_pid[pid].append((function, pc, taken))
    assert len(by_pid) == 2 and child in by_pid, events
    parent = next(p for p in by_pid if p != child)
    for pid, seen in by_pid.items():
        assert len(seen) == len(set(seen)), (pid, seen)       # each direction once per process
    # Both run calls(): each reports its directions.
    calls = lambda pid: {(pc, taken) for function, pc, taken in by_pid[pid] if function == "calls"}
    assert calls(child) and calls(child) == calls(parent), events
    # What the parent reported before the fork, the child does not repeat.
    before_fork = {(pc, taken) for function, pc, taken in by_pid[parent] if function in ("_init", "register_tm_clones", "frame_dummy")}
    assert before_fork and not before_fork & {(pc, taken) for _, pc, taken in by_pid[child]}, events
    summaries = re.findall(r"branch: \d+ directions instrumented, \d+ callouts in pid (\d+)", result.stderr)
    assert sorted(map(int, summaries)) == sorted([parent, child]), str(result)
