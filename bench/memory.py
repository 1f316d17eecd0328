#!/usr/bin/env python3
"""Overhead of memory probes, measured side by side in one run.

    /usr/bin/python3.11 bench/memory.py [--n ROUNDS] [--hits H] [--runs R] [--quick]
                                               [--processtap PATH]

The target (bench/targets/memory_walk.c, built here with gcc -O2 -no-pie,
its accesses checked with objdump) does N rounds of a pointer walk over a
1 MiB global array (5 accesses a step, 2 of them RIP-relative to the global
`counter`) and a 64 KiB copy with explicit SSE loads and stores, then writes
the global word `hits` H times. It never touches the global `watched` nor
the 160,000-byte global `decoy`, each on pages of their own.

Rows, all run interleaved (one run of every row in turn, R times), each once
with its work and once without (N = 0 or H = 0), so start-up drops out: the
time of the work alone is the difference. Slow rows get less work, scaled
back per round or per hit: the Python handler on every access N/200
rounds, valgrind none N/8, lackey N/2000, gdb H/200 hits.

Throughput (N rounds; per round, ratio to DynamoRIO with no client):
  native; DynamoRIO with no client (libdynamorio.so run as the target, as
  bench/functions.py does); ProcessTap with an empty memory_write handler
  on the 4-byte `watched`, (a) `memory_address >> symbol_range("watched")`,
  (b) an AddressSet of 1 range (`watched`) and of 10,000 (9,999 4-byte
  ranges 16 bytes apart in `decoy`, plus `watched`), filled at top level;
  ProcessTap with an empty handler on every read and write of sse_copy()
  (ns per access over DynamoRIO; accesses counted by valgrind's lackey,
  or from the code when valgrind is missing); valgrind --tool=none and
  --tool=lackey --trace-mem=yes (log to /dev/null; ns per traced access).

Per hit (H writes of `hits`, ns per write over DynamoRIO with no client):
  ProcessTap, an empty memory_write handler on `hits`; gdb with a hardware
  watchpoint `watch -l hits` whose commands are `silent` and `continue`.

Before timing, each ProcessTap row runs once with a handler that counts
(the counts must be 0 on `watched`, 1,000 of 1,000 on `hits`, lackey's
count on sse_copy() over 3 rounds; a wrong count is warned about):
a row whose tracer fails is reported with the first line of its stderr
and left out; the others go on. A row whose tool is not installed is
skipped with a note. Goals (issue 12 item 7) are printed beside the rows.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RELEASE = BENCH.parent / "target" / "release"
PROCESSTAP = RELEASE / "processtap"
DYNAMORIO = RELEASE / "dynamorio" / "lib64" / "release" / "libdynamorio.so"
TARGET = "memory_walk"
DR = "DynamoRIO, no client"

# One 64 KiB block of 16-byte loads and stores, and sse_copy's ret: the
# count from the code, used when lackey cannot count them.
SSE_COPY_ACCESSES = 65536 // 16 * 2 + 1
DECOY_RANGES = 9_999

# Probe scripts: {body} is the handler's body; the counting variant used
# for the check prints the count at exit.
HANDLER = "def on_access(ctx):\n    {body}\n"
COUNTING = "n = 0\n{probes}def on_access(ctx):\n    global n\n    n += 1\n@process_exit\ndef done(ctx):\n    print('count', n)\n"
PROBES = {
    "(a) global": '@memory_write(memory_address >> symbol_range("watched"))\n',
    "(b) 1": ("watched_set = AddressSet()\n"
              'w = symbol_range("watched")\n'
              "watched_set.add(w.start, 4)\n"
              "@memory_write(memory_address >> watched_set)\n"),
    "(b) 10000": ("watched_set = AddressSet()\n"
                  'd = symbol_range("decoy")\n'
                  f"for i in range({DECOY_RANGES}):\n"
                  "    watched_set.add(d.start + 16 * i, 4)\n"
                  'w = symbol_range("watched")\n'
                  "watched_set.add(w.start, 4)\n"
                  f"assert len(watched_set) == {DECOY_RANGES + 1}, len(watched_set)\n"
                  "@memory_write(memory_address >> watched_set)\n"),
    "every access": ('@memory_read(function_name == "sse_copy")\n'
                     '@memory_write(function_name == "sse_copy")\n'),
    "hits": '@memory_write(memory_address >> symbol_range("hits"))\n',
}

GDB_WATCH = """set pagination off
set confirm off
break main
run
watch -l hits
{counter}commands
silent
{count}continue
end
continue
{report}"""


class Row:
    """A command to time: argv(work) gives the command for an amount of
    work (rounds or hits); *work* is the amount timed, against argv(0).
    *events* is the number of events one unit of work makes for the
    per-event column (None: no such column)."""

    def __init__(self, label, argv, work, env=None, executable=None, events=None, event_name=""):
        self.label, self.argv, self.work = label, argv, work
        self.env, self.executable = env, executable
        self.events, self.event_name = events, event_name
        self.with_work, self.without = [], []
        self.error = None

    def run(self, work):
        argv = self.argv(work)
        start = time.perf_counter()
        done = subprocess.run(argv, executable=self.executable, env=self.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0 and not self.label.startswith("gdb"):
            raise RuntimeError(f"exit status {done.returncode}: {first_line(done.stderr)}")
        return elapsed

    def per_unit(self):
        """(median, best) seconds per unit of work: the median of the
        differences, and the fastest run with work less the fastest without."""
        slopes = [w - o for w, o in zip(self.with_work, self.without)]
        return (statistics.median(slopes) / self.work, (min(self.with_work) - min(self.without)) / self.work)


def first_line(stderr):
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    lines = [line for line in text.splitlines() if line.strip()]
    # A Python traceback's first line says nothing; its last says what failed.
    if lines and lines[0].startswith("Traceback"):
        return f"{lines[-1].strip()} (traceback)"
    return lines[0].strip() if lines else "(no stderr)"


def build(tmp):
    exe = tmp / TARGET
    subprocess.run(["gcc", "-O2", "-g", "-no-pie", "-o", exe, BENCH / "targets" / f"{TARGET}.c"], check=True)
    return exe


def symbols(exe):
    """{name: (address, size)} of the executable's symbols (non-PIE: these
    are the run-time addresses)."""
    out = subprocess.run(["nm", "-S", str(exe)], capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            table[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    return table


def check_code(exe):
    """Warnings if gcc did not make the accesses the benchmark is about."""
    if not shutil.which("objdump"):
        return ["objdump not installed: the target's accesses are not checked"]
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(exe)], capture_output=True, text=True).stdout
    functions = dict(re.findall(r"^[0-9a-f]+ <(\w+)>:\n(.*?)(?=\n\n|\Z)", text, re.S | re.M))
    wants = {
        "walk": [(r"\(%rip\).*<counter>", "a RIP-relative access to counter"),
                 (r"add\s+%\w+,0x8\(%r\w+\)", "an add to p->val in memory")],
        "sse_copy": [(r"movdqu\s+\(", "a 16-byte SSE load"), (r"mov[ua]ps\s+%xmm\d+,\(", "a 16-byte SSE store")],
        "hit": [(r"mov\s+%\w+,0x\w+\(%rip\).*<hits>", "a store to hits")],
    }
    warnings = []
    for function, patterns in wants.items():
        body = functions.get(function, "")
        for pattern, what in patterns:
            if not re.search(pattern, body):
                warnings.append(f"objdump: {function}() has no {what}: the rows measure something else")
    for name in ("watched", "decoy"):
        if re.search(rf"<{name}[+>]", text):
            warnings.append(f"objdump: the code refers to {name}, which the benchmark assumes untouched")
    return warnings


def lackey_counts(exe, syms, tmp, rounds):
    """(accesses per round in the whole program, in sse_copy), counted by
    lackey --trace-mem=yes over `rounds` rounds less over none: a load or
    store is one access, a modify (M) two (a read and a write, as memory
    probes count them). None when valgrind is missing or fails."""
    start, size = syms["sse_copy"]

    def count(n):
        log = tmp / f"lackey-{n}.log"
        done = subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={log}", str(exe), str(n), "0"],
                              capture_output=True)
        if done.returncode != 0:
            return None
        total = inside = 0
        here = False
        with open(log) as trace:
            for line in trace:
                if line.startswith("I"):
                    here = start <= int(line[3:].split(",")[0], 16) < start + size
                elif line[:2] in (" L", " S", " M"):
                    k = 2 if line[1] == "M" else 1
                    total += k
                    if here:
                        inside += k
        log.unlink()
        return total, inside

    if not shutil.which("valgrind"):
        return None
    some, none = count(rounds), count(0)
    if some is None or none is None:
        return None
    return (some[0] - none[0]) / rounds, (some[1] - none[1]) / rounds


def rows_for(exe, tmp, n, hits, per_round, sse_accesses, notes):
    """The rows in table order."""
    dr_env = dict(os.environ, DYNAMORIO_EXE_PATH=str(exe), DYNAMORIO_OPTIONS="-code_api")

    def target(rounds, h):
        return [str(exe), str(rounds), str(h)]

    rows = [
        Row("native", lambda w: target(w, 0), n),
        Row(DR, lambda w: target(w, 0), n, env=dr_env, executable=str(DYNAMORIO)),
    ]
    traced = {
        "(a) global": ("ProcessTap (a) write probe, symbol_range", n, None),
        "(b) 1": ("ProcessTap (b) AddressSet of 1", n, None),
        "(b) 10000": ("ProcessTap (b) AddressSet of 10,000", n, None),
        # Every access into Python: about 1 us each, so far fewer rounds.
        "every access": ("ProcessTap, empty handler, sse_copy", max(1, n // 200), sse_accesses),
    }
    if PROCESSTAP.is_file():
        for key, (label, work, events) in traced.items():
            script = tmp / f"{key.replace(' ', '_').strip('()')}.ptap"
            script.write_text(PROBES[key] + HANDLER.format(body="pass"))
            rows.append(Row(label, lambda w, s=script: [str(PROCESSTAP), "-q", str(s), "--", *target(w, 0)],
                            work, events=events, event_name="access"))
    else:
        notes.append(f"ProcessTap rows skipped: {PROCESSTAP} not built (cargo build --release)")
    if shutil.which("valgrind"):
        rows.append(Row("valgrind --tool=none", lambda w: ["valgrind", "-q", "--tool=none", *target(w, 0)], max(1, n // 8)))
        rows.append(Row("valgrind lackey --trace-mem=yes",
                        lambda w: ["valgrind", "-q", "--tool=lackey", "--trace-mem=yes", "--log-file=/dev/null", *target(w, 0)],
                        max(1, n // 2000), events=per_round, event_name="access"))
    else:
        notes.append("valgrind not installed: its rows are skipped (apt-get install valgrind)")
    # Per hit: H writes of `hits`, no rounds.
    rows.append(Row(f"{DR} (per hit)", lambda w: target(0, w), hits, env=dr_env, executable=str(DYNAMORIO),
                    events=1, event_name="hit"))
    if PROCESSTAP.is_file():
        script = tmp / "hits.ptap"
        script.write_text(PROBES["hits"] + HANDLER.format(body="pass"))
        rows.append(Row("ProcessTap, empty handler per hit", lambda w, s=script: [str(PROCESSTAP), "-q", str(s), "--", *target(0, w)],
                        hits, events=1, event_name="hit"))
    if shutil.which("gdb"):
        script = tmp / "watch.gdb"
        script.write_text(GDB_WATCH.format(counter="", count="", report=""))
        rows.append(Row("gdb watch -l, silent+continue", lambda w, s=script: ["gdb", "-nx", "-q", "-batch", "-x", str(s), "--args", *target(0, w)],
                        max(1, hits // 200), events=1, event_name="hit"))
    else:
        notes.append("gdb not installed: its row is skipped (apt-get install gdb)")
    return rows


def check_processtap(exe, tmp, expected):
    """{row label: error} for the ProcessTap rows whose counting variant
    fails or counts wrong. *expected*: {probe key: (argv tail, count or None)}."""
    labels = {"(a) global": "ProcessTap (a) write probe, symbol_range", "(b) 1": "ProcessTap (b) AddressSet of 1",
              "(b) 10000": "ProcessTap (b) AddressSet of 10,000", "every access": "ProcessTap, empty handler, sse_copy",
              "hits": "ProcessTap, empty handler per hit"}
    errors, warnings = {}, []
    for key, (tail, want) in expected.items():
        script = tmp / f"count-{key.replace(' ', '_').strip('()')}.ptap"
        script.write_text(COUNTING.format(probes=PROBES[key]))
        done = subprocess.run([str(PROCESSTAP), "-q", str(script), "--", str(exe), *tail], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        counts = re.findall(r"^count (\d+)$", done.stdout, re.M)
        if done.returncode != 0 or not counts:
            errors[labels[key]] = f"exit status {done.returncode}: {first_line(done.stderr)}"
        elif want is not None and int(counts[-1]) != want:
            warnings.append(f"{labels[key]}: the counting handler saw {counts[-1]} events, expected {want}")
    return errors, warnings


def check_gdb(exe, tmp, hits):
    """None if gdb's watchpoint is a hardware one and sees every write, else why not."""
    script = tmp / "watch-count.gdb"
    script.write_text(GDB_WATCH.format(counter="set $n = 0\n", count="set $n = $n + 1\n", report='printf "gdb-hits %d\\n", $n\n'))
    done = subprocess.run(["gdb", "-nx", "-q", "-batch", "-x", str(script), "--args", str(exe), "0", str(hits)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if "Hardware watchpoint" not in done.stdout:
        return f"no hardware watchpoint: {first_line(done.stdout + done.stderr)}"
    seen = re.findall(r"gdb-hits (\d+)", done.stdout)
    if not seen or int(seen[0]) != hits:
        return f"the watchpoint saw {seen[0] if seen else 'no'} writes of {hits}"
    return None


def measure(rows, runs):
    for run in range(runs):
        for row in rows:
            if row.error:
                continue
            try:
                row.with_work.append(row.run(row.work))
                row.without.append(row.run(0))
            except RuntimeError as error:
                row.error = f"run {run + 1}: {error}"
        print(f"  run {run + 1} of {runs} done", file=sys.stderr)


GOALS = {
    "ProcessTap (a) write probe, symbol_range": ("ratio", 1.05),
    "ProcessTap (b) AddressSet of 1": ("ratio", 1.5),
    "ProcessTap (b) AddressSet of 10,000": ("ratio", 1.7),
    "ProcessTap, empty handler, sse_copy": ("per event", 300),
}


def report(rows, args, per_round, sse_accesses, counted_by):
    by = {row.label: row for row in rows}
    for label in (DR, f"{DR} (per hit)"):
        if by[label].error:
            sys.exit(f"{label} failed, so there is nothing to compare with: {by[label].error}")
    dr, dr_best = by[DR].per_unit()
    print(f"\n{TARGET}: N rounds of a 1 MiB pointer walk (4,096 steps) and a 64 KiB SSE copy;"
          f" median of {args.runs} interleaved runs (best: fastest runs)")
    print(f"accesses per round: {per_round:,.0f} in all, {sse_accesses:,.0f} in sse_copy ({counted_by})")
    head = f"{'':42}{'rounds':>8}{'us/round':>10}{'best':>10}{'x DR':>8}{'best':>8}{'ns/access over DR':>18}{'best':>8}  goal"
    print(head)
    for row in rows:
        if "per hit" in row.label or row.label.startswith("gdb"):
            continue
        if row.error:
            print(f"{row.label:42}  FAILED: {row.error}")
            continue
        med, best = row.per_unit()
        over = best_over = ""
        if row.events:
            over = f"{(med - dr) / row.events * 1e9:18.1f}"
            best_over = f"{(best - dr_best) / row.events * 1e9:8.1f}"
        line = (f"{row.label:42}{row.work:8}{med * 1e6:10.1f}{best * 1e6:10.1f}{med / dr:8.2f}{best / dr_best:8.2f}"
                f"{over:>18}{best_over:>8}")
        goal = GOALS.get(row.label)
        if goal:
            kind, bound = goal
            value = med / dr if kind == "ratio" else (med - dr) / row.events * 1e9
            line += f"  <= {bound}{'x' if kind == 'ratio' else ' ns'}: {'met' if value <= bound else 'MISSED'}"
        print(line)
    print("(us/round: time of the rounds alone, the run with none subtracted; x DR compares those;")
    print(" ns/access over DR: the row's us/round less DynamoRIO's, per access it handles: sse_copy's, or lackey's all)")

    print(f"\nper write of `hits` (H = {args.hits:,}; gdb gets H/200), ns per hit over DynamoRIO with no client")
    print(f"{'':42}{'hits':>8}{'ns/hit':>10}{'best':>9}  goal")
    base = by[f"{DR} (per hit)"]
    base_med, base_best = base.per_unit()
    per_hit = {}
    for row in rows:
        if not ("per hit" in row.label or row.label.startswith("gdb")):
            continue
        if row.error:
            print(f"{row.label:42}  FAILED: {row.error}")
            continue
        med, best = row.per_unit()
        if row is base:
            print(f"{row.label:42}{row.work:8}{med * 1e9:10.1f}{best * 1e9:9.1f}  (the store itself)")
            continue
        per_hit[row.label] = ((med - base_med) * 1e9, (best - base_best) * 1e9)
        print(f"{row.label:42}{row.work:8}{per_hit[row.label][0]:10.1f}{per_hit[row.label][1]:9.1f}")
    tap, gdb = per_hit.get("ProcessTap, empty handler per hit"), per_hit.get("gdb watch -l, silent+continue")
    if tap and gdb and tap[0] > 0:
        ratio = gdb[0] / tap[0]
        best = f"{gdb[1] / tap[1]:.0f}x" if tap[1] > 0 else "n/a"
        print(f"{'gdb / ProcessTap per hit':42}{'':8}{ratio:9.0f}x{best:>9}  >= 100x: {'met' if ratio >= 100 else 'MISSED'}")


def parse_arguments(doc, work):
    """The command line of a benchmark: --runs, --quick and --processtap,
    and the amounts of work *work* names, ``{option: (help, default,
    default with --quick)}``, filled in."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for option, (text, default, quick) in work.items():
        parser.add_argument(option, type=int, help=f"{text} (default {default:,}; {quick:,} with --quick)")
    parser.add_argument("--runs", type=int, help="interleaved runs (default 5; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small work, one run")
    parser.add_argument("--processtap", type=Path, default=PROCESSTAP, help="the launcher to measure (default: this checkout's)")
    args = parser.parse_args()
    for option, (_, default, quick) in work.items():
        name = option.lstrip("-")
        setattr(args, name, getattr(args, name) or (quick if args.quick else default))
    args.runs = args.runs or (1 if args.quick else 5)
    return args


def main():
    global PROCESSTAP
    args = parse_arguments(__doc__, {
        "--n": ("rounds for the throughput rows", 40_000, 2_000),
        "--hits": ("writes of `hits` for the per-hit rows", 1_000_000, 40_000),
    })
    PROCESSTAP = args.processtap
    if not DYNAMORIO.is_file() or not shutil.which("gcc"):
        sys.exit("build first (scripts/bootstrap) and install gcc")
    notes = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        exe = build(tmp)
        syms = symbols(exe)
        for warning in check_code(exe):
            print(f"[!] {warning}", file=sys.stderr)
        watched, counter = syms["watched"][0], syms["counter"][0]
        print(f"watched at {watched:#x} (page {watched >> 12:#x}), counter at {counter:#x}, "
              f"decoy at {syms['decoy'][0]:#x}+{syms['decoy'][1]:#x}, hits at {syms['hits'][0]:#x}")
        lackey_rounds = 2
        counted = lackey_counts(exe, syms, tmp, lackey_rounds)
        if counted:
            per_round, sse_accesses = counted
            counted_by = f"lackey, {lackey_rounds} rounds less none"
        else:
            per_round, sse_accesses = 4096 * 5 + 1 + SSE_COPY_ACCESSES + 2, SSE_COPY_ACCESSES
            counted_by = "from the code: lackey unavailable"
        rows = rows_for(exe, tmp, args.n, args.hits, per_round, sse_accesses, notes)
        if PROCESSTAP.is_file():
            check_rounds, check_hits = 3, 1000
            errors, warnings = check_processtap(exe, tmp, {
                "(a) global": ([str(check_rounds), "0"], 0), "(b) 1": ([str(check_rounds), "0"], 0),
                "(b) 10000": ([str(check_rounds), "0"], 0),
                "every access": ([str(check_rounds), "0"], round(sse_accesses * check_rounds)),
                "hits": (["0", str(check_hits)], check_hits)})
            for warning in warnings:
                print(f"[!] {warning}", file=sys.stderr)
            for row in rows:
                if row.label in errors:
                    row.error = errors[row.label]
                    print(f"[!] {row.label}: FAILED, left out: {row.error}", file=sys.stderr)
        for row in rows:
            if row.label.startswith("gdb"):
                why = check_gdb(exe, tmp, 1000)
                if why:
                    row.error = why
                    print(f"[!] {row.label}: left out: {why}", file=sys.stderr)
        measure(rows, args.runs)
    report(rows, args, per_round, sse_accesses, counted_by)
    for note in notes:
        print(f"({note})")


if __name__ == "__main__":
    main()
