#!/usr/bin/env python3
"""Overhead of branch probes, measured side by side in one run.

    /usr/bin/python3.11 bench/branches.py [--n N] [--runs R] [--quick] [--processtap PATH]

The target (bench/targets/branch_heavy.c, built here with gcc -O2 -no-pie,
its branches checked with objdump) partitions N pseudo-random keys around a
pivot in hot(): 2N + 1 conditional branches, a jb that goes either way and
the loop's jne, about 1.25N of them taken; it prints how many went each
way. It never calls unused_function().

Rows, all run interleaved (one run of every row in turn, R times), each once
with its work and once with N = 0, so start-up drops out: the time of the
work alone is the difference. The rows that call a handler at every branch
get N/400 keys (10^7 branches at the default N):

  native; DynamoRIO with no client (libdynamorio.so run as the target, as
  bench/memory.py does); ProcessTap with an empty function_entry handler on
  unused_function; ProcessTap with an empty handler on every branch of
  hot(), `@branch(function_name == "hot")`, and on its taken directions
  only, `@branch((function_name == "hot") & (branch_taken == True))` (ns
  per branch handled, over DynamoRIO); ProcessTap with
  `@branch(module_name == "branch_heavy", once=True)`, each direction of
  each branch of the executable reported once; Frida's Stalker following
  the main thread from main() on, with a JavaScript callout on each
  conditional branch of hot(), when a Python that imports frida is found
  (as bench/functions.py finds one).

Before timing, each ProcessTap row runs once on 10,000 keys with a handler
that counts, and Frida's with its callouts counting: every branch must be
the target's taken + not taken, taken directions its taken, once=True at
least 1 and at most twice the executable's conditional branches (objdump),
unused_function 0; a wrong count is warned about. A row whose tracer fails
is reported with the first line of its stderr and left out; the others go
on. A row whose tool is not installed is skipped with a note. Goals (issue
13) are printed beside the rows.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from functions import FRIDA_RUN_TO_EXIT, python_with_frida
from memory import BENCH, DYNAMORIO, PROCESSTAP, Row, first_line, measure, parse_arguments, symbols

TARGET = "branch_heavy"
DR = "DynamoRIO, no client"
FRIDA = "Frida Stalker, JS callout per branch"
SLOW = 400  # rows with a handler at every branch get N / SLOW keys
CHECK_KEYS = 10_000

# hot()'s conditional branches as branch_heavy.c lays them out; the counts
# it prints hold for these only.
HOT_BRANCHES = ["jle", "jb", "jne"]
# A conditional branch in objdump's listing: jcc, jrcxz, loop (not jmp).
CONDITIONAL = re.compile(r"^\s*[0-9a-f]+:\s+(?:bnd\s+)?(j(?!mp)[a-z]+|loop[a-z]*)\s", re.M)

# Probe scripts: a probe and the empty handler for timing; the counting
# handler, {probe} its probe, printing the count at exit, for the check.
HANDLER = "def on_event(ctx):\n    pass\n"
COUNTING = "n = 0\n{probe}def on_event(ctx):\n    global n\n    n += 1\n@process_exit\ndef done(ctx):\n    print('count', n)\n"
PROBES = {
    "unrelated": '@function_entry(function_name == "unused_function")\n',
    "every branch": '@branch(function_name == "hot")\n',
    "taken": '@branch((function_name == "hot") & (branch_taken == True))\n',
    "once": f'@branch(module_name == "{TARGET}", once=True)\n',
}
LABELS = {
    "unrelated": "ProcessTap, probe on unused_function",
    "every branch": "ProcessTap, empty handler, every branch",
    "taken": "ProcessTap, empty handler, taken only",
    "once": "ProcessTap, once=True, whole executable",
}

# Frida's script runs on a thread of its own, and at spawn it sees no
# other: Stalker starts following the main thread from main()'s entry, on
# that thread, and stops when main() returns, sending the count.
FRIDA_RUNNER = r"""
import sys, time, frida
target, main, hot, size, keys = sys.argv[1:]
pid = frida.spawn([target, keys])
session = frida.attach(pid)
source = '''
const hot = ptr(HOT), end = hot.add(SIZE);
let count = 0;
Interceptor.attach(ptr(MAIN), {
  onEnter() {
    Stalker.follow(Process.getCurrentThreadId(), {
      transform(iterator) {
        let instruction;
        while ((instruction = iterator.next()) !== null) {
          const address = instruction.address;
          if (address.compare(hot) >= 0 && address.compare(end) < 0 && /^(j(?!mp)|loop)/.test(instruction.mnemonic))
            iterator.putCallout(() => { count++; });
          iterator.keep();
        }
      },
    });
  },
  onLeave() {
    Stalker.unfollow();
    send(count);
  },
});
'''


