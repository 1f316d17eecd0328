"""C types and function prototypes, as ProcessTap decodes values by them.

A :class:`Prototype` is what a C declaration says about a function: its
name, the type it returns, its parameters and whether it takes more
(``...``). Types are small immutable trees -- :class:`Basic`,
:class:`Typedef`, :class:`Tagged`, :class:`Pointer`, :class:`Array` and
:class:`Function` -- that keep what the declaration wrote (typedef names,
qualifiers, parameter names), so a prototype prints back as C::

    >>> str(prototype("malloc"))
    'void *malloc(size_t __size);'

The native runtime needs less than that: how to decode each value.
:meth:`Prototype.to_data` says so in plain tuples::

    (name, restype, params, variadic)        # str, TypeData, tuple, bool
    TypeData = (kind, size, signed, detail)  # str, int, bool, see below

==============  =============================================================
kind            values of this kind
==============  =============================================================
``"void"``      no value: a function's return type only; size 0
``"int"``       integers of every width, enums (4 bytes, signed), and
                typedefs of them (``size_t``, ``pid_t``, ...)
``"bool"``      ``_Bool``, 1 byte
``"float"``     ``float``, 4 bytes
``"double"``    ``double``, 8 bytes
``"long double"`` x87's 80-bit ``long double``, 16 bytes (12 on 32-bit x86);
                decoded as a return value only
``"string"``    a pointer to ``char`` or ``const char``: a NUL-terminated
                string
``"pointer"``   any other pointer, including arrays and functions passed
                as parameters (they decay to pointers)
``"buffer"``    a pointer to bytes whose length another value gives (system
                calls only); detail is ``(length_from, direction)``, see
                :class:`Buffer`
``"strings"``   a NULL-terminated array of strings, as ``execve``'s ``argv``
                (system calls only)
``"unsupported"`` a value ProcessTap cannot place: a struct or union passed
                by value, ``_Complex``; size 0 and detail a
                short reason
==============  =============================================================

``detail`` is None for every kind but ``"buffer"`` and ``"unsupported"``.
Sizes follow a :class:`DataModel`: :data:`LP64` on x86-64 (``long`` and
pointers are 8 bytes) and :data:`ILP32` on 32-bit x86 (4 bytes); by
default, that of the running interpreter.

:func:`encode_prototype` and :func:`decode_prototype` (and their
counterparts for types) turn prototypes into lists of strings, numbers and
lists, and back: the form in which :mod:`ptap.cache` stores them.
This module parses no C; :mod:`ptap.cparse` does, with pycparser.
"""

import sys

from ._record import Record, init

__all__ = [
    "DataModel",
    "LP64",
    "ILP32",
    "DATA_MODELS",
    "native_data_model",
    "CType",
    "Basic",
    "Typedef",
    "Tagged",
    "Pointer",
    "Array",
    "Function",
    "Param",
    "Buffer",
    "STRINGS",
    "Prototype",
    "COMMON_TYPEDEFS",
    "encode_type",
    "decode_type",
    "encode_prototype",
    "decode_prototype",
]


# ---------------------------------------------------------------------------
# Data models


class DataModel(Record):
    """The sizes of ``long`` and of pointers, which differ between ABIs.

    *name* is ``"LP64"`` or ``"ILP32"``; *long_size* and *pointer_size*
    are the bytes in a ``long`` and in a pointer.
    """

    __slots__ = ("name", "long_size", "pointer_size")

    def __init__(self, name, long_size, pointer_size):
        init(self, name, long_size, pointer_size)


#: x86-64 Linux: ``long`` and pointers are 8 bytes.
LP64 = DataModel("LP64", long_size=8, pointer_size=8)
#: 32-bit x86 Linux: ``int``, ``long`` and pointers are 4 bytes.
ILP32 = DataModel("ILP32", long_size=4, pointer_size=4)
#: Both, by name.
DATA_MODELS = {model.name: model for model in (LP64, ILP32)}


