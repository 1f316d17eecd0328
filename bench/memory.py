#!/usr/bin/env python3
"""Overhead of memory probes, measured side by side in one run.

    /usr/bin/python3.11 bench/memory.py [--rounds R] [--hits H] [--runs N]

The target (bench/targets/memory_heavy.c, built here with gcc -O2) walks a
1 MiB array through pointers and copies it with SSE loads and stores, R
rounds; then writes the global `hits` H times from hit_loop(). Rows, run
interleaved so machine noise hits them alike:

- native; DynamoRIO with no client;
- ProcessTap with a memory_write probe on the 4-byte global `watched`,
  which the loop never touches: (a) as `symbol_range("watched")` (compared
  inline), (b) as an AddressSet of 1 range and of 10,000 (the page map);
- valgrind --tool=none and --tool=lackey --trace-mem=yes (to /dev/null),
  where installed.

Throughput rows are the time of the rounds alone (the same command with no
rounds is subtracted). Per event, each measured as (time with H hits - time with none) / H:

- ProcessTap, an empty Python handler on each write of `hits`, over
  DynamoRIO's own cost of the same loop;
- gdb with a hardware watchpoint on `hits` (`watch -l`, commands: silent,
  continue), where installed.

Goals (issue 12): (a) <= 1.05x DynamoRIO, (b) <= 1.5x with 1 range and
<= 1.7x with 10,000, an empty handler <= 300 ns per access over DynamoRIO,
a hit >= 100x cheaper than gdb's.
"""

import argparse
import os
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

NOTHING_GLOBAL = 'w = symbol_range("watched")\n@memory_write(memory_address >> w)\ndef never(ctx):\n    pass\n'
NOTHING_SET = (
    "heap = AddressSet()\n"
    'heap.add(symbol_range("watched").start, 4)\n'
    "for i in range({extra}):\n"
    "    heap.add(0x100000000000 + i * 4096, 8)   # unmapped: never touched\n"
    "@memory_write(memory_address >> heap)\n"
    "def never(ctx):\n    pass\n"
)
EACH_HIT = 'h = symbol_range("hits")\n@memory_write(memory_address >> h)\ndef hit(ctx):\n    pass\n'
GDB_SCRIPT = "set pagination off\nbreak main\nrun\nwatch -l *(long *)&hits\ncommands\nsilent\ncontinue\nend\ncontinue\nquit\n"


#: lackey runs this fraction of the rounds (see main).
LACKEY_SHARE = 100


def build(tmp):
    exe = tmp / "memory_heavy"
    subprocess.run(["gcc", "-O2", "-o", exe, BENCH / "targets" / "memory_heavy.c"], check=True)
    return exe


def timed(argv, env=None, executable=None):
    start = time.perf_counter()
    done = subprocess.run(argv, executable=executable, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.decode(errors='replace').strip()[:300]}")
    return elapsed


