"""The predicate language: a probe's filter, built as a tree of data.

A predicate says which events a probe's handler is called for::

    @function_entry((function_name == "malloc") & ~(module_name == "libc.so.6"))

Writing ``function_name == "malloc"`` does not compare anything: the
:class:`Variable` ``function_name`` overloads the comparison operators to
build a :class:`Compare` node, and ``&``, ``|`` and ``~`` join nodes into
:class:`And`, :class:`Or` and :class:`Not`. ``var >> [a, b]`` builds
:class:`OneOf`, ``var >> range(a, b)`` builds :class:`InRange` and
``var.like("glob*")`` builds :class:`Like`. Values are type-checked as the
tree is built, so a mistake is reported at the line that makes it.

The tree is never evaluated by Python while the target runs. The native
client reads :meth:`Predicate.to_data` and decides each node itself, partly
when code is instrumented and partly in native code at run time.
:meth:`Predicate.evaluate` gives the reference meaning of each node, which
the native side follows; it is used by tests and documentation.

``to_data()`` returns nested tuples, with variables named as in Python:

=====================================  ==========================================
node                                   data
=====================================  ==========================================
:data:`ALWAYS`                         ``("const", True)``
``a & b``                              ``("and", a_data, b_data)``
``a | b``                              ``("or", a_data, b_data)``
``~a``                                 ``("not", a_data)``
``var == v`` (and != < <= > >=)        ``("cmp", "var", "==", v)``
``var >> [a, b]``                      ``("in", "var", (a, b))``
``var >> range(a, b)``                 ``("range", "var", a, b)``
``var.like("glob*")``                  ``("like", "var", "glob*")``
``memory_address >> heap``             ``("set", "memory_address", heap.id)``
=====================================  ==========================================

``memory_address`` is the whole access, the bytes ``[address, address +
size)``, and a test on it holds when any of those bytes passes it: ``==``,
``>>`` a list, a range or an :class:`~ptap.addresses.AddressSet` ask
whether some byte is there (so a 16-byte store that covers a watched
``int`` matches it); ``<`` and ``<=`` test the first byte, ``>`` and ``>=``
the last (so ``(memory_address >= a) & (memory_address < b)`` is
``memory_address >> range(a, b)``); ``!=`` is the negation of ``==``. For
:meth:`~Predicate.evaluate` the event's ``memory_address`` is an
``(address, size)`` pair, or an int for a one-byte access.

Values are ``int`` (always in ``0 <= v < 2**64``), ``str``, ``bytes`` (only
for ``memory_value``) or ``bool`` (only for ``branch_taken``).
``function_address`` also takes a module-relative ``"module+0xoffset"``
string, kept as written; it can only be tested for equality (``==``, ``!=``,
``>>`` a list). For :meth:`~Predicate.evaluate`, the event's
``function_address`` must then be in the same form, since the reference
semantics know nothing of where modules are loaded.
"""

from ._record import Record, init

__all__ = [
    "ValueKind",
    "Variable",
    "VARIABLES",
    "Predicate",
    "Constant",
    "Compare",
    "OneOf",
    "InRange",
    "Like",
    "InSet",
    "And",
    "Or",
    "Not",
    "ALWAYS",
    "process_id",
    "thread_id",
    "module_name",
    "function_name",
    "function_address",
    "syscall_num",
    "syscall_name",
    "memory_address",
    "memory_size",
    "memory_value",
    "branch_taken",
    "instruction_address",
]

#: One more than the largest integer a predicate may hold (values are u64).
INT_LIMIT = 2**64

_OPERATORS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

_NOT_A_BOOLEAN = (
    "a predicate has no truth value: combine predicates with & | ~, "
    "not and/or/not; and write a < x < b as (x > a) & (x < b)"
)


class ValueKind:
    """What values a :class:`Variable` takes, and how they print: its ``kind``.

    Plain string constants: an :class:`enum.Enum` would import ``enum``
    (and ``re``, ``functools``) into every traced process.
    """

    #: A name (``str``), printed in double quotes.
    STRING = "string"
    #: A count or id (``int``), printed in decimal.
    NUMBER = "number"
    #: An address (``int``), printed in hex. ``function_address`` also
    #: takes a module-relative ``"module+0xoffset"`` string.
    ADDRESS = "address"
    #: Memory contents: ``bytes``, or an ``int`` read little-endian, unsigned.
    MEMORY = "memory"
    #: A ``bool``.
    FLAG = "flag"


