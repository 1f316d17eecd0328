#!/usr/bin/env python3
"""Start-up cost of ProcessTap, measured side by side in one run.

    bench/startup.py [--runs N] [--workloads command,execs,git]
                     [--processtap LABEL=PATH ...] [COMMAND ...]

Three workloads, each natively, under DynamoRIO with no client, and under
ProcessTap with an empty script (every process the target forks or execs
is traced too, by both):

- ``command``: COMMAND (default ``/bin/true``): one process's start-up.
- ``execs``: ``sh -c 'for i in $(seq 50); do /bin/true; done'``: a shell
  that execs 50 short programs (52 exec'd programs with sh and seq), each
  of which pays the start-up again.
- ``git``: ``git init && git add f && git commit -m x`` in a fresh
  repository (HOME and the author are set here, so it needs no set-up).

Runs are interleaved (one run of every row in turn) so machine noise hits
all rows alike. Each row shows the median and the fastest run (noise only
ever adds), the ratios to native and to DynamoRIO with no client, and
ProcessTap minus DynamoRIO: ProcessTap's own start-up. The issue's goals
(total / DynamoRIO with no client) are printed under each table. Build
first (scripts/bootstrap).

``--processtap LABEL=PATH`` (repeatable) adds a row for another build's
launcher (a copy of ``processtap`` and ``libptap.so`` with a ``dynamorio``
link beside them), to compare builds in the same interleaved runs.
"""

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "target" / "release"
DYNAMORIO = RELEASE / "dynamorio" / "lib64" / "release" / "libdynamorio.so"
BARE = "DynamoRIO, no client"
TRACED = "ProcessTap, empty script"

#: Goals of issue 10 ("start-up per process"): ProcessTap's total time as a
#: multiple of DynamoRIO with no client, per workload.
GOALS = {"command": 2.0, "execs": 2.5}

EXEC_COUNT = 50
EXECS_LOOP = f"for i in $(seq {EXEC_COUNT}); do /bin/true; done"
GIT_COMMANDS = "git init -q && git add f && git commit -q -m x"


def cache_directory():
    """ProcessTap's cache, from ptap/cache.py itself (loaded alone: it
    needs nothing else of ptap). The git workload changes HOME, which must
    not make ProcessTap's cache cold."""
    spec = importlib.util.spec_from_file_location("ptap_cache", REPO / "ptap-lib" / "ptap" / "cache.py")
    cache = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cache)
    return cache.directory()


class Workload:
    """A command to time, with what one run of it needs: a working
    directory made fresh for each run if *fresh* is given (called with the
    new directory to fill it), and additions to the environment."""

    def __init__(self, label, argv, fresh=None, env=None):
        self.label = label
        self.argv = argv
        self.fresh = fresh
        self.env = env or {}
        self.exe = shutil.which(argv[0]) or argv[0]

    def rows(self, script, launchers):
        """{row label: (argv, environment, executable)} in table order;
        *launchers* is {row label: processtap path}."""
        env = dict(os.environ, **self.env)
        bare = dict(env, DYNAMORIO_EXE_PATH=self.exe, DYNAMORIO_OPTIONS="-code_api")
        rows = {
            "native": (self.argv, env, None),
            # Early injection, as the launcher does it: libdynamorio.so is
            # executed with the target's own argv.
            BARE: (self.argv, bare, str(DYNAMORIO)),
        }
        for label, launcher in launchers.items():
            rows[label] = ([launcher, "-q", script, "--", *self.argv], env, None)
        return rows

    def time(self, argv, env, executable, scratch):
        """Wall time of one run, in seconds."""
        cwd = None
        if self.fresh:
            cwd = tempfile.mkdtemp(dir=scratch)
            self.fresh(Path(cwd))
        try:
            start = time.perf_counter()
            done = subprocess.run(
                argv, executable=executable, env=env, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
            )
            elapsed = time.perf_counter() - start
        finally:
            if cwd:
                shutil.rmtree(cwd, ignore_errors=True)
        if done.returncode != 0:
            sys.exit(f"{self.label}: {' '.join(argv)} failed ({done.returncode}):\n{done.stderr.decode(errors='replace')}")
        return elapsed


