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

__all__ = ["AddressSet", "PendingSymbol", "symbol_range"]

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


class PendingSymbol:
    """The definitions of a symbol no module loaded so far defines, as
    modules that define it load: what ``symbol_range(name)`` and
    ``symbol(name)`` return then (a global of a library the program loads
    later or opens with ``dlopen``).

    ``memory_address >> pending`` watches every definition from the moment
    its module loads (before any of its code runs) until it unloads; the
    code cache tests it as it tests an :class:`AddressSet`. ``len()`` counts
    the definitions loaded now, ``address in pending`` asks whether an
    address lies in one, and iterating gives ``(start, size)`` pairs for
    ``symbol_range()``, start addresses for ``symbol()``.
    """

    __slots__ = ("name", "id", "_whole", "_native")

    def __init__(self, name, *, whole, native):
        self.name = name
        self._whole = whole
        self._native = native
        self.id = native.address_set_new()
        native.address_set_follow_symbol(self.id, name, whole)

    def _ranges(self):
        return self._native.address_set_ranges(self.id)

    def overlaps(self, start, size):
        """Whether some byte of ``[start, start + size)`` is in a definition loaded now."""
        end = start + size
        return any(first < end and first + length > start for first, length in self._ranges())

    def __contains__(self, address):
        if not isinstance(address, int) or isinstance(address, bool):
            return False
        return self.overlaps(address, 1)

    def __len__(self):
        return len(self._ranges())

    def __iter__(self):
        ranges = self._ranges()
        return iter(ranges if self._whole else [start for start, _ in ranges])

    def __repr__(self):
        helper = "symbol_range" if self._whole else "symbol"
        loaded = len(self)
        state = f"{loaded} loaded" if loaded else "none loaded"
        return f"{helper}({self.name!r}) ({state})"


#: The PendingSymbol of each (name, whole) asked for, so that asking again
#: (from a handler, say) follows the name once.
_pending = {}


def pending_symbol(name, *, whole):
    """The one :class:`PendingSymbol` for *name* (``whole``: whole ranges)."""
    key = (name, whole)
    if key not in _pending:
        _pending[key] = PendingSymbol(name, whole=whole, native=_native())
    return _pending[key]


def symbol_range(name):
    """The ``range(start, start + size)`` of the data object or function *name*.

    It is looked up in the modules loaded now (at the top level of a script:
    the executable, the dynamic loader and DynamoRIO's view of them). A name
    defined in several of them raises :exc:`LookupError`; a name none of
    them defines gives a :class:`PendingSymbol`, filled as modules that
    define it load.
    """
    if not isinstance(name, str):
        raise TypeError(f"symbol_range() takes a name, not {type(name).__name__}")
    native = _native()
    if native is None:
        raise RuntimeError("symbol_range() works only inside a program traced by processtap")
    found = sorted(set(native.ranges_of(name)))
    if not found:
        return pending_symbol(name, whole=True)
    if len(found) > 1:
        places = ", ".join(f"{start:#x}" for start, _ in found)
        raise LookupError(f"symbol_range({name!r}): {len(found)} symbols of that name ({places})")
    start, size = found[0]
    return range(start, start + max(size, 1))