# ---------------------------------------------------------------------------
# Predicate nodes


class Predicate(Record):
    """A node of a predicate tree.

    Subclasses are immutable records (:class:`~ptap._record.Record`), so
    two trees built the same way compare equal. A predicate cannot be used
    as a truth value: ``and``, ``or``, ``not`` and chained comparisons such
    as ``a < x < b`` raise :exc:`TypeError` instead of silently dropping
    half of the condition.
    """

    __slots__ = ()

    def __and__(self, other):
        if not isinstance(other, Predicate):
            return NotImplemented
        return And(self, other)

    def __or__(self, other):
        if not isinstance(other, Predicate):
            return NotImplemented
        return Or(self, other)

    def __invert__(self):
        return Not(self)

    def __bool__(self):
        raise TypeError(_NOT_A_BOOLEAN)

    def variables(self):
        """Return the names of the variables the predicate uses, as a frozenset."""
        raise NotImplementedError

    def evaluate(self, fields):
        """Decide the predicate for one event.

        *fields* maps variable names (``"function_name"``) to the event's
        values. A variable the predicate uses but *fields* lacks raises
        :exc:`KeyError`; both sides of ``&`` and ``|`` are always decided,
        so this does not depend on the values.
        """
        raise NotImplementedError

    def to_data(self):
        """Return the predicate as nested tuples (see the module docstring)."""
        raise NotImplementedError


class Constant(Predicate):
    """A predicate that is always *value*: :data:`ALWAYS` is ``Constant(True)``."""

    __slots__ = ("value",)

    def __init__(self, value):
        init(self, value)

    def variables(self):
        return frozenset()

    def evaluate(self, fields):
        return self.value

    def to_data(self):
        return ("const", self.value)

    def __str__(self):
        return "(true)" if self.value else "(false)"


class Compare(Predicate):
    """``variable op value``, where *op* is one of ``== != < <= > >=``."""

    __slots__ = ("variable", "op", "value")

    def __init__(self, variable, op, value):
        init(self, variable, op, value)

    def variables(self):
        return frozenset([self.variable])

    def evaluate(self, fields):
        variable = VARIABLES[self.variable]
        if variable is memory_address:
            first, last = _span(fields[self.variable])
            if self.op in ("==", "!="):
                return (first <= self.value <= last) == (self.op == "==")
            bound = first if self.op in ("<", "<=") else last
            return _OPERATORS[self.op](bound, self.value)
        event_value, value = _operands(variable, fields[self.variable], self.value)
        return _OPERATORS[self.op](event_value, value)

    def to_data(self):
        return ("cmp", self.variable, self.op, self.value)

    def __str__(self):
        variable = VARIABLES[self.variable]
        return f"({variable.banner_name} {self.op} {_format_value(variable, self.value)})"


class OneOf(Predicate):
    """``variable >> [a, b, ...]``: the variable equals one of *values*."""

    __slots__ = ("variable", "values")

    def __init__(self, variable, values):
        init(self, variable, values)

    def variables(self):
        return frozenset([self.variable])

    def evaluate(self, fields):
        variable = VARIABLES[self.variable]
        field = fields[self.variable]
        if variable is memory_address:
            first, last = _span(field)
            return any(first <= value <= last for value in self.values)
        for value in self.values:
            event_value, value = _operands(variable, field, value)
            if event_value == value:
                return True
        return False

    def to_data(self):
        return ("in", self.variable, self.values)

    def __str__(self):
        variable = VARIABLES[self.variable]
        values = ", ".join(_format_value(variable, value) for value in self.values)
        return f"({variable.banner_name} in [{values}])"


class InRange(Predicate):
    """``variable >> range(start, stop)``: ``start <= variable < stop``."""

    __slots__ = ("variable", "start", "stop")

    def __init__(self, variable, start, stop):
        init(self, variable, start, stop)

    def variables(self):
        return frozenset([self.variable])

    def evaluate(self, fields):
        variable = VARIABLES[self.variable]
        if variable is memory_address:
            first, last = _span(fields[self.variable])
            return first < self.stop and last >= self.start
        event_value, start = _operands(variable, fields[self.variable], self.start)
        return start <= event_value < self.stop

    def to_data(self):
        return ("range", self.variable, self.start, self.stop)

    def __str__(self):
        variable = VARIABLES[self.variable]
        start = _format_value(variable, self.start)
        stop = _format_value(variable, self.stop)
        return f"({variable.banner_name} in [{start}, {stop}))"