def workloads(command, scratch):
    """Every workload, by name."""
    home = Path(scratch) / "home"
    home.mkdir()
    git_env = {
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
        "PTAP_CACHE_DIR": cache_directory(),
    }
    return {
        "command": Workload(" ".join(command), command),
        "execs": Workload(f"sh execing {EXEC_COUNT} x /bin/true", ["sh", "-c", EXECS_LOOP]),
        "git": Workload(
            "git init, add, commit", ["sh", "-c", GIT_COMMANDS],
            fresh=lambda d: (d / "f").write_text("x\n"), env=git_env,
        ),
    }


def measure(workload, script, launchers, runs, scratch):
    """{row: [seconds per run]}, runs interleaved, after one warm-up run each."""
    rows = workload.rows(script, launchers)
    times = {label: [] for label in rows}
    for argv, env, executable in rows.values():  # warm the page cache
        workload.time(argv, env, executable, scratch)
    for _ in range(runs):
        for label, (argv, env, executable) in rows.items():
            times[label].append(workload.time(argv, env, executable, scratch))
    return times


def report(name, workload, times, runs):
    median = {label: statistics.median(t) for label, t in times.items()}
    best = {label: min(t) for label, t in times.items()}
    print(f"\n{workload.label}: {runs} interleaved runs")
    print(f"{'':28}{'median ms':>11}{'best ms':>9}{'x native':>10}{'x DR':>8}{'best x DR':>11}")
    for label in times:
        print(
            f"{label:28}{median[label] * 1000:11.1f}{best[label] * 1000:9.1f}"
            f"{median[label] / median['native']:10.1f}{median[label] / median[BARE]:8.2f}"
            f"{best[label] / best[BARE]:11.2f}"
        )
    for label in list(times)[2:]:
        added, added_best = (median[label] - median[BARE]) * 1000, (best[label] - best[BARE]) * 1000
        line = f"{label} - DynamoRIO: {added:.1f} ms (fastest runs: {added_best:.1f} ms)"
        if name == "execs":
            programs = EXEC_COUNT + 2
            line += f"; per exec'd program ({programs}): {added / programs:.1f} ms ({added_best / programs:.1f})"
        print(line)
        if name in GOALS:
            ratio = median[label] / median[BARE]
            verdict = "met" if ratio <= GOALS[name] else "not met"
            print(f"  goal: <= {GOALS[name]}x DynamoRIO with no client: {ratio:.2f}x, {verdict}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workloads", default="command,execs,git", help="comma-separated: command, execs, git")
    parser.add_argument("--processtap", action="append", default=[], metavar="LABEL=PATH",
                        help="also time this build's launcher, as row 'ProcessTap (LABEL)'")
    parser.add_argument("command", nargs="*", default=["/bin/true"])
    args = parser.parse_args()
    launchers = {TRACED: str(RELEASE / "processtap")}
    for item in args.processtap:
        label, _, path = item.partition("=")
        if not path or not Path(path).is_file():
            sys.exit(f"--processtap {item}: want LABEL=PATH of a processtap launcher")
        launchers[f"ProcessTap ({label})"] = path
    if not DYNAMORIO.is_file() or not (RELEASE / "processtap").is_file():
        sys.exit(f"{DYNAMORIO} or {RELEASE / 'processtap'} not found: run scripts/bootstrap first")
    chosen = [w.strip() for w in args.workloads.split(",") if w.strip()]
    with tempfile.TemporaryDirectory(prefix="ptap-bench-") as scratch:
        script = Path(scratch) / "empty.ptap"
        script.write_text("# empty: measures start-up only\n")
        available = workloads(args.command, scratch)
        unknown = [w for w in chosen if w not in available]
        if unknown:
            sys.exit(f"unknown workloads: {', '.join(unknown)} (choose from {', '.join(available)})")
        for name in chosen:
            workload = available[name]
            if shutil.which(workload.argv[0]) is None:
                print(f"\n{workload.label}: skipped, {workload.argv[0]} not found")
                continue
            if name == "git" and shutil.which("git") is None:
                print(f"\n{workload.label}: skipped, git not found")
                continue
            report(name, workload, measure(workload, str(script), launchers, args.runs, scratch), args.runs)


if __name__ == "__main__":
    main()
