"""Aggregations: counts, sums, extremes, averages and histograms of events,
keyed by anything hashable, printed when the process exits.

::

    calls = count()
    sizes = hist()

    @function_entry(function_name == "malloc")
    def on_malloc(ctx):
        calls[ctx.function_name, ctx.caller] += 1
        sizes.add(ctx.args[0])

At the process's exit every aggregation that holds something and that
the script has not printed itself (``print(calls)``) is printed in
bpftrace's layout, under a line naming the process (with ``--json``, as
one JSON object each: :meth:`Aggregation.record`)::

    [pid 4242]
    @calls[malloc, 94251092751493]: 12
    @sizes:
    [16, 32)              3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|

named after the script's global that holds it. A forked child starts with
every aggregation empty: each process prints its own events only.

Each kind takes values with ``add(value, key=None)`` (``count`` takes no
value: ``add(key=None)``), and ``agg[key]`` reads a key's result; ``count``
and ``sum`` also take ``agg[key] += n``. A key is any hashable; ``agg[a, b]``
is the key ``(a, b)``. ``sum()``, ``min()`` and ``max()`` with no argument
make aggregations; with arguments they are Python's own.
"""

import builtins
import os
import sys

from . import hooks, jsonlines

__all__ = ["Aggregation", "NativeCount", "count", "sum", "min", "max", "avg", "hist", "lhist", "print_unprinted", "forget_all"]

#: Every aggregation made, in order.
_made = []

#: Where the script's globals are, to name aggregations (set by ptap.script).
namespace = {}

#: The width of a histogram's bars, as bpftrace draws them.
BAR_WIDTH = 52


class Aggregation:
    """What every kind shares: results by key (``None`` for no key)."""

    kind = "aggregation"

    def __init__(self):
        self._results = {}
        self.printed = False
        _made.append(self)

    def add(self, value, key=None):
        """Take *value* under *key*."""
        self._results[key] = self._take(self._results.get(key), value)

    def __getitem__(self, key):
        return self._result(self._results.get(key))

    def __setitem__(self, key, value):
        raise TypeError(f"a {self.kind}() takes values with add(value, key), not by assignment")

    def __len__(self):
        return len(self._results)

    def __contains__(self, key):
        return key in self._results

    def keys(self):
        return list(self._results)

    def items(self):
        """(key, result) pairs."""
        return [(key, self._result(state)) for key, state in self._results.items()]

    def clear(self):
        self._results.clear()
        self.printed = False

    def __str__(self):
        self.printed = True
        return "\n".join(self.lines(self.name()))

    def __repr__(self):
        return f"<{self.kind}() {self.name()}: {len(self)} keys>"

    def name(self):
        """The script's global that holds this aggregation, else its kind."""
        for name, value in namespace.items():
            if value is self:
                return name
        return self.kind

    def record(self, name):
        """This aggregation as one JSON object (``--json``): its name, kind
        and a ``{"key", "value"}`` per key (a histogram's value a list of
        ``{"low", "high", "count"}`` buckets, None for unbounded)."""
        values = [{"key": jsonlines.jsonable(key), "value": self._value(state)} for key, state in self._results.items()]
        return {"pid": os.getpid(), "aggregation": name, "kind": self.kind, "values": values}

    def _value(self, state):
        return jsonlines.jsonable(self._result(state))

    def lines(self, name):
        """The text lines bpftrace would print for this aggregation."""
        ordered = sorted(self._results.items(), key=lambda item: _order(self._result(item[1])))
        return [f"@{name}{_key_text(key)}: {_number(self._result(state))}" for key, state in ordered]

    # What a kind defines: how a value joins a state, and the result of one.
    def _take(self, state, value):
        raise NotImplementedError

    def _result(self, state):
        return state


class _Additive(Aggregation):
    """A kind whose results add up, which ``agg[key] += n`` updates."""

    def __getitem__(self, key):
        return self._results.get(key, 0)

    def __setitem__(self, key, value):
        self._results[key] = value