def native_data_model():
    """Return the data model of the running interpreter (and so of the target)."""
    return LP64 if sys.maxsize > 2**32 else ILP32


# ---------------------------------------------------------------------------
# Types


class CType(Record):
    """A C type, as a declaration wrote it.

    Subclasses are immutable records (:class:`~ptap._record.Record`). ``str()`` of a type is its C
    spelling (``const char *``); :meth:`declare` spells a declaration of a
    name of that type.
    """

    __slots__ = ()

    def declare(self, name=""):
        """Return C text declaring *name* with this type: ``char *name``."""
        return _declarator(self, name)

    def resolve(self):
        """Return the type with any outer typedef names replaced by their meaning."""
        return self

    def to_data(self, model=None):
        """Return how a value of this type is decoded: ``(kind, size, signed, detail)``."""
        return self.resolve()._data(model or native_data_model())

    def _data(self, model):
        """The TypeData of this type, which is not a typedef name."""
        raise NotImplementedError

    def __str__(self):
        return self.declare()


class Basic(CType):
    """A type named by keywords: ``void``, ``int``, ``unsigned long``, ``double``.

    *name* is the keywords as written, such as ``"unsigned long int"``;
    *quals* the qualifiers as written: ``("const",)``.
    """

    __slots__ = ("name", "quals")

    def __init__(self, name, quals=()):
        init(self, name, quals)

    def spelling(self):
        """The type's C text without a declarator."""
        return _qualified(self.quals, self.name)

    def _data(self, model):
        return _basic_data(self.name.split(), model)


class Typedef(CType):
    """A typedef name, such as ``size_t``, and the type it stands for.

    *target* is the type the name stands for (itself perhaps a
    :class:`Typedef`).
    """

    __slots__ = ("name", "target", "quals")

    def __init__(self, name, target, quals=()):
        init(self, name, target, quals)

    def spelling(self):
        """The type's C text without a declarator."""
        return _qualified(self.quals, self.name)

    def resolve(self):
        return self.target.resolve()


class Tagged(CType):
    """A ``struct``, ``union`` or ``enum`` type, named by its tag (None if anonymous).

    *keyword* is ``"struct"``, ``"union"`` or ``"enum"``.
    """

    __slots__ = ("keyword", "tag", "quals")

    def __init__(self, keyword, tag=None, quals=()):
        init(self, keyword, tag, quals)

    def spelling(self):
        """The type's C text without a declarator."""
        return _qualified(self.quals, f"{self.keyword} {self.tag or '{...}'}")

    def _data(self, model):
        if self.keyword == "enum":
            return ("int", 4, True, None)
        return ("unsupported", 0, False, f"{self.keyword} by value")


class Pointer(CType):
    """A pointer to *target*; *quals* qualify the pointer itself: ``char *const p``."""

    __slots__ = ("target", "quals")

    def __init__(self, target, quals=()):
        init(self, target, quals)

    def _data(self, model):
        target = self.target.resolve()
        if isinstance(target, Basic) and target.name == "char":
            return ("string", model.pointer_size, False, None)
        return ("pointer", model.pointer_size, False, None)


class Array(CType):
    """An array of *element*; as a parameter, it is a pointer to *element*.

    *length* is the length as written (``"16"``), or None for ``[]``.
    """

    __slots__ = ("element", "length", "quals")

    def __init__(self, element, length=None, quals=()):
        init(self, element, length, quals)

    def _data(self, model):
        return Pointer(self.element)._data(model)


class Function(CType):
    """A function type; as a parameter, it is a pointer to a function.

    *params* are its :class:`Param` objects; *variadic* says whether it
    takes more arguments (``...``).
    """

    __slots__ = ("restype", "params", "variadic")

    def __init__(self, restype, params=(), variadic=False):
        init(self, restype, params, variadic)

    def _data(self, model):
        return ("pointer", model.pointer_size, False, None)

    def params_text(self):
        """The parameter list's C text, without parentheses: ``int fd, ...``."""
        params = [str(param) for param in self.params]
        if self.variadic:
            params.append("...")
        return ", ".join(params) or "void"


