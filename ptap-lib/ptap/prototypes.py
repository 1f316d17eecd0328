"""C prototypes for scripts: ``include()``, ``declare()`` and ``prototype()``.

A function's arguments are decoded by its C prototype: ``char *`` as a
string, integers signed or unsigned by their type, and so on (see
:mod:`ptap.cdecl`). A script supplies prototypes at its top level::

    include("stdlib.h")                  # every function the header declares
    declare("int parse(const char *s, size_t n);")
    print(prototype("malloc"))           # void *malloc(size_t __size);

The prototypes and typedefs gathered so far form one registry per script
run (:func:`reset` empties it; the script loader calls it). ``declare()``
may use the typedefs of :data:`~ptap.cdecl.COMMON_TYPEDEFS` and of every
header included before. After the script's top level, the native runtime
fetches :func:`exported` once, and the banner lists
:func:`parsed_headers`.

``include()`` reads headers that were preprocessed and parsed before the
target started (see :mod:`ptap.headers` and :mod:`ptap.prepare`), because
the preprocessor cannot run inside the target. Outside a traced program,
as in tests or plain Python, a header missing from the cache is prepared
on the spot. A header's prototypes and typedefs are kept as the cache
holds them, read only when something asks for them (``prototype()``,
``declare()``, :func:`exported`) and decoded only when the script asks
for one: ``stdio.h`` alone has a hundred prototypes, which would take
milliseconds to decode in every traced process, and the native runtime
reads what it needs of them as the entry has it (see :mod:`ptap.headers`).
"""

from . import cdecl
from .errors import MissingPrototype, PrototypeError

__all__ = [
    "include",
    "declare",
    "prototype",
    "parsed_headers",
    "exported",
    "reset",
    "SYSCALL_HEADER",
]

#: What scripts for the original ProcessTap include to get the system
#: calls' prototypes; ProcessTap has them built in (see :mod:`ptap.syscalls`).
SYSCALL_HEADER = "linux_syscalls.h"

#: The typedefs known, by name, as CType objects.
_typedefs = {}
#: The cache entries of headers included and not read yet, in order.
_unread = []
#: Typedefs of headers included since the last declare(), by name, encoded.
_encoded_typedefs = {}
#: The prototypes of declare() and of the headers' functions asked for, by name.
_prototypes = {}
#: The other prototypes of headers: ``(encoded, to_data())`` by name. A
#: name is in this or in _prototypes, never both.
_encoded_prototypes = {}
#: ``(header, number_of_functions)`` of the headers included, in order.
_headers = []


def reset():
    """Forget every prototype, typedef and header: start a new script's registry."""
    _typedefs.clear()
    _typedefs.update(cdecl.COMMON_TYPEDEFS)
    _unread.clear()
    _encoded_typedefs.clear()
    _prototypes.clear()
    _encoded_prototypes.clear()
    _headers.clear()


reset()


def include(header):
    """Add the prototypes of every function the C header *header* declares.

    *header* is found as ``#include <header>`` would find it: in the ``-I``
    directories, then in the system include path. Including a header again
    does nothing. ``include("linux_syscalls.h")``, which scripts for the
    original ProcessTap wrote, is accepted and does nothing: the system
    calls' prototypes are built in.

    Raises :exc:`~ptap.errors.PrototypeError` if the header is not found,
    does not parse, or (inside a traced program) was not prepared.
    """
    if not isinstance(header, str):
        raise TypeError(f"include() takes a header name such as \"stdio.h\", not {header!r}")
    if header == SYSCALL_HEADER or header in (name for name, _ in _headers):
        return
    from . import headers
    from .script import include_dirs

    entry = headers.load_entry(header, include_dirs())
    if entry is None:
        if _inside_target():
            raise PrototypeError(_not_prepared_message(header))
        from .prepare import prepare_header  # Runs the preprocessor: never in the target.

        entry = headers.entry_of(prepare_header(header, include_dirs()))
    if entry["error"] is not None:
        raise PrototypeError(entry["error"])
    _unread.append(entry)
    _headers.append((header, entry["functions"]))