def on_message(message, data):
    if message["type"] == "send":
        print("count", message["payload"])
    else:
        print(message.get("description", message), file=sys.stderr)


script = session.create_script(source.replace("MAIN", main).replace("HOT", hot).replace("SIZE", size))
script.on("message", on_message)
script.load()
""" + FRIDA_RUN_TO_EXIT


def build(tmp):
    exe = tmp / TARGET
    subprocess.run(["gcc", "-O2", "-g", "-no-pie", "-o", exe, BENCH / "targets" / f"{TARGET}.c"], check=True)
    return exe


def check_code(exe):
    """(warnings, the number of conditional branches in the executable):
    objdump's view of the code the rows measure."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(exe)], capture_output=True, text=True).stdout
    functions = dict(re.findall(r"^[0-9a-f]+ <(\w+)>:\n(.*?)(?=\n\n|\Z)", text, re.S | re.M))
    found = CONDITIONAL.findall(functions.get("hot", ""))
    warnings = []
    if found != HOT_BRANCHES:
        warnings.append(f"objdump: hot() has the conditional branches {', '.join(found) or 'none'}, not "
                        f"{', '.join(HOT_BRANCHES)}: the counts branch_heavy prints are wrong")
    return warnings, len(CONDITIONAL.findall(text))


def branch_counts(exe, keys):
    """(taken, not taken): hot()'s branches on *keys* keys, as the target reports them."""
    out = subprocess.run([str(exe), str(keys)], capture_output=True, text=True, check=True).stdout
    taken, nottaken = re.search(r"taken (\d+) nottaken (\d+)", out).groups()
    return int(taken), int(nottaken)