def _qualified(quals, name):
    """Return *name* preceded by the qualifiers *quals*."""
    return " ".join((*quals, name))


def _join(left, right):
    """Join two pieces of C text with a space, leaving out empty ones."""
    return f"{left} {right}" if left and right else left or right


def _declarator(ctype, inner):
    """Return C text declaring *inner* (a name, or an inner declarator) of *ctype*.

    C declarators read inside out: a pointer's ``*`` goes before the inner
    part, an array's ``[n]`` and a function's ``(params)`` after it, and a
    pointer to an array or function needs parentheses: ``void (*f)(int)``.
    """
    while True:
        if isinstance(ctype, Pointer):
            inner = "*" + _join(" ".join(ctype.quals), inner)
            if isinstance(ctype.target, (Array, Function)):
                inner = f"({inner})"
            ctype = ctype.target
        elif isinstance(ctype, Array):
            inner = f"{inner}[{_join(' '.join(ctype.quals), ctype.length or '')}]"
            ctype = ctype.element
        elif isinstance(ctype, Function):
            inner = f"{inner}({ctype.params_text()})"
            ctype = ctype.restype
        else:
            return _join(ctype.spelling(), inner)


def _basic_data(words, model):
    """Return the TypeData of the type named by the keywords *words*."""
    if "_Complex" in words:
        return ("unsupported", 0, False, "_Complex value")
    if words == ["void"]:
        return ("void", 0, False, None)
    if words == ["_Bool"]:
        return ("bool", 1, False, None)
    if words == ["float"]:
        return ("float", 4, False, None)
    if words == ["double"]:
        return ("double", 8, False, None)
    if "double" in words:
        # x87's 80-bit format, in 16 bytes on x86-64 and 12 on i386.
        return ("long double", 16 if model.pointer_size == 8 else 12, False, None)
    if "__int128" in words:
        return ("unsupported", 0, False, "128-bit integer")
    size = _integer_size(words, model)
    if size is None:
        return ("unsupported", 0, False, f"unknown type {' '.join(words)}")
    return ("int", size, "unsigned" not in words, None)


def _integer_size(words, model):
    """Return the size of the integer type named by *words*, or None if not one."""
    if not set(words) <= {"signed", "unsigned", "char", "short", "int", "long"}:
        return None
    if "char" in words:
        return 1
    if "short" in words:
        return 2
    longs = words.count("long")
    if longs == 2:
        return 8
    if longs == 1:
        return model.long_size
    return 4


# ---------------------------------------------------------------------------
# Parameters and prototypes


class Buffer(Record):
    """How a system call's pointer argument is decoded: as the bytes it points to.

    *direction* is ``"in"`` if the call reads the bytes (decoded at entry,
    and at exit) or ``"out"`` if it fills them (decoded at exit only).
    *length_from* says where the number of bytes is: the index of a
    parameter (from 0), or ``"retval"``, the value the call returned (for
    ``"out"`` buffers). Its TypeData is ``("buffer", pointer_size, False,
    (length_from, direction))``.
    """

    __slots__ = ("direction", "length_from")

    def __init__(self, direction, length_from):
        init(self, direction, length_from)

    def to_data(self, model=None):
        """Return the TypeData of the argument."""
        model = model or native_data_model()
        return ("buffer", model.pointer_size, False, (self.length_from, self.direction))


class _Strings(Record):
    """A NULL-terminated array of strings, as ``execve``'s ``argv`` (system calls only)."""

    __slots__ = ()

    def to_data(self, model=None):
        """Return the TypeData of the argument."""
        model = model or native_data_model()
        return ("strings", model.pointer_size, False, None)


#: The decoding of a NULL-terminated array of strings.
STRINGS = _Strings()


