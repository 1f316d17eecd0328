"""Aggregations (issue 15, item 4): count(), sum(), min(), max(), avg(),
hist() and lhist(), keyed by anything hashable, printed at each process's
exit in bpftrace's layout unless the script printed them.

Ground truth: the sizes malloc_sizes prints before each of its malloc
calls; strace -f for the system calls of forks' two processes.
"""

import re
import subprocess

from conftest import script_lines
from function_targets import ftarget  # noqa: F401

AGGREGATIONS_SCRIPT = """\
calls = count()
total = sum()
smallest = min()
largest = max()
mean = avg()
sizes = hist()
small = lhist(0, 100, 25)
shown = count()

@function_entry((function_name == "malloc"))
def on_malloc(ctx):
    if module(ctx.caller) != "malloc_sizes":
        return
    size = ctx.args[0]
    calls[ctx.function_name, module(ctx.caller)] += 1
    for aggregation in (total, smallest, largest, mean, sizes, small):
        aggregation.add(size)
    shown.add()

@process_exit
def done(ctx):
    # Printed by the script: not again at exit. Python's own sum() still works.
    print("[shown]", str(shown).replace(chr(10), " "), sum([1, 2]), min(3, 4), max([5, 6]))
"""


def test_aggregations_print_at_exit_what_the_program_did(trace, ftarget, run_native):
    native = run_native(ftarget("malloc_sizes"))
    sizes = [int(s) for s in script_lines(native.stdout, "malloc ")]
    assert len(sizes) == 8
    result = trace(AGGREGATIONS_SCRIPT, ftarget("malloc_sizes"), options=["-q"])
    assert result.returncode == 0 and "Traceback" not in result.stderr, result
    out = result.stdout.splitlines()
    assert script_lines(result.stdout, "[shown] ") == ["@shown: 8 3 3 6"], result
    start = out.index(next(line for line in out if re.fullmatch(r"\[pid \d+\]", line)))
    report = out[start + 1:]
    assert report[:5] == [
        "@calls[malloc, malloc_sizes]: 8",
        f"@total: {sum(sizes)}",
        f"@smallest: {min(sizes)}",
        f"@largest: {max(sizes)}",
        f"@mean: {sum(sizes) // len(sizes)}",
    ], result.stdout
    assert not any(line.startswith("@shown") for line in report), result.stdout
    # hist: one row per power of two from the smallest size's to the
    # largest's, each with its count and a bar scaled to the fullest.
    rows = {}
    for line in report[report.index("@sizes:") + 1:report.index("@small:")]:
        if line:
            label, n, bar = re.fullmatch(r"(\S+(?:, \S+)?)\s+(\d+) \|(@*) *\|", line).groups()
            rows[label] = (int(n), len(bar))
    def bucket(size):
        if size < 2:
            return f"[{size}]"
        low = 1 << (size.bit_length() - 1)
        return f"[{label_of(low)}, {label_of(2 * low)})"
    def label_of(n):
        return f"{n >> 10}K" if n >= 1024 and n % 1024 == 0 else str(n)
    expected = {}
    for size in sizes:
        expected[bucket(size)] = expected.get(bucket(size), 0) + 1
    assert {label: n for label, (n, _) in rows.items() if n} == expected, report
    # From [1] (the smallest size is 1) to [256K, 512K) (333333's): 19 rows.
    assert min(sizes) == 1 and len(rows) == max(sizes).bit_length(), report
    fullest = max(n for n, _ in rows.values())
    assert all(bar == n * 52 // fullest for n, bar in rows.values()), report
    # lhist: below 0 none; [0, 25) holds 17, 1 and 24; 1000 and up past 100.
    small = [line for line in report[report.index("@small:") + 1:] if line]
    rows = [re.fullmatch(r"(\S+, \S+)\s+(\d+) \|@* *\|", line).groups() for line in small]
    assert rows == [("[0, 25)", "3"), ("[25, 50)", "0"), ("[50, 75)", "0"), ("[75, 100)", "0"), ("[100, ...)", "5")], small


FORK_SCRIPT = """\
calls = count()

@syscall_entry(syscall_name >> ["getppid", "openat"])
def entry(ctx):
    calls[ctx.syscall_name] += 1
"""


def test_each_process_prints_its_own_counts_and_a_child_starts_empty(trace, ftarget, tmp_path):
    log = tmp_path / "strace.txt"
    subprocess.run(["strace", "-f", "-o", log, "-e", "trace=getppid,openat", ftarget("forks")], check=True, capture_output=True)
    expected = {}
    for line in log.read_text().splitlines():
        match = re.match(r"(\d+) +(getppid|openat)\(", line)
        if match:
            counts = expected.setdefault(int(match.group(1)), {})
            counts[match.group(2)] = counts.get(match.group(2), 0) + 1
    assert len(expected) == 2, log.read_text()
    out = tmp_path / "handlers.txt"
    result = trace(FORK_SCRIPT, ftarget("forks"), options=["-q", "-o", out])
    assert result.returncode == 0, result
    reports, pid = {}, None
    for line in out.read_text().splitlines():
        if re.fullmatch(r"\[pid \d+\]", line):
            pid = int(line[5:-1])
            reports[pid] = {}
        else:
            name, n = re.fullmatch(r"@calls\[(\w+)\]: (\d+)", line).groups()
            reports[pid][name] = int(n)
    # The child (3 getppid, one openat) prints first: its parent waits for it.
    assert list(reports.values()) == sorted(expected.values(), key=lambda c: c["getppid"], reverse=True), (reports, expected)
    child = list(reports.values())[0]
    assert child == {"getppid": 3, "openat": 1}, reports
