#!/usr/bin/env python3
"""Overhead of function probes, measured side by side in one run.

    /usr/bin/python3.11 bench/functions.py [--calls N] [--runs R]

Two targets (built here with gcc): one that calls malloc/free N times, one
that calls a small function `work` N times; built again with gcc -m32 for
the 32-bit x86 rows (DynamoRIO 32-bit with no client, ProcessTap's i686
client) when scripts/build-i686 has built those. For each: native, DynamoRIO
with no client, ProcessTap with a probe that matches nothing, ProcessTap
with an empty Python handler on every call, and with a handler that counts
into a dict; Frida's Interceptor (empty onEnter) as a peer when the `frida`
Python package is installed. Runs are interleaved so machine noise hits all
rows alike. Each row runs twice, with N calls and with none, so start-up
(Python, the script) drops out: the table shows the median time of the N
calls alone, its ratio to DynamoRIO with no client, and the cost per call
in ns over DynamoRIO.
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
DYNAMORIO = RELEASE / "dynamorio" / "lib64" / "release" / "libdynamorio.so"
#: The 32-bit x86 DynamoRIO and client (scripts/build-i686), for the i686 rows.
DYNAMORIO32 = BENCH.parent / "target" / "dynamorio-home" / "lib32" / "release" / "libdynamorio.so"
CLIENT32 = BENCH.parent / "target" / "i686-unknown-linux-gnu" / "release" / "libptap.so"

NOTHING = 'function_entry(function_name == "no_such_function_anywhere")'
SCRIPTS = {
    "ProcessTap, probe matching nothing": f"@{NOTHING}\ndef never(ctx):\n    pass\n",
    "ProcessTap, empty handler": "@function_entry(function_name == {name!r})\ndef on_call(ctx):\n    pass\n",
    "ProcessTap, count into a dict": (
        "counts = {{}}\n"
        "@function_entry(function_name == {name!r})\n"
        "def on_call(ctx):\n"
        "    counts[ctx.tid] = counts.get(ctx.tid, 0) + 1\n"
    ),
    # Issue 15's goal: <= 30 ns per counted call over DynamoRIO alone. By
    # function: an inline increment; by thread: counted in the entry
    # callback, natively.
    "ProcessTap, count=\"function\"": "calls = function_entry(function_name == {name!r}, count=\"function\")\n",
    "ProcessTap, count=\"thread\"": "calls = function_entry(function_name == {name!r}, count=\"thread\")\n",
}

# The end of every Frida runner: let the spawned target run until it exits
# (the session detaches then).
FRIDA_RUN_TO_EXIT = r"""
done = []
session.on("detached", lambda *a: done.append(1))
frida.resume(pid)
while not done:
    time.sleep(0.01)
"""

FRIDA_RUNNER = r"""
import sys, time, frida
target, name, calls = sys.argv[1], sys.argv[2], sys.argv[3]
pid = frida.spawn([target, calls])
session = frida.attach(pid)
# Frida 17 has Module.getGlobalExportByName; older ones getExportByName(null, ..).
source = '''
let address = null;
try { address = Module.getGlobalExportByName(NAME); } catch (e) {}
if (address === null) { try { address = Module.getExportByName(null, NAME); } catch (e) {} }
if (address === null) { address = Process.mainModule.findSymbolByName(NAME); }
Interceptor.attach(address, { onEnter(args) {} });
'''
script = session.create_script(source.replace("NAME", repr(name)))
script.load()
""" + FRIDA_RUN_TO_EXIT


def build(tmp, m32=False):
    """Compile the two targets into *tmp* (with gcc -m32 for 32-bit x86);
    return {label: (path, probed function)}."""
    targets = {}
    for source, function in (("malloc_heavy.c", "malloc"), ("call_heavy.c", "work")):
        exe = Path(tmp) / (source[:-2] + ("_m32" if m32 else ""))
        subprocess.run(["gcc", "-O2", "-g", *(["-m32"] if m32 else []), "-o", exe, BENCH / "targets" / source], check=True)
        targets[source[:-2] + (" (i686)" if m32 else "")] = (exe, function)
    return targets


def i686_missing():
    """Why the i686 rows cannot run here, or None when they can."""
    if not DYNAMORIO32.is_file() or not CLIENT32.is_file():
        return "the 32-bit client is not built (scripts/build-i686)"
    probe = subprocess.run(["gcc", "-m32", "-x", "c", "-o", "/dev/null", "-"], input=b"int main(void){return 0;}",
                           capture_output=True)
    return None if probe.returncode == 0 else "gcc -m32 cannot build a program (Debian: gcc-multilib)"


def dynamorio_for(exe):
    """The libdynamorio.so of *exe*'s architecture (its ELF class)."""
    with open(exe, "rb") as file:
        return DYNAMORIO32 if file.read(5)[4:5] == b"\x01" else DYNAMORIO