class Param(Record):
    """A parameter of a prototype: its name (None if the declaration gave none) and type.

    *decoding*, for system calls, is a :class:`Buffer` or :data:`STRINGS`
    that decodes the argument instead of its type; None to decode it by
    its type.
    """

    __slots__ = ("name", "type", "decoding")

    def __init__(self, name, type, decoding=None):
        init(self, name, type, decoding)

    def to_data(self, model=None):
        """Return how the argument is decoded: ``(kind, size, signed, detail)``."""
        if self.decoding is not None:
            return self.decoding.to_data(model)
        return self.type.to_data(model)

    def __str__(self):
        return self.type.declare(self.name or "")


class Prototype(Record):
    """A function's C prototype: ``str()`` is its declaration, ``void *malloc(size_t size);``.

    *restype* is the return type, *params* the :class:`Param` objects in
    order, and *variadic* says whether the function takes more arguments
    than *params* (``...``).
    """

    __slots__ = ("name", "restype", "params", "variadic")

    def __init__(self, name, restype, params=(), variadic=False):
        init(self, name, restype, params, variadic)

    def to_data(self, model=None):
        """Return ``(name, restype, params, variadic)`` for the native runtime.

        *restype* and each of *params* are TypeData tuples (see the module
        docstring), sized by *model* (by default the interpreter's).
        """
        model = model or native_data_model()
        params = tuple(param.to_data(model) for param in self.params)
        return (self.name, self.restype.to_data(model), params, self.variadic)

    def __str__(self):
        return Function(self.restype, self.params, self.variadic).declare(self.name) + ";"

    def __repr__(self):
        return f"<Prototype {self}>"


# ---------------------------------------------------------------------------
# Typedefs every declaration may use


_VOID_POINTER = Pointer(Basic("void"))

#: Typedefs of the C library and the kernel that ``declare()`` and the
#: system-call prototypes may use without including a header, by name.
#: ``long`` stands for the types as wide as a pointer, ``long long`` for
#: the 64-bit ones, so that both data models size them right.
COMMON_TYPEDEFS = {
    # <stddef.h>, <stdint.h>
    "size_t": Basic("unsigned long"),
    "ssize_t": Basic("long"),
    "ptrdiff_t": Basic("long"),
    "wchar_t": Basic("int"),
    "wint_t": Basic("unsigned int"),
    "int8_t": Basic("signed char"),
    "int16_t": Basic("short"),
    "int32_t": Basic("int"),
    "int64_t": Basic("long long"),
    "uint8_t": Basic("unsigned char"),
    "uint16_t": Basic("unsigned short"),
    "uint32_t": Basic("unsigned int"),
    "uint64_t": Basic("unsigned long long"),
    "intptr_t": Basic("long"),
    "uintptr_t": Basic("unsigned long"),
    "intmax_t": Basic("long long"),
    "uintmax_t": Basic("unsigned long long"),
    # <sys/types.h>
    "off_t": Basic("long"),
    "off64_t": Basic("long long"),
    "loff_t": Basic("long long"),
    "pid_t": Basic("int"),
    "uid_t": Basic("unsigned int"),
    "gid_t": Basic("unsigned int"),
    "id_t": Basic("unsigned int"),
    "mode_t": Basic("unsigned int"),
    "umode_t": Basic("unsigned short"),
    "dev_t": Basic("unsigned long long"),
    "ino_t": Basic("unsigned long"),
    "nlink_t": Basic("unsigned long"),
    "blksize_t": Basic("long"),
    "blkcnt_t": Basic("long"),
    "key_t": Basic("int"),
    "time_t": Basic("long"),
    "suseconds_t": Basic("long"),
    "useconds_t": Basic("unsigned int"),
    "clock_t": Basic("long"),
    "clockid_t": Basic("int"),
    "timer_t": _VOID_POINTER,
    "pthread_t": Basic("unsigned long"),
    # <stdio.h>, <dirent.h>, <stdarg.h>
    "FILE": Tagged("struct", "_IO_FILE"),
    "DIR": Tagged("struct", "__dirstream"),
    "va_list": _VOID_POINTER,
    # <signal.h>, <sys/select.h>, <poll.h>
    "sig_atomic_t": Basic("int"),
    "sigset_t": Tagged("struct", "__sigset_t"),
    "siginfo_t": Tagged("struct", "siginfo"),
    "stack_t": Tagged("struct", "sigaltstack"),
    "fd_set": Tagged("struct", "fd_set"),
    "nfds_t": Basic("unsigned long"),
    # <sys/socket.h>, <netinet/in.h>
    "socklen_t": Basic("unsigned int"),
    "sa_family_t": Basic("unsigned short"),
    "in_addr_t": Basic("unsigned int"),
    "in_port_t": Basic("unsigned short"),
}


