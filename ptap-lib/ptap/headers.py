"""The cache entries of C headers: what a header declares, kept between runs.

``include("stdio.h")`` needs the prototypes a header declares, and a header
needs the C preprocessor, which cannot run inside the traced program (it
would fork the target). So :mod:`ptap.prepare` preprocesses and parses the
header before the target starts and :func:`stores <store>` the result;
inside the target, :func:`load_entry` reads it back, after checking by
``stat`` that no file the preprocessor read has changed since.

An entry (see :mod:`ptap.cache` for where it lives) is made for the key
``[header, include_dirs, data_model]``, the directories made absolute. Its
value is::

    {"files": [["/usr/include/stdio.h", mtime_ns, size], ...],
     "error": None,
     "functions": 108,
     "typedefs": marshal.dumps([["size_t", TYPE], ...]),
     "prototypes": marshal.dumps([PROTOTYPE, ...]),
     "data": marshal.dumps([PROTOTYPE_DATA, ...])}

``TYPE`` and ``PROTOTYPE`` are encoded by :mod:`ptap.cdecl`;
``PROTOTYPE_DATA`` is the prototype's ``to_data()`` for the key's data
model, in the order of ``"prototypes"``: what the native runtime reads.
The last three are marshalled apart, to be read by :func:`contents` only
when they are needed: a traced process that includes ``stdio.h`` only
checks the entry's files, and reads what it declares only for a function
probe, ``prototype()`` or ``declare()`` (see :mod:`ptap.prototypes`).
A header that is not found or does not parse has an entry too, whose
``error`` is the message ``include()`` raises; :mod:`ptap.prepare` tries
it afresh at every run.
"""

import marshal
import os

from . import cache, cdecl
from ._record import Record, init

__all__ = ["Header", "entry_path", "load", "load_entry", "contents", "is_prepared", "store", "entry_of"]


class Header(Record):
    """What a header declares, or why it could not be had.

    *name* is the name given to ``include()``, such as ``"sys/stat.h"``;
    *error* the message ``include()`` raises, or None if the header was
    parsed; *typedefs* the typedefs the header (and what it includes)
    defines, by name; *prototypes* the :class:`~ptap.cdecl.Prototype` of
    every function it declares.
    """

    __slots__ = ("name", "error", "typedefs", "prototypes")

    def __init__(self, name, error, typedefs, prototypes):
        init(self, name, error, typedefs, prototypes)

    # Its fields are a dict and a list: it cannot be hashed.
    __hash__ = None


def entry_path(header, include_dirs, model=None):
    """Return the path of the cache entry of *header* found in *include_dirs*."""
    name = "headers/" + header.strip("/").replace("/", "_")
    return cache.entry_path(name, _key(header, include_dirs, model))


def load(header, include_dirs, model=None):
    """Return the cached :class:`Header` for *header*, or None if there is none or it is stale."""
    entry = load_entry(header, include_dirs, model)
    if entry is None:
        return None
    encoded_typedefs, encoded_prototypes, _ = contents(entry)
    typedefs = {name: cdecl.decode_type(ctype) for name, ctype in encoded_typedefs}
    prototypes = [cdecl.decode_prototype(proto) for proto in encoded_prototypes]
    return Header(header, entry["error"], typedefs, prototypes)


def load_entry(header, include_dirs, model=None):
    """Return the value of *header*'s entry (see above), or None if there is none or it is stale."""
    key = _key(header, include_dirs, model)
    entry = cache.load(entry_path(header, include_dirs, model), key)
    if not isinstance(entry, dict) or entry.keys() != _ENTRY_FIELDS:
        return None  # None, or an entry of another layout.
    if not _files_unchanged(entry["files"]):
        return None
    return entry


def contents(entry):
    """Return the typedefs, prototypes and data of an entry's value, as lists (see above)."""
    return tuple(marshal.loads(entry[part]) for part in ("typedefs", "prototypes", "data"))


def is_prepared(header, include_dirs, model=None):
    """Whether the cache has a current entry for *header* that holds no error."""
    entry = load_entry(header, include_dirs, model)
    return entry is not None and entry["error"] is None


def store(header, include_dirs, files, model=None):
    """Store *header* (a :class:`Header`) in the cache, as read from the files at *files*.

    Raises :exc:`OSError` if the entry cannot be written.
    """
    key = _key(header.name, include_dirs, model)
    cache.store(entry_path(header.name, include_dirs, model), key, entry_of(header, files, model))


def entry_of(header, files=(), model=None):
    """Return the value of the entry of *header* (a :class:`Header`) read from *files*."""
    return {
        "files": [_stamp(path) for path in files],
        "error": header.error,
        "functions": len(header.prototypes),
        "typedefs": marshal.dumps([[name, cdecl.encode_type(ctype)] for name, ctype in header.typedefs.items()]),
        "prototypes": marshal.dumps([cdecl.encode_prototype(proto) for proto in header.prototypes]),
        "data": marshal.dumps([proto.to_data(model) for proto in header.prototypes]),
    }


_ENTRY_FIELDS = {"files", "error", "functions", "typedefs", "prototypes", "data"}


def _key(header, include_dirs, model):
    """Return the cache key of *header* found in *include_dirs* for *model*."""
    model = model or cdecl.native_data_model()
    return [header, [os.path.abspath(directory) for directory in include_dirs], model.name]


def _stamp(path):
    """Return ``[path, mtime_ns, size]`` of the file at *path*."""
    status = os.stat(path)
    return [path, status.st_mtime_ns, status.st_size]


def _files_unchanged(files):
    """Whether every ``[path, mtime_ns, size]`` of *files* still describes its file."""
    for path, mtime_ns, size in files:
        try:
            status = os.stat(path)
        except OSError:
            return False
        if status.st_mtime_ns != mtime_ns or status.st_size != size:
            return False
    return True
