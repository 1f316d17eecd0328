"""Address ranges that change while the target runs, for memory probes.

A script watches what it learns as the program runs: the block ``malloc``
just returned, the buffer a function was passed::

    heap = AddressSet()

    @function_exit(function_name == "malloc")
    def allocated(ctx):
        heap.add(ctx.retval, ctx.args[0])

    @memory_write(memory_address >> heap)
    def written(ctx):
        print(hex(ctx.address), ctx.value)

The native client keeps its own copy of every set, which the code cache
tests at each access without entering Python; a change made from any
handler takes effect for the next instruction the program runs, in every
thread. Outside a traced program (in tests), a set is plain Python.
"""

import bisect
import itertools

__all__ = ["AddressSet", "symbol_range"]

#: One more than the largest address.
_ADDRESS_LIMIT = 2**64

#: Ids of sets made outside a traced program (the native side numbers the others).
_local_ids = itertools.count(1)


def _native():
    """The native module inside a traced program, else None."""
    try:
        import _ptap
    except ImportError:
        return None
    return _ptap


class AddressSet:
    """A set of address ranges ``[start, start + size)``, each known by its start.

    ``add(start, size)`` puts a range in (replacing one with the same
    start), ``discard(start)`` takes it out, ``clear()`` empties the set;
    ``len()`` counts the ranges, ``address in s`` asks whether an address
    lies in one, and iterating gives ``(start, size)`` pairs in order of
    their starts. Ranges may overlap.
    """

    __slots__ = ("_starts", "_sizes", "_native", "id", "__weakref__")

    def __init__(self, ranges=()):
        self._starts = []
        self._sizes = {}
        self._native = _native()
        self.id = self._native.address_set_new() if self._native else next(_local_ids)
        for start, size in ranges:
            self.add(start, size)

    def add(self, start, size):
        """Watch the *size* bytes at *start* (replacing a range that starts there)."""
        _check_address("start", start)
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"AddressSet.add(): size must be an int, not {type(size).__name__}")
        if not 0 < size <= _ADDRESS_LIMIT - start:
            raise ValueError(
                f"AddressSet.add(): size must be at least 1 and end the range "
                f"by 2**64, not {size} at {start:#x}"
            )
        if start not in self._sizes:
            bisect.insort(self._starts, start)
        self._sizes[start] = size
        if self._native:
            self._native.address_set_add(self.id, start, size)

    def discard(self, start):
        """Stop watching the range that starts at *start*, if there is one."""
        _check_address("start", start)
        if self._sizes.pop(start, None) is None:
            return
        del self._starts[bisect.bisect_left(self._starts, start)]
        if self._native:
            self._native.address_set_discard(self.id, start)

    def clear(self):
        """Stop watching every range."""
        self._starts.clear()
        self._sizes.clear()
        if self._native:
            self._native.address_set_clear(self.id)

    def overlaps(self, start, size):
        """Whether some byte of ``[start, start + size)`` is in a range."""
        end = start + size
        # Ranges may overlap: any that starts before the end may reach in.
        for i in range(bisect.bisect_left(self._starts, end) - 1, -1, -1):
            first = self._starts[i]
            if first + self._sizes[first] > start:
                return True
        return False

    def __contains__(self, address):
        if not isinstance(address, int) or isinstance(address, bool):
            return False
        return self.overlaps(address, 1)

    def __len__(self):
        return len(self._starts)

    def __iter__(self):
        return iter([(start, self._sizes[start]) for start in self._starts])

    def __repr__(self):
        return f"AddressSet#{self.id}({len(self)} ranges)"


def _check_address(name, value):
    """Raise unless *value* is an address (an int in 0 .. 2**64 - 1)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"AddressSet: {name} must be an int, not {type(value).__name__}")
    if not 0 <= value < _ADDRESS_LIMIT:
        raise ValueError(f"AddressSet: {name} must lie in 0 .. 2**64 - 1, not {value}")


def symbol_range(name):
    """The ``range(start, start + size)`` of the data object or function *name*.

    It is looked up in the modules loaded now (at the top level of a script:
    the executable, the dynamic loader and DynamoRIO's view of them); a
    name defined in several modules, or nowhere, raises :exc:`LookupError`.
    """
    if not isinstance(name, str):
        raise TypeError(f"symbol_range() takes a name, not {type(name).__name__}")
    native = _native()
    if native is None:
        raise RuntimeError("symbol_range() works only inside a program traced by processtap")
    found = sorted(set(native.ranges_of(name)))
    if not found:
        raise LookupError(f"symbol_range({name!r}): no data object or function of that name is loaded")
    if len(found) > 1:
        places = ", ".join(f"{start:#x}" for start, _ in found)
        raise LookupError(f"symbol_range({name!r}): {len(found)} symbols of that name ({places})")
    start, size = found[0]
    return range(start, start + max(size, 1))