class Count(_Additive):
    """Events counted by key."""

    kind = "count"

    def add(self, key=None):
        """Count one event under *key*."""
        self[key] += 1


class NativeCount(Count):
    """The counts of a ``count=`` probe, kept in native code by key: what
    ``function_entry(pred, count="function")`` returns. Read as a
    ``count()`` is, and printed at exit as one; its counts change only as
    events come (assigning one is a ``TypeError``)."""

    def __init__(self, probe_index, key):
        super().__init__()
        self.probe_index = probe_index
        self.key = key

    @property
    def _results(self):
        try:
            import _ptap
        except ImportError:
            return {}  # Outside the target: nothing is counted.
        return dict(_ptap.native_counts(self.probe_index))

    @_results.setter
    def _results(self, value):
        pass  # Aggregation.__init__'s empty dict: the counts are native.

    def __setitem__(self, key, value):
        raise TypeError(f"count={self.key!r} counts its probe's events itself: its counts cannot be assigned")

    def add(self, key=None):
        raise TypeError(f"count={self.key!r} counts its probe's events itself: nothing can be added")

    def __call__(self, handler):
        raise TypeError(
            f"count= probes take no handler: write `counts = KIND(PREDICATE, count={self.key!r})`, "
            f"or drop count= to call {getattr(handler, '__name__', 'the handler')}"
        )

    def clear(self):
        """A forked child's counts start at zero natively."""

    def lines(self, name):
        if self.key != "caller":
            return super().lines(name)
        # Return addresses, in hex as addresses are written.
        ordered = sorted(self._results.items(), key=lambda item: item[1])
        return [f"@{name}[{key:#x}]: {n}" for key, n in ordered]


class Sum(_Additive):
    """Values added up by key."""

    kind = "sum"

    def _take(self, state, value):
        return value if state is None else state + value


class Min(Aggregation):
    """The least value by key."""

    kind = "min"

    def _take(self, state, value):
        return value if state is None else builtins.min(state, value)


class Max(Aggregation):
    """The greatest value by key."""

    kind = "max"

    def _take(self, state, value):
        return value if state is None else builtins.max(state, value)


class Avg(Aggregation):
    """The mean of the values by key."""

    kind = "avg"

    def _take(self, state, value):
        total, n = state or (0, 0)
        return total + value, n + 1

    def _result(self, state):
        if state is None:
            return None
        total, n = state
        # Integers average to an integer, as bpftrace's do.
        return total // n if isinstance(total, int) else total / n