def commands(exe, tmp, rounds, hits):
    """label -> (function of (rounds, hits) giving the argv, env, executable)."""
    dr_env = dict(os.environ, DYNAMORIO_EXE_PATH=str(exe), DYNAMORIO_OPTIONS="-code_api")
    scripts = {
        "ProcessTap (a) global, compared inline": NOTHING_GLOBAL,
        "ProcessTap (b) AddressSet of 1": NOTHING_SET.format(extra=0),
        "ProcessTap (b) AddressSet of 10,000": NOTHING_SET.format(extra=9999),
        "ProcessTap, empty handler per hit": EACH_HIT,
    }
    rows = {
        "native": lambda r, h: ([str(exe), str(r), str(h)], None, None),
        "DynamoRIO, no client": lambda r, h: ([str(exe), str(r), str(h)], dr_env, str(DYNAMORIO)),
    }
    for label, text in scripts.items():
        path = tmp / (label.split()[1] + str(len(rows)) + ".ptap")
        path.write_text(text)
        rows[label] = lambda r, h, path=path: ([str(PROCESSTAP), "-q", str(path), "--", str(exe), str(r), str(h)], None, None)
    if shutil.which("valgrind"):
        rows["valgrind --tool=none"] = lambda r, h: (["valgrind", "-q", "--tool=none", str(exe), str(r), str(h)], None, None)
        rows["valgrind lackey --trace-mem=yes"] = lambda r, h: (
            ["sh", "-c", f"valgrind -q --tool=lackey --trace-mem=yes --log-file=/dev/null {exe} {r} {h}"], None, None)
    if shutil.which("gdb"):
        gdb = tmp / "watch.gdb"
        gdb.write_text(GDB_SCRIPT)
        rows["gdb, hardware watchpoint per hit"] = lambda r, h: (["gdb", "-q", "-batch", "-x", str(gdb), "--args", str(exe), str(r), str(h)], None, None)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000, help="array rounds for the throughput rows")
    parser.add_argument("--hits", type=int, default=200_000, help="writes of `hits` for the per-event rows")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not PROCESSTAP.is_file() or not DYNAMORIO.is_file():
        sys.exit("build first: cargo build --release")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        exe = build(tmp)
        rows = commands(exe, tmp, args.rounds, args.hits)
        per_hit_rows = {"DynamoRIO, no client", "ProcessTap, empty handler per hit", "gdb, hardware watchpoint per hit"}
        throughput_rows = [k for k in rows if k not in ("ProcessTap, empty handler per hit", "gdb, hardware watchpoint per hit")]
        # gdb is slow per hit: it gets fewer, scaled back when reported.
        gdb_hits = max(1, args.hits // 100)
        times = {k: [] for k in rows}
        hit_times = {k: ([], []) for k in per_hit_rows if k in rows}
        for _ in range(args.runs):
            for label in throughput_rows:
                # lackey takes ~3 us an access: it runs 1/LACKEY_SHARE of
                # the rounds, its time scaled up.
                # Start-up drops out: the same command with no rounds is
                # subtracted.
                share = LACKEY_SHARE if "lackey" in label else 1
                argv, env, executable = rows[label](max(1, args.rounds // share), 0)
                full = timed(argv, env, executable)
                argv, env, executable = rows[label](0, 0)
                times[label].append((full - timed(argv, env, executable)) * share)
            for label, (with_hits, without) in hit_times.items():
                n = gdb_hits if label.startswith("gdb") else args.hits
                argv, env, executable = rows[label](0, n)
                with_hits.append(timed(argv, env, executable))
                argv, env, executable = rows[label](0, 0)
                without.append(timed(argv, env, executable))

    dr = times["DynamoRIO, no client"]
    dr_median, dr_best = statistics.median(dr), min(dr)
    goals = {
        "ProcessTap (a) global, compared inline": "<= 1.05x",
        "ProcessTap (b) AddressSet of 1": "<= 1.5x",
        "ProcessTap (b) AddressSet of 10,000": "<= 1.7x",
    }
    print(f"memory_heavy {args.rounds} rounds (1 MiB array walk + SSE copy), {args.runs} runs interleaved;")
    print("seconds of the rounds alone (a run with none subtracted); lackey ran 1/%d of them, scaled" % LACKEY_SHARE)
    print(f"{'row':42} {'median s':>9} {'best s':>8} {'x DR med':>9} {'x DR best':>10}  goal")
    for label in throughput_rows:
        v = times[label]
        print(f"{label:42} {statistics.median(v):9.3f} {min(v):8.3f} {statistics.median(v) / dr_median:9.2f} {min(v) / dr_best:10.2f}  {goals.get(label, '')}")

    def per_event(label, n):
        with_hits, without = hit_times[label]
        return ((statistics.median(with_hits) - statistics.median(without)) / n * 1e9,
                (min(with_hits) - min(without)) / n * 1e9)

    print(f"\nper write of `hits` ({args.hits} writes; gdb {gdb_hits}), ns: median / best")
    base = per_event("DynamoRIO, no client", args.hits)
    tap = per_event("ProcessTap, empty handler per hit", args.hits)
    print(f"{'DynamoRIO, no client':42} {base[0]:9.1f} {base[1]:8.1f}")
    print(f"{'ProcessTap, empty handler, over DR':42} {tap[0] - base[0]:9.1f} {tap[1] - base[1]:8.1f}  goal <= 300 ns")
    if "gdb, hardware watchpoint per hit" in hit_times:
        gdb = per_event("gdb, hardware watchpoint per hit", gdb_hits)
        print(f"{'gdb, hardware watchpoint':42} {gdb[0]:9.1f} {gdb[1]:8.1f}")
        print(f"{'gdb / ProcessTap per hit':42} {gdb[0] / max(tap[0] - base[0], 1):9.0f}x {gdb[1] / max(tap[1] - base[1], 1):7.0f}x  goal >= 100x")


if __name__ == "__main__":
    main()