def timed(argv, env=None):
    # Under DynamoRIO without our launcher, libdynamorio.so is executed with
    # the target's own argv, as early injection wants.
    executable = str(dynamorio_for(env["DYNAMORIO_EXE_PATH"])) if env and "DYNAMORIO_EXE_PATH" in env else None
    start = time.perf_counter()
    subprocess.run(argv, executable=executable, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


# Rows that enter no handler run this many times more calls, so that their
# few ns per call stand out of the noise of process start-up.
CHEAP_ROW_FACTOR = 10


def rows_for(exe, function, calls, tmp):
    """The commands to compare for one target, in table order; the last
    argument of each is the number of calls."""
    bare_env = dict(os.environ, DYNAMORIO_EXE_PATH=str(exe), DYNAMORIO_OPTIONS="-code_api")
    many = calls * CHEAP_ROW_FACTOR
    rows = {
        "native": ([str(exe), str(many)], None),
        "DynamoRIO, no client": ([str(exe), str(many)], bare_env),
    }
    for label, text in SCRIPTS.items():
        script = Path(tmp) / f"{exe.name}-{len(rows)}.ptap"
        script.write_text(text.format(name=function))
        n = many if "nothing" in label else calls
        rows[label] = ([str(RELEASE / "processtap"), "-q", str(script), "--", str(exe), str(n)], None)
    frida_python = python_with_frida()
    if frida_python and dynamorio_for(exe) == DYNAMORIO:
        runner = Path(tmp) / "frida_runner.py"
        runner.write_text(FRIDA_RUNNER)
        rows["Frida Interceptor, empty onEnter"] = ([frida_python, str(runner), str(exe), function, str(calls)], None)
    return rows


def python_with_frida():
    """A Python that can import frida: this one, or python3 on PATH."""
    for python in dict.fromkeys([sys.executable, shutil.which("python3")]):
        if python and subprocess.run([python, "-c", "import frida"], capture_output=True).returncode == 0:
            return python
    return None


def measure(rows, runs):
    """Run each row *runs* times, interleaved, with its last argument as it
    is and with "0". Returns ({label: median total s}, {label: median
    difference s}, {label: best difference s}): the difference is the time
    of the work alone; the best one is the fastest run with the work less
    the fastest without it (noise on these machines only ever adds)."""
    totals = {label: [] for label in rows}
    slopes = {label: [] for label in rows}
    emptys = {label: [] for label in rows}
    for _ in range(runs):
        for label, (argv, env) in rows.items():
            with_calls = timed(argv, env)
            without = timed([*argv[:-1], "0"], env)
            totals[label].append(with_calls)
            slopes[label].append(with_calls - without)
            emptys[label].append(without)
    total = {label: statistics.median(t) for label, t in totals.items()}
    slope = {label: statistics.median(t) for label, t in slopes.items()}
    best = {label: min(totals[label]) - min(emptys[label]) for label in rows}
    return total, slope, best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not DYNAMORIO.is_file() or not shutil.which("gcc"):
        sys.exit("build first (scripts/bootstrap) and install gcc")
    i686_why_not = i686_missing()
    with tempfile.TemporaryDirectory() as tmp:
        targets = build(tmp)
        if i686_why_not is None:
            targets.update(build(tmp, m32=True))
        for name, (exe, function) in targets.items():
            rows = rows_for(exe, function, args.calls, tmp)
            total, slope, best = measure(rows, args.runs)
            bare = "DynamoRIO, no client"
            print(f"\n{name}: calls of {function}, median of {args.runs} interleaved runs")
            print(f"{'':36}{'calls':>11}{'total s':>9}{'ns/call':>9}{'x DR':>8}{'ns/call over DR':>17}{'best':>7}")
            bare_n = int(rows[bare][0][-1])
            bare_per_call, bare_best = slope[bare] / bare_n * 1e9, best[bare] / bare_n * 1e9
            for label, (argv, _) in rows.items():
                n = int(argv[-1])
                per_call = slope[label] / n * 1e9
                over = per_call - bare_per_call
                best_over = best[label] / n * 1e9 - bare_best
                ratio = per_call / bare_per_call if bare_per_call > 0 else float("nan")
                print(f"{label:36}{n:>11}{total[label]:9.3f}{per_call:9.1f}{ratio:8.2f}{over:17.1f}{best_over:7.1f}")
            print("(ns/call: time of the calls alone, the run with none subtracted; x DR compares those;")
            print(" best: the same over DR from the fastest runs with and without the calls)")
    if not python_with_frida():
        print("\n(Frida not installed: `pip install frida` adds it as a peer row)")
    if i686_why_not:
        print(f"\n(no i686 rows: {i686_why_not})")


if __name__ == "__main__":
    main()