def rows_for(exe, syms, tmp, n, taken_per_key, notes):
    """The rows in table order, and {label: command} for the traced ones:
    the command that counts their events on CHECK_KEYS keys, printing
    "count C"."""
    dr_env = dict(os.environ, DYNAMORIO_EXE_PATH=str(exe), DYNAMORIO_OPTIONS="-code_api")
    slow = max(1, n // SLOW)

    def target(keys):
        return [str(exe), str(keys)]

    rows = [
        Row("native", target, n),
        Row(DR, target, n, env=dr_env, executable=str(DYNAMORIO)),
    ]
    counting = {}
    traced = {
        "unrelated": (n, None),
        "every branch": (slow, 2),
        "taken": (slow, taken_per_key),
        "once": (n, None),
    }
    if PROCESSTAP.is_file():
        for key, (work, events) in traced.items():
            name = key.replace(" ", "_")
            script, check = tmp / f"{name}.ptap", tmp / f"count-{name}.ptap"
            script.write_text(PROBES[key] + HANDLER)
            check.write_text(COUNTING.format(probe=PROBES[key]))
            rows.append(Row(LABELS[key], lambda w, s=script: [str(PROCESSTAP), "-q", str(s), "--", *target(w)],
                            work, events=events, event_name="branch"))
            counting[LABELS[key]] = [str(PROCESSTAP), "-q", str(check), "--", *target(CHECK_KEYS)]
    else:
        notes.append(f"ProcessTap rows skipped: {PROCESSTAP} not built (cargo build --release)")
    frida_python = python_with_frida()
    if frida_python:
        runner = tmp / "frida_runner.py"
        runner.write_text(FRIDA_RUNNER)
        hot, size = syms["hot"]

        def frida(keys):
            return [frida_python, str(runner), str(exe), hex(syms["main"][0]), hex(hot), hex(size), str(keys)]

        rows.append(Row(FRIDA, frida, slow, events=2, event_name="branch"))
        counting[FRIDA] = frida(CHECK_KEYS)
    else:
        notes.append("Frida not installed: `pip install frida` adds its row")
    return rows, counting


def check_counts(counting, wants):
    """({row label: error} for the counting commands that fail, warnings for
    the counts out of bounds). *wants*: {label: (least, most)}."""
    errors, warnings = {}, []
    for label, argv in counting.items():
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        counts = re.findall(r"^count (\d+)$", done.stdout, re.M)
        if done.returncode != 0 or not counts:
            errors[label] = f"exit status {done.returncode}: {first_line(done.stderr)}"
            continue
        count, (least, most) = int(counts[-1]), wants[label]
        if not least <= count <= most:
            expected = f"{least:,}" if least == most else f"{least:,} to {most:,}"
            warnings.append(f"{label}: counted {count:,} events on {CHECK_KEYS:,} keys, expected {expected}")
    return errors, warnings


GOALS = {
    LABELS["unrelated"]: ("ratio", 1.03),
    LABELS["every branch"]: ("per event", 250),
    LABELS["once"]: ("ratio", 1.2),
}


def report(rows, args, taken_per_key, in_executable):
    by = {row.label: row for row in rows}
    if by[DR].error:
        sys.exit(f"{DR} failed, so there is nothing to compare with: {by[DR].error}")
    dr, dr_best = by[DR].per_unit()
    print(f"\n{TARGET}: N keys partitioned in hot(), 2 conditional branches a key ({taken_per_key:.3f} taken);"
          f" median of {args.runs} interleaved runs (best: fastest runs)")
    print(f"conditional branches: {len(HOT_BRANCHES)} in hot(), {in_executable} in the executable (objdump)")
    print(f"{'':42}{'keys':>11}{'ns/key':>9}{'best':>8}{'x DR':>8}{'best':>8}{'ns/branch over DR':>18}{'best':>8}  goal")
    per_branch = {}
    for row in rows:
        if row.error:
            print(f"{row.label:42}  FAILED: {row.error}")
            continue
        med, best = row.per_unit()
        over = best_over = ""
        if row.events:
            per_branch[row.label] = ((med - dr) / row.events * 1e9, (best - dr_best) / row.events * 1e9)
            over, best_over = (f"{value:.1f}" for value in per_branch[row.label])
        line = (f"{row.label:42}{row.work:11}{med * 1e9:9.2f}{best * 1e9:8.2f}{med / dr:8.2f}{best / dr_best:8.2f}"
                f"{over:>18}{best_over:>8}")
        goal = GOALS.get(row.label)
        if goal:
            kind, bound = goal
            value = med / dr if kind == "ratio" else per_branch[row.label][0]
            line += f"  <= {bound}{'x' if kind == 'ratio' else ' ns'}: {'met' if value <= bound else 'MISSED'}"
        print(line)
    tap, frida = per_branch.get(LABELS["every branch"]), per_branch.get(FRIDA)
    if tap and frida and tap[0] > 0:
        ratio = frida[0] / tap[0]
        best = f"{frida[1] / tap[1]:.1f}x" if tap[1] > 0 else "n/a"
        print(f"{'Frida / ProcessTap (every branch)':42}{'':11}{'':9}{'':8}{'':8}{'':8}{ratio:17.1f}x{best:>8}"
              f"  >= 3x: {'met' if ratio >= 3 else 'MISSED'}")
    print("(ns/key: time of the keys alone, the run with none subtracted; x DR compares those;")
    print(" ns/branch over DR: the row's ns/key less DynamoRIO's, per branch that calls its handler)")


def main():
    global PROCESSTAP
    args = parse_arguments(__doc__, {
        "--n": (f"keys for the rows without a handler per branch, which get N/{SLOW}", 2_000_000_000, 40_000_000),
    })
    PROCESSTAP = args.processtap
    if not DYNAMORIO.is_file() or not shutil.which("gcc") or not shutil.which("objdump"):
        sys.exit("build first (scripts/bootstrap) and install gcc and binutils")
    notes = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        exe = build(tmp)
        warnings, in_executable = check_code(exe)
        for warning in warnings:
            print(f"[!] {warning}", file=sys.stderr)
        slow = max(1, args.n // SLOW)
        taken_per_key = (branch_counts(exe, slow)[0] - branch_counts(exe, 0)[0]) / slow
        rows, counting = rows_for(exe, symbols(exe), tmp, args.n, taken_per_key, notes)
        taken, nottaken = branch_counts(exe, CHECK_KEYS)
        errors, warnings = check_counts(counting, {
            LABELS["unrelated"]: (0, 0),
            LABELS["every branch"]: (taken + nottaken, taken + nottaken),
            LABELS["taken"]: (taken, taken),
            LABELS["once"]: (1, 2 * in_executable),
            FRIDA: (taken + nottaken, taken + nottaken),
        })
        for warning in warnings:
            print(f"[!] {warning}", file=sys.stderr)
        for row in rows:
            if row.label in errors:
                row.error = errors[row.label]
                print(f"[!] {row.label}: FAILED, left out: {row.error}", file=sys.stderr)
        measure(rows, args.runs)
    report(rows, args, taken_per_key, in_executable)
    for note in notes:
        print(f"({note})")


if __name__ == "__main__":
    main()