# ---------------------------------------------------------------------------
# Encoding as plain lists


def encode_type(ctype):
    """Return *ctype* as a list of strings, numbers and lists, for the cache."""
    if isinstance(ctype, Basic):
        return ["basic", ctype.name, list(ctype.quals)]
    if isinstance(ctype, Typedef):
        return ["typedef", ctype.name, list(ctype.quals), encode_type(ctype.target)]
    if isinstance(ctype, Tagged):
        return ["tagged", ctype.keyword, ctype.tag, list(ctype.quals)]
    if isinstance(ctype, Pointer):
        return ["pointer", encode_type(ctype.target), list(ctype.quals)]
    if isinstance(ctype, Array):
        return ["array", encode_type(ctype.element), ctype.length, list(ctype.quals)]
    if isinstance(ctype, Function):
        params = [_encode_param(param) for param in ctype.params]
        return ["function", encode_type(ctype.restype), params, ctype.variadic]
    raise TypeError(f"not a C type: {ctype!r}")


def decode_type(data):
    """Return the :class:`CType` that :func:`encode_type` turned into *data*."""
    tag = data[0]
    if tag == "basic":
        return Basic(data[1], tuple(data[2]))
    if tag == "typedef":
        return Typedef(data[1], decode_type(data[3]), tuple(data[2]))
    if tag == "tagged":
        return Tagged(data[1], data[2], tuple(data[3]))
    if tag == "pointer":
        return Pointer(decode_type(data[1]), tuple(data[2]))
    if tag == "array":
        return Array(decode_type(data[1]), data[2], tuple(data[3]))
    if tag == "function":
        params = tuple(_decode_param(param) for param in data[2])
        return Function(decode_type(data[1]), params, data[3])
    raise ValueError(f"not an encoded C type: {data!r}")


def encode_prototype(proto):
    """Return *proto* as a list of strings, numbers and lists, for the cache."""
    params = [_encode_param(param) for param in proto.params]
    return [proto.name, encode_type(proto.restype), params, proto.variadic]


def decode_prototype(data):
    """Return the :class:`Prototype` that :func:`encode_prototype` turned into *data*."""
    name, restype, params, variadic = data
    params = tuple(_decode_param(param) for param in params)
    return Prototype(name, decode_type(restype), params, variadic)


def _encode_param(param):
    """Return a :class:`Param` as a list: ``[name, type, decoding]``."""
    return [param.name, encode_type(param.type), _encode_decoding(param.decoding)]


def _decode_param(data):
    """Return the :class:`Param` that :func:`_encode_param` turned into *data*."""
    name, ctype, decoding = data
    return Param(name, decode_type(ctype), _decode_decoding(decoding))


def _encode_decoding(decoding):
    """Return a parameter's decoding as None, ``["strings"]`` or ``["buffer", ...]``."""
    if decoding is None:
        return None
    if decoding is STRINGS:
        return ["strings"]
    return ["buffer", decoding.direction, decoding.length_from]


def _decode_decoding(data):
    """Return the decoding that :func:`_encode_decoding` turned into *data*."""
    if data is None:
        return None
    if data[0] == "strings":
        return STRINGS
    return Buffer(data[1], data[2])
