"""ctx.timestamp and ctx.duration (issue 15, item 7), on both architectures.

The ground truth is the clock itself: CLOCK_MONOTONIC is one clock for
every process of the machine, so a timestamp the target's handler prints
falls between the test's readings before and after the run, and naps of
a known length (tests/targets/naps.c) last at least that long.
"""

import re
import time

from function_targets import arch, arch_target, ftarget  # noqa: F401

SCRIPT = """
@function_entry(function_name == "nanosleep")
def enter(ctx):
    print("entry", ctx.timestamp, "duration" in dir(ctx))

@function_exit(function_name == "nanosleep")
def leave(ctx):
    print("function", ctx.timestamp, ctx.duration)

@syscall_exit(syscall_name == "clock_nanosleep")
def returned(ctx):
    print("syscall", ctx.timestamp, ctx.duration)

@syscall_exit(syscall_name == "clock_nanosleep")
def again(ctx):
    print("same", ctx.timestamp)
"""


def test_durations_and_timestamps_of_naps(trace, arch_target):
    before = time.monotonic_ns()
    result = trace(SCRIPT, arch_target("naps"), "3", "40", options=["-q"])
    after = time.monotonic_ns()
    assert result.returncode == 0 and result.stdout.endswith("slept 3\n"), result
    events = [line.split() for line in result.stdout.splitlines()[:-1]]
    assert [e[0] for e in events] == ["entry", "syscall", "same", "function"] * 3, result
    stamps = [int(e[1]) for e in events]
    # One clock, read in order: every event between the test's readings,
    # each after the one before, and both handlers of one event alike.
    assert before < stamps[0] and stamps[-1] < after, (before, stamps, after)
    assert stamps == sorted(stamps), stamps
    for i in range(0, 12, 4):
        entry, syscall, same, function = stamps[i:i + 4]
        assert same == syscall
        # An entry event has no duration; an exit's counts from its entry.
        assert events[i][2] == "False"
        syscall_duration, function_duration = int(events[i + 1][2]), int(events[i + 3][2])
        assert 40_000_000 <= syscall_duration <= function_duration, events[i:i + 4]
        # The function's call began no earlier than its entry event, and
        # the system call inside it ended before the function returned.
        assert function - function_duration >= entry
        assert syscall - syscall_duration >= function - function_duration
        assert function_duration < 40_000_000 + (after - before) // 3


def test_duration_is_not_a_field_of_an_entry(trace, arch_target):
    script = """
@syscall_entry(syscall_name == "write")
def enter(ctx):
    try:
        ctx.duration
    except AttributeError as e:
        print(e)
"""
    result = trace(script, arch_target("naps"), "1", "1", options=["-q"])
    assert result.returncode == 0, result
    first = result.stdout.splitlines()[0]
    assert re.fullmatch(r"syscall_entry events have no field 'duration' \(they have: event, pid, tid, timestamp, .*\)", first), result
