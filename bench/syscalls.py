#!/usr/bin/env python3
"""Overhead of system-call probes, measured side by side in one run.

    /usr/bin/python3.11 bench/syscalls.py [--rounds N] [--runs R]

One target (bench/targets/syscall_heavy.c, built here with gcc, and with
gcc -m32 for the 32-bit x86 table when scripts/build-i686 has built the
i686 client) makes N rounds of getppid() and a one-byte write to
/dev/null: 2N system calls.
Rows: native; DynamoRIO with no client; ProcessTap with a probe on a system
call the target never makes (only the requested system calls are
intercepted, so this should cost next to nothing); ProcessTap with an empty
Python handler at the entry and at the exit of every system call; and, as a
peer, `strace -f -o /dev/null`, unpinned and pinned to one CPU with
`taskset -c 0` (strace's tracer and tracee ping-pong through the kernel at
every call; on one CPU they do so without cross-CPU wake-ups).

As in bench/functions.py, runs are interleaved so machine noise hits all
rows alike, and each row runs with N rounds and with none, so that start-up
drops out: the table shows the median time of the system calls alone, its
ratio to native and to DynamoRIO with no client, and the ns per system call.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from functions import BENCH, CHEAP_ROW_FACTOR, DYNAMORIO, RELEASE, dynamorio_for, i686_missing, measure

SCRIPTS = {
    "ProcessTap, probe on an unrelated call": (
        '@syscall_entry(syscall_name == "mknod")\ndef never(ctx):\n    pass\n'
    ),
    "ProcessTap, handler on every call": (
        "@syscall_entry()\n@syscall_exit()\ndef on_call(ctx):\n    pass\n"
    ),
    # Counted by the code before each `syscall` that shows its number.
    "ProcessTap, count=\"syscall\" (every call)": 'made = syscall_entry(count="syscall")\n',
}

STRACE = ["strace", "-f", "-o", "/dev/null"]


def rows_for(exe, rounds, tmp):
    """The commands to compare, in table order; the last argument of each
    is the number of rounds."""
    bare_env = dict(os.environ, DYNAMORIO_EXE_PATH=str(exe), DYNAMORIO_OPTIONS="-code_api")
    many = rounds * CHEAP_ROW_FACTOR
    rows = {
        "native": ([str(exe), str(many)], None),
        "DynamoRIO, no client": ([str(exe), str(many)], bare_env),
    }
    for label, text in SCRIPTS.items():
        script = Path(tmp) / f"syscalls-{len(rows)}.ptap"
        script.write_text(text)
        n = many if "unrelated" in label else rounds
        rows[label] = ([str(RELEASE / "processtap"), "-q", str(script), "--", str(exe), str(n)], None)
    if shutil.which("strace"):
        rows["strace -f (peer)"] = ([*STRACE, str(exe), str(rounds)], None)
        if shutil.which("taskset"):
            rows["taskset -c 0 strace -f (peer)"] = (["taskset", "-c", "0", *STRACE, str(exe), str(rounds)], None)
    return rows


def failing(rows):
    """{label: error} of the rows whose command fails with one round."""
    errors = {}
    for label, (argv, env) in rows.items():
        executable = str(dynamorio_for(env["DYNAMORIO_EXE_PATH"])) if env and "DYNAMORIO_EXE_PATH" in env else None
        completed = subprocess.run([*argv[:-1], "1"], executable=executable, env=env, capture_output=True, text=True)
        if completed.returncode != 0:
            errors[label] = f"exit status {completed.returncode}: {completed.stderr.strip()[-300:]}"
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not DYNAMORIO.is_file() or not shutil.which("gcc"):
        sys.exit("build first (scripts/bootstrap) and install gcc")
    i686_why_not = i686_missing()
    with tempfile.TemporaryDirectory() as tmp:
        for m32 in (False, True) if i686_why_not is None else (False,):
            exe = Path(tmp) / ("syscall_heavy_m32" if m32 else "syscall_heavy")
            subprocess.run(["gcc", "-O2", "-g", *(["-m32"] if m32 else []), "-o", exe, BENCH / "targets" / "syscall_heavy.c"], check=True)
            rows = rows_for(exe, args.rounds, tmp)
            errors = failing(rows)
            for label, error in errors.items():
                print(f"[!] {label}: left out, it fails ({error})", file=sys.stderr)
                del rows[label]
            total, slope, best = measure(rows, args.runs)
            report(rows, total, slope, best, args.runs, " (i686)" if m32 else "")
    if i686_why_not:
        print(f"\n(no i686 rows: {i686_why_not})")


def report(rows, total, slope, best, runs, arch):
    """Print one table."""
    # ns per system call: two system calls per round.
    per_call = {label: slope[label] / (2 * int(argv[-1])) * 1e9 for label, (argv, _) in rows.items()}
    best_per_call = {label: best[label] / (2 * int(argv[-1])) * 1e9 for label, (argv, _) in rows.items()}
    native, bare = per_call["native"], per_call["DynamoRIO, no client"]
    print(f"\nsyscall_heavy{arch}: rounds of getppid() + write(/dev/null, 1 byte), median of {runs} interleaved runs")
    print(f"{'':38}{'syscalls':>10}{'total s':>9}{'ns/syscall':>12}{'x native':>10}{'x DR':>8}{'best over DR':>14}")
    for label, (argv, _) in rows.items():
        ratio_native = per_call[label] / native if native > 0 else float("nan")
        ratio_bare = per_call[label] / bare if bare > 0 else float("nan")
        best_over = best_per_call[label] - best_per_call["DynamoRIO, no client"]
        print(f"{label:38}{2 * int(argv[-1]):>10}{total[label]:9.3f}{per_call[label]:12.1f}"
              f"{ratio_native:10.2f}{ratio_bare:8.2f}{best_over:14.1f}")
    print("(ns/syscall: time of the system calls alone, the run with none subtracted; the x columns compare those;")
    print(" best over DR: ns/syscall over DynamoRIO with no client, from the fastest runs with and without the calls)")
    if "strace -f (peer)" not in rows:
        print("(strace not installed: scripts/bootstrap installs it as a peer row)")


if __name__ == "__main__":
    main()
