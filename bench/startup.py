#!/usr/bin/env python3
"""Start-up cost of ProcessTap: how long a short command takes natively,
under DynamoRIO with no client, and under ProcessTap with an empty script,
measured side by side (runs interleaved, so machine noise hits all alike).

    bench/startup.py [--runs N] [COMMAND ...]     (default: /bin/true)

Prints the median wall time of each and the ratios; the line that matters
is ProcessTap minus DynamoRIO: the cost of starting the embedded Python
runtime and running the script. Build first (scripts/bootstrap).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "target" / "release"


def dynamorio_library():
    lib = RELEASE / "dynamorio" / "lib64" / "release" / "libdynamorio.so"
    if not lib.is_file():
        sys.exit(f"{lib} not found: run scripts/bootstrap first")
    return lib


def measure(argv, env=None):
    """Wall time of one run of *argv*, in seconds. With DYNAMORIO_EXE_PATH
    in *env*, libdynamorio.so is executed with *argv* as the target's own
    (early injection)."""
    executable = str(dynamorio_library()) if env and "DYNAMORIO_EXE_PATH" in env else None
    start = time.perf_counter()
    subprocess.run(argv, executable=executable, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("command", nargs="*", default=["/bin/true"])
    args = parser.parse_args()
    command = args.command
    exe = subprocess.run(["which", command[0]], capture_output=True, text=True).stdout.strip() or command[0]

    with tempfile.NamedTemporaryFile("w", suffix=".ptap", delete=False) as script:
        script.write("# empty: measures start-up only\n")
    bare_env = dict(os.environ, DYNAMORIO_EXE_PATH=exe, DYNAMORIO_OPTIONS="-code_api")
    variants = {
        "native": (command, None),
        "DynamoRIO, no client": (command, bare_env),
        "ProcessTap, empty script": ([str(RELEASE / "processtap"), "-q", script.name, "--", *command], None),
    }
    times = {name: [] for name in variants}
    for name, (argv, env) in variants.items():  # warm the page cache
        measure(argv, env)
    for _ in range(args.runs):
        for name, (argv, env) in variants.items():
            times[name].append(measure(argv, env))
    os.unlink(script.name)

    median = {name: statistics.median(t) for name, t in times.items()}
    native, bare = median["native"], median["DynamoRIO, no client"]
    print(f"start-up of {' '.join(command)}: median of {args.runs} interleaved runs")
    print(f"{'':28}{'ms':>9}{'x native':>10}{'x DR':>8}")
    for name, m in median.items():
        print(f"{name:28}{m * 1000:9.1f}{m / native:10.1f}{m / bare:8.2f}")
    added = (median["ProcessTap, empty script"] - bare) * 1000
    print(f"ProcessTap's own start-up (ProcessTap - DynamoRIO): {added:.1f} ms")


if __name__ == "__main__":
    main()