def _read_headers():
    """Take in what the headers included since the last call declare, in order."""
    from . import headers

    for entry in _unread:
        typedefs, encoded_prototypes, data = headers.contents(entry)
        _encoded_typedefs.update(typedefs)
        for encoded, exported_data in zip(encoded_prototypes, data):
            name = encoded[0]
            _prototypes.pop(name, None)
            _encoded_prototypes[name] = (encoded, exported_data)
    _unread.clear()


def declare(text):
    """Add the prototypes of the functions the C declarations *text* declare.

    *text* holds one or more declarations, typedefs among them::

        declare("typedef struct foo foo_t; int foo_init(foo_t *f, size_t n);")

    It may use the common typedefs (``size_t``, ``pid_t``, ``FILE``,
    ``uint32_t``, ...) and those of the headers included before. A function
    declared again replaces the earlier prototype.

    Returns the :class:`~ptap.cdecl.Prototype` if *text* declares exactly
    one function, else the list of those it declares, in order (empty if
    *text* holds only typedefs). Raises :exc:`~ptap.errors.PrototypeError`
    quoting the line at fault if *text* is not valid C.
    """
    if not isinstance(text, str):
        raise TypeError(f"declare() takes C declarations as a str, not {type(text).__name__}")
    from . import cparse  # Imports pycparser, which takes a while.

    # The headers' typedefs replace those known before, and declare()'s
    # replace them in turn: decode them in that order.
    _read_headers()
    for name, encoded in _encoded_typedefs.items():
        _typedefs[name] = cdecl.decode_type(encoded)
    _encoded_typedefs.clear()
    typedefs, prototypes = cparse.parse(text, _typedefs)
    _typedefs.update(typedefs)
    for proto in prototypes:
        _encoded_prototypes.pop(proto.name, None)
        _prototypes[proto.name] = proto
    return prototypes[0] if len(prototypes) == 1 else prototypes


def prototype(name):
    """Return the :class:`~ptap.cdecl.Prototype` of the function *name*.

    Raises :exc:`~ptap.errors.MissingPrototype` if no header included and
    no declaration declares it.
    """
    _read_headers()
    try:
        return _prototypes[name]
    except KeyError:
        pass
    if name in _encoded_prototypes:
        encoded, _ = _encoded_prototypes.pop(name)
        proto = _prototypes[name] = cdecl.decode_prototype(encoded)
        return proto
    included = ", ".join(header for header, _ in _headers) or "none"
    raise MissingPrototype(
        f"no prototype of {name!r} (headers included: {included}); "
        f"include() its header or declare() it"
    )


def parsed_headers():
    """Return ``[(header, number_of_functions), ...]`` of the headers included, in order."""
    return list(_headers)


def exported(model=None):
    """Return ``{name: prototype.to_data()}`` of every function included or declared.

    The native runtime fetches this once, after the script's top level, if
    the script has function probes.
    """
    _read_headers()
    native = model is None or model == cdecl.native_data_model()
    exported = {
        name: data if native else cdecl.decode_prototype(encoded).to_data(model)
        for name, (encoded, data) in _encoded_prototypes.items()
    }
    exported.update((name, proto.to_data(model)) for name, proto in _prototypes.items())
    return exported


def _inside_target():
    """Whether this runs inside a traced program, where ``_ptap`` exists."""
    try:
        import _ptap  # noqa: F401
    except ImportError:
        return False
    return True


def _not_prepared_message(header):
    """Return the message for a header that is not in the cache inside the target."""
    from . import cache

    return (
        f"header {header!r} was not prepared: the processtap launcher preprocesses "
        f"the headers a script includes before the target starts, and caches them "
        f"in {cache.directory()}, where a later run "
        f"(drrun -c libptap.so too) finds them. Run the script with processtap "
        f"once, or run: python3 -m ptap.prepare [-I DIR]... SCRIPT. The launcher "
        f"sees only include() calls whose argument is a string literal, "
        f'such as include("{header}").'
    )
