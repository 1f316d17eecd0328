"""Tests for ptap.aggregations."""

import io

import pytest

from ptap import aggregations
from ptap.aggregations import avg, count, hist, lhist, max, min, sum


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Aggregations of the test's own, named by its globals."""
    monkeypatch.setattr(aggregations, "_made", [])
    monkeypatch.setattr(aggregations, "namespace", {})


def test_counts_and_sums_by_key_and_without():
    calls, total = count(), sum()
    calls["malloc", 0x401000] += 1
    calls["malloc", 0x401000] += 2
    calls.add("free")
    calls.add()
    total.add(10)
    total.add(5)
    total["x"] += 7
    assert (calls["malloc", 0x401000], calls["free"], calls[None], calls["never"]) == (3, 1, 1, 0)
    assert (total[None], total["x"]) == (15, 7)
    aggregations.namespace.update(calls=calls)
    # By value, as bpftrace orders them (ties in the order the keys came).
    assert str(calls).splitlines() == ["@calls[free]: 1", "@calls: 1", "@calls[malloc, 4198400]: 3"]


def test_extremes_and_averages():
    low, high, mean = min(), max(), avg()
    for v in (5, -3, 12):
        low.add(v, "k")
        high.add(v, "k")
        mean.add(v, "k")
    mean.add(1.5, "f")
    assert (low["k"], high["k"], mean["k"], mean["f"], low["none"]) == (-3, 12, 4, 1.5, None)
    with pytest.raises(TypeError, match="add"):
        low["k"] = 1


def test_builtins_remain_with_arguments():
    assert (sum([1, 2, 3]), sum([1], 10), min(4, 2), max([1, 9]), max([], default=0)) == (6, 11, 2, 9, 0)


def test_power_of_two_buckets():
    h = hist()
    for v in (-4, 0, 1, 2, 3, 4, 1023, 1024, 1 << 20):
        h.add(v)
    assert h[None] == {(None, 0): 1, (0, 1): 1, (1, 2): 1, (2, 4): 2, (4, 8): 1, (512, 1024): 1,
                       (1024, 2048): 1, (1 << 20, 1 << 21): 1}
    aggregations.namespace.update(h=h)
    lines = str(h).splitlines()
    assert lines[0] == "@h:" and lines[1].startswith("(..., 0)") and lines[2].startswith("[0]")
    assert lines[-1].startswith("[1M, 2M)")
    assert "[1K, 2K)" in str(h)


def test_linear_buckets_below_inside_above():
    h = lhist(0, 10, 4)
    for v in (-1, 0, 3, 4, 9, 10, 100):
        h.add(v)
    assert h[None] == {(None, 0): 1, (0, 4): 2, (4, 8): 1, (8, 10): 1, (10, None): 2}
    with pytest.raises(ValueError):
        lhist(5, 5, 1)


def test_exit_prints_what_holds_something_and_was_not_printed():
    printed, silent, empty = count(), count(), count()
    aggregations.namespace.update(printed=printed, silent=silent, empty=empty)
    printed.add()
    silent.add()
    str(printed)
    out = io.StringIO()
    aggregations.print_unprinted(out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[pid ") and lines[1:] == ["@silent: 1"]
    aggregations.forget_all()
    out = io.StringIO()
    aggregations.print_unprinted(out)
    assert out.getvalue() == ""