class Histogram(Aggregation):
    """Values counted in buckets; a key's result is {bucket: count}, a
    bucket being its ``(low, high)`` bounds (None for unbounded)."""

    def _take(self, state, value):
        state = {} if state is None else state
        bucket = self._bucket(value)
        state[bucket] = state.get(bucket, 0) + 1
        return state

    def _result(self, state):
        return dict(sorted((state or {}).items(), key=lambda item: _order(item[0])))

    def _value(self, state):
        return [{"low": low, "high": high, "count": n} for (low, high), n in self._result(state).items()]

    def lines(self, name):
        out = []
        for key, state in sorted(self._results.items(), key=lambda item: builtins.sum(item[1].values())):
            out.append(f"@{name}{_key_text(key)}:")
            rows = self._rows(state)
            top = builtins.max(n for _, n in rows) or 1
            for label, n in rows:
                bar = "@" * (n * BAR_WIDTH // top)
                out.append(f"{label:<20}{n:>8} |{bar:<{BAR_WIDTH}}|")
            out.append("")
        return out

    def _rows(self, state):
        """(label, count) of every bucket from the lowest to the highest used."""
        raise NotImplementedError


class Hist(Histogram):
    """Power-of-two buckets: [0], [1], [2, 4), [4, 8), ... and (..., 0)."""

    kind = "hist"

    def _bucket(self, value):
        if value < 0:
            return (None, 0)
        if value < 2:
            return (int(value), int(value) + 1)
        low = 1 << (int(value).bit_length() - 1)
        return (low, low * 2)

    def _rows(self, state):
        used = [b for b in state if b[0] is not None]
        rows = [("(..., 0)", state[(None, 0)])] if (None, 0) in state else []
        if used:
            low, high = builtins.min(used)[0], builtins.max(used)[0]
            bucket = low
            while bucket <= high:
                bounds = self._bucket(bucket)
                label = f"[{_size(bucket)}]" if bucket < 2 else f"[{_size(bounds[0])}, {_size(bounds[1])})"
                rows.append((label, state.get(bounds, 0)))
                bucket = bounds[1]
        return rows


class Lhist(Histogram):
    """Linear buckets of *step* from *low* to *high*, and one each below
    and above."""

    kind = "lhist"

    def __init__(self, low, high, step):
        if step <= 0 or high <= low:
            raise ValueError(f"lhist({low}, {high}, {step}): needs low < high and step > 0")
        super().__init__()
        self.low, self.high, self.step = low, high, step

    def _bucket(self, value):
        if value < self.low:
            return (None, self.low)
        if value >= self.high:
            return (self.high, None)
        start = self.low + (value - self.low) // self.step * self.step
        return (start, builtins.min(start + self.step, self.high))

    def _rows(self, state):
        rows = [(f"(..., {self.low})", state[(None, self.low)])] if (None, self.low) in state else []
        bucket = self.low
        while bucket < self.high:
            bounds = self._bucket(bucket)
            rows.append((f"[{bounds[0]}, {bounds[1]})", state.get(bounds, 0)))
            bucket = bounds[1]
        if (self.high, None) in state:
            rows.append((f"[{self.high}, ...)", state[(self.high, None)]))
        return rows


def count():
    """A new count of events by key: ``calls[ctx.function_name] += 1``."""
    return Count()


def sum(*args, **kwargs):  # noqa: A001 - Python's own when given arguments.
    """With no argument, a new sum by key; else Python's ``sum()``."""
    return Sum() if not args and not kwargs else builtins.sum(*args, **kwargs)


def min(*args, **kwargs):  # noqa: A001
    """With no argument, a new minimum by key; else Python's ``min()``."""
    return Min() if not args and not kwargs else builtins.min(*args, **kwargs)


def max(*args, **kwargs):  # noqa: A001
    """With no argument, a new maximum by key; else Python's ``max()``."""
    return Max() if not args and not kwargs else builtins.max(*args, **kwargs)


def avg():
    """A new average by key."""
    return Avg()


def hist():
    """A new power-of-two histogram by key."""
    return Hist()


def lhist(low, high, step):
    """A new linear histogram by key, buckets of *step* from *low* to *high*."""
    return Lhist(low, high, step)


@hooks.at_exit
def print_unprinted(file=None):
    """At the process's exit: print every aggregation that holds something
    and that the script did not print, under a line naming the process."""
    due = [a for a in _made if len(a) and not a.printed]
    if not due:
        return
    file = sys.stdout if file is None else file
    if jsonlines.enabled():
        for aggregation in due:
            jsonlines.write(aggregation.record(aggregation.name()), file)
        return
    print(f"[pid {os.getpid()}]", file=file)
    for aggregation in due:
        print(str(aggregation), file=file)


@hooks.at_fork
def forget_all():
    """In a forked child: every aggregation starts empty."""
    for aggregation in _made:
        aggregation.clear()


def _key_text(key):
    """How bpftrace prints a key: ``[a, b]``, nothing for no key."""
    if key is None:
        return ""
    parts = key if isinstance(key, tuple) else (key,)
    return "[" + ", ".join(str(p) for p in parts) + "]"


def _number(value):
    """A result as printed: floats to six significant digits."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _order(value):
    """A sort key that puts None first and mixes types without failing."""
    if value is None:
        return (0, 0, "")
    if isinstance(value, tuple):
        return (1, 0, str(value)) if value[0] is None else (1, 1, value[0])
    return (1, 1, value) if isinstance(value, (int, float)) else (2, 0, str(value))


def _size(n):
    """*n* as bpftrace labels buckets: 1K, 2M, ..."""
    for suffix, unit in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)
