"""Immutable value classes, as frozen dataclasses make them, without ``dataclasses``.

Every process the target starts imports ``ptap``, and importing
``dataclasses`` (with the ``inspect``, ``re`` and ``enum`` it brings) and
decorating a class with it cost more than all the rest of the package: tens
of milliseconds per process. :class:`Record` gives what ProcessTap's
classes need of a frozen dataclass: fields named in ``__slots__``,
equality and hashing by the fields' values, a ``repr`` naming them, and
attributes that cannot be assigned::

    class Point(Record):
        __slots__ = ("x", "y")

        def __init__(self, x, y=0):
            init(self, x, y)
"""

__all__ = ["Record", "init"]

_set = object.__setattr__


def init(record, *values):
    """Set the fields of *record*, in the order of :attr:`Record._fields`, to *values*."""
    for name, value in zip(record._fields, values):
        _set(record, name, value)


class Record:
    """An immutable object, compared, hashed and printed by the values of its fields.

    A subclass names its own fields in ``__slots__``; they follow those of
    its bases in :attr:`_fields`. Its ``__init__`` sets them with
    :func:`init`. Two records are equal if they are of the same class and
    their fields are equal.
    """

    __slots__ = ()

    #: The names of the fields, the bases' first; set for each subclass.
    _fields = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__slots__", ())
        cls._fields = cls._fields + ((own,) if isinstance(own, str) else tuple(own))

    def _values(self):
        """Return the values of the fields, in order."""
        return tuple([getattr(self, name) for name in self._fields])

    def __setattr__(self, name, value):
        raise AttributeError(f"cannot assign to field {name!r} of a {type(self).__name__}")

    def __delattr__(self, name):
        raise AttributeError(f"cannot delete field {name!r} of a {type(self).__name__}")

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self):
        return hash(self._values())

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({fields})"

    def __reduce__(self):
        # For copy and pickle, which would otherwise assign the slots.
        return type(self), self._values()