class Like(Predicate):
    """``variable.like(glob)``: the string variable matches a glob.

    The glob is case-sensitive and understands ``*`` (any run of
    characters), ``?`` (any one character), ``[seq]`` and ``[!seq]``, as
    :func:`fnmatch.fnmatchcase` does.
    """

    __slots__ = ("variable", "glob")

    def __init__(self, variable, glob):
        init(self, variable, glob)

    def variables(self):
        return frozenset([self.variable])

    def evaluate(self, fields):
        import fnmatch  # Imports re: only tests and documentation evaluate.

        return fnmatch.fnmatchcase(fields[self.variable], self.glob)

    def to_data(self):
        return ("like", self.variable, self.glob)

    def __str__(self):
        variable = VARIABLES[self.variable]
        return f"({variable.banner_name} like {_quote(self.glob)})"


class InSet(Predicate):
    """``memory_address >> heap``: some byte of the access is in one of
    the ranges of *address_set*, an :class:`~ptap.addresses.AddressSet` or
    a :class:`~ptap.addresses.PendingSymbol`, as it is when the access
    happens (the set may change at run time)."""

    __slots__ = ("variable", "address_set")

    def __init__(self, variable, address_set):
        init(self, variable, address_set)

    def variables(self):
        return frozenset([self.variable])

    def evaluate(self, fields):
        first, last = _span(fields[self.variable])
        return self.address_set.overlaps(first, last - first + 1)

    def to_data(self):
        return ("set", self.variable, self.address_set.id)

    def __str__(self):
        variable = VARIABLES[self.variable]
        return f"({variable.banner_name} in {self.address_set!r})"


class _Junction(Predicate):
    """Two predicates joined by ``&`` or ``|``; subclasses name the join."""

    __slots__ = ("left", "right")

    _tag = ""
    _symbol = ""

    def __init__(self, left, right):
        init(self, left, right)

    def _chain(self):
        """The operands of the chain of this join that ``a & b & c`` builds
        (Python groups it to the left: ``(a & b) & c``), in order.

        The methods below walk a chain in a loop, not by recursion: a
        predicate of hundreds of terms would exhaust Python's stack.
        """
        rights = []
        node = self
        while type(node) is type(self):
            rights.append(node.right)
            node = node.left
        rights.append(node)
        rights.reverse()
        return rights

    def variables(self):
        names = set()
        for operand in self._chain():
            names |= operand.variables()
        return names

    def to_data(self):
        first, *rest = self._chain()
        data = first.to_data()
        for operand in rest:
            data = (self._tag, data, operand.to_data())
        return data

    def __str__(self):
        first, *rest = self._chain()
        text = str(first)
        for operand in rest:
            text = f"({text} {self._symbol} {operand})"
        return text


class And(_Junction):
    """``left & right``: both hold."""

    __slots__ = ()

    _tag = "and"
    _symbol = "&"

    def evaluate(self, fields):
        # Every operand is decided, so a missing variable always raises.
        return all([operand.evaluate(fields) for operand in self._chain()])


class Or(_Junction):
    """``left | right``: at least one holds."""

    __slots__ = ()

    _tag = "or"
    _symbol = "|"

    def evaluate(self, fields):
        return any([operand.evaluate(fields) for operand in self._chain()])


class Not(Predicate):
    """``~inner``: *inner* does not hold."""

    __slots__ = ("inner",)

    def __init__(self, inner):
        init(self, inner)

    def variables(self):
        return self.inner.variables()

    def evaluate(self, fields):
        return not self.inner.evaluate(fields)

    def to_data(self):
        return ("not", self.inner.to_data())

    def __str__(self):
        return f"~{self.inner}"


#: The predicate of a probe declared without one: every event matches.
ALWAYS = Constant(True)


# ---------------------------------------------------------------------------
# Variables


class Variable:
    """A quantity of an event that a predicate can test, such as ``function_name``.

    Comparing a variable with a value builds a :class:`Compare` node rather
    than a ``bool``; ``>>`` builds :class:`OneOf` or :class:`InRange`, and
    :meth:`like` builds :class:`Like`. Variables are therefore not hashable.
    """

    __slots__ = ("name", "kind", "doc")

    def __init__(self, name, kind, doc):
        self.name = name
        self.kind = kind
        self.doc = doc

    @property
    def banner_name(self):
        """The name as the banner prints it: ``function_name`` is ``function.name``."""
        return self.name.replace("_", ".")

    def __repr__(self):
        return self.name

    def __str__(self):
        return self.banner_name

    def __eq__(self, value):
        return self._compare("==", value)

    def __ne__(self, value):
        return self._compare("!=", value)

    def __lt__(self, value):
        return self._compare("<", value)

    def __le__(self, value):
        return self._compare("<=", value)

    def __gt__(self, value):
        return self._compare(">", value)

    def __ge__(self, value):
        return self._compare(">=", value)

    __hash__ = None

    def __rshift__(self, values):
        """``variable >> values``: membership in a list of values or a range."""
        if isinstance(values, range):
            return self._in_range(values)
        from .addresses import AddressSet, PendingSymbol

        if isinstance(values, (AddressSet, PendingSymbol)):
            if self is not memory_address:
                raise TypeError(
                    f"{self.name} >> {values!r}: only memory_address is tested "
                    f"against an AddressSet or a symbol no module defines yet"
                    + ("; use function_name" if self.name == "instruction_address" else "")
                )
            return InSet(self.name, values)
        if isinstance(values, (str, bytes)):
            raise TypeError(
                f"{self.name} >> {values!r}: '>>' takes a list of values; "
                f"compare with a single value using =="
            )
        try:
            items = list(values)
        except TypeError:
            raise TypeError(
                f"{self.name} >> ...: '>>' takes a list, tuple, set or range, "
                f"not {type(values).__name__}"
            ) from None
        if isinstance(values, (set, frozenset)):
            items.sort(key=_sort_key)
        checked = []
        for value in items:
            _check_value(self, value)
            if value not in checked:
                checked.append(value)
        return OneOf(self.name, tuple(checked))

    def like(self, glob):
        """Build a :class:`Like` node: the variable matches the glob *glob*."""
        if self.kind != ValueKind.STRING:
            raise TypeError(
                f"{self.name}.like(): only string variables "
                f"({', '.join(_string_variable_names())}) match globs"
            )
        if not isinstance(glob, str):
            raise TypeError(
                f"{self.name}.like() takes a str glob, not {type(glob).__name__}"
            )
        return Like(self.name, glob)

    def _compare(self, op, value):
        """Build the :class:`Compare` node ``self op value``, checking *value*."""
        if isinstance(value, Variable):
            raise TypeError(
                f"{self.name} {op} {value.name}: compare a variable with a value, "
                f"not with another variable"
            )
        _check_value(self, value)
        if op not in ("==", "!=") and not _orderable(self, value):
            raise TypeError(
                f"{self.name} {op} {value!r}: only numbers can be ordered; "
                f"use == or != here"
            )
        return Compare(self.name, op, value)

    def _in_range(self, values):
        """Build the :class:`InRange` node for ``self >> values``, a range."""
        if self.kind not in (ValueKind.NUMBER, ValueKind.ADDRESS, ValueKind.MEMORY):
            raise TypeError(
                f"{self.name} >> range(...): only numeric variables take a range"
            )
        if values.step != 1:
            raise ValueError(
                f"{self.name} >> {values!r}: a range must have step 1; "
                f"list the values instead"
            )
        for bound in (values.start, values.stop):
            if not 0 <= bound < INT_LIMIT:
                raise ValueError(
                    f"{self.name} >> {values!r}: bounds must lie in 0 .. 2**64 - 1"
                )
        return InRange(self.name, values.start, values.stop)


process_id = Variable("process_id", ValueKind.NUMBER, "the process id (pid)")
thread_id = Variable("thread_id", ValueKind.NUMBER, "the thread id (tid)")
module_name = Variable(
    "module_name", ValueKind.STRING,
    'the name of the module (executable or shared library), e.g. "libc.so.6"',
)
function_name = Variable(
    "function_name", ValueKind.STRING, "the function's symbol name"
)
function_address = Variable(
    "function_address", ValueKind.ADDRESS,
    "the function's entry address: absolute, or \"module+0xoffset\"",
)
syscall_num = Variable("syscall_num", ValueKind.NUMBER, "the system call number")
syscall_name = Variable(
    "syscall_name", ValueKind.STRING, 'the system call name, e.g. "openat"'
)
memory_address = Variable(
    "memory_address", ValueKind.ADDRESS, "the address read, written or executed"
)
memory_size = Variable(
    "memory_size", ValueKind.NUMBER, "the number of bytes read or written"
)
memory_value = Variable(
    "memory_value", ValueKind.MEMORY,
    "the bytes read or written; an int is compared with them read "
    "little-endian, unsigned",
)
branch_taken = Variable(
    "branch_taken", ValueKind.FLAG, "whether the conditional branch is taken"
)
instruction_address = Variable(
    "instruction_address", ValueKind.ADDRESS, "the address of the instruction"
)

#: Every predicate variable by name, in the order of the documentation.
VARIABLES = {
    variable.name: variable
    for variable in (
        process_id,
        thread_id,
        module_name,
        function_name,
        function_address,
        syscall_num,
        syscall_name,
        memory_address,
        memory_size,
        memory_value,
        branch_taken,
        instruction_address,
    )
}


# ---------------------------------------------------------------------------
# Checking, comparing and printing values


def _check_value(variable, value):
    """Raise TypeError or ValueError unless *value* suits *variable*."""
    kind = variable.kind
    if kind == ValueKind.STRING:
        if not isinstance(value, str):
            raise TypeError(_wrong_type(variable, "a str", value))
    elif kind == ValueKind.FLAG:
        if not isinstance(value, bool):
            raise TypeError(_wrong_type(variable, "a bool (True or False)", value))
    elif kind == ValueKind.ADDRESS and variable is function_address and isinstance(value, str):
        _parse_module_offset(value)
    elif kind == ValueKind.MEMORY and isinstance(value, bytes):
        pass
    elif isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < INT_LIMIT:
            raise ValueError(
                f"{variable.name} takes values from 0 to 2**64 - 1, not {value}"
            )
    elif variable is function_address:
        raise TypeError(
            _wrong_type(variable, 'an int or a "module+0xoffset" str', value)
        )
    elif kind == ValueKind.MEMORY:
        raise TypeError(_wrong_type(variable, "an int or bytes", value))
    else:
        raise TypeError(_wrong_type(variable, "an int", value))


def _wrong_type(variable, expected, value):
    """Return the message for a *value* of the wrong type for *variable*."""
    return f"{variable.name} takes {expected}, not {type(value).__name__}: {value!r}"


def _orderable(variable, value):
    """Whether *variable* may be compared with *value* by < <= > >=."""
    if variable.kind in (ValueKind.STRING, ValueKind.FLAG):
        return False
    return isinstance(value, int)


def _parse_module_offset(text):
    """Split ``"module+0xoffset"`` into ``(module, offset)``; ValueError if malformed."""
    module, plus, offset = text.rpartition("+")
    try:
        number = int(offset, 0)
    except ValueError:
        number = -1
    if not plus or not module or not 0 <= number < INT_LIMIT:
        raise ValueError(
            f'function_address takes "module+0xoffset" strings, not {text!r}'
        )
    return module, number


def _operands(variable, event_value, value):
    """Return the event's value and *value* in a form that compares them.

    An int compared with ``memory_value`` bytes reads the bytes as a
    little-endian unsigned int. Module-relative ``function_address`` values
    compare only with module-relative event values.
    """
    if variable.kind == ValueKind.MEMORY:
        if isinstance(value, int) and isinstance(event_value, bytes):
            return int.from_bytes(event_value, "little"), value
        if isinstance(value, bytes) and not isinstance(event_value, bytes):
            raise TypeError("memory_value: bytes compare only with bytes")
    if variable is function_address and isinstance(value, str):
        if not isinstance(event_value, str):
            raise TypeError(
                "function_address: a module-relative address compares only "
                'with an event value of the form "module+0xoffset"'
            )
        return _parse_module_offset(event_value), _parse_module_offset(value)
    if variable is function_address and isinstance(event_value, str):
        raise TypeError(
            "function_address: an absolute address does not compare "
            "with a module-relative event value"
        )
    return event_value, value


def _span(event_value):
    """The first and last byte of a ``memory_address`` event value: an
    ``(address, size)`` pair, or an int for one byte."""
    if isinstance(event_value, tuple):
        address, size = event_value
        return address, address + max(size, 1) - 1
    return event_value, event_value


def _format_value(variable, value):
    """Print *value* as the banner does."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if variable is function_name:
            return "@" + value
        return _quote(value)
    if isinstance(value, bytes):
        return repr(value)
    if variable.kind == ValueKind.ADDRESS:
        return hex(value)
    return str(value)


def _quote(text):
    """Put *text* in double quotes, escaping backslashes and double quotes."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _sort_key(value):
    """Order the values of a set so that they print the same way every run."""
    return (type(value).__name__, value)


def _string_variable_names():
    """Return the names of the variables whose values are strings."""
    return [v.name for v in VARIABLES.values() if v.kind == ValueKind.STRING]
