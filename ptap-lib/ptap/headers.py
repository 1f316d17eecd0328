"""The cache entries of C headers: what a header declares, kept between runs.

``include("stdio.h")`` needs the prototypes a header declares, and a header
needs the C preprocessor, which cannot run inside the traced program (it
would fork the target). So :mod:`ptap.prepare` preprocesses and parses the
header before the target starts and :func:`stores <store>` the result;
inside the target, :func:`load` reads it back, after checking by ``stat``
that no file the preprocessor read has changed since.

An entry (see :mod:`ptap.cache` for where it lives) is made for the key
``[header, include_dirs, data_model]``, the directories made absolute. Its
value is::

    {"files": [["/usr/include/stdio.h", mtime_ns, size], ...],
     "error": null,
     "typedefs": [["size_t", TYPE], ...],
     "prototypes": [PROTOTYPE, ...]}

``TYPE`` and ``PROTOTYPE`` are encoded by :mod:`ptap.cdecl`. A header that
is not found or does not parse has an entry too, whose ``error`` is the
message ``include()`` raises; :mod:`ptap.prepare` tries it afresh at every
run.
"""

import os

from . import cache, cdecl
from ._record import Record, init

__all__ = ["Header", "entry_path", "load", "is_prepared", "store"]


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

    # Its fields are a dict and a list: unhashable, as the dataclass was.
    __hash__ = None


def entry_path(header, include_dirs, model=None):
    """Return the path of the cache entry of *header* found in *include_dirs*."""
    name = "headers/" + header.strip("/").replace("/", "_")
    return cache.entry_path(name, _key(header, include_dirs, model))


def load(header, include_dirs, model=None):
    """Return the cached :class:`Header` for *header*, or None if there is none or it is stale."""
    entry = _current_entry(header, include_dirs, model)
    if entry is None:
        return None
    typedefs = {name: cdecl.decode_type(ctype) for name, ctype in entry["typedefs"]}
    prototypes = [cdecl.decode_prototype(proto) for proto in entry["prototypes"]]
    return Header(header, entry["error"], typedefs, prototypes)


def is_prepared(header, include_dirs, model=None):
    """Whether the cache has a current entry for *header* that holds no error."""
    entry = _current_entry(header, include_dirs, model)
    return entry is not None and entry["error"] is None


def store(header, include_dirs, files, model=None):
    """Store *header* (a :class:`Header`) in the cache, as read from the files at *files*.

    Raises :exc:`OSError` if the entry cannot be written.
    """
    value = {
        "files": [_stamp(path) for path in files],
        "error": header.error,
        "typedefs": [[name, cdecl.encode_type(ctype)] for name, ctype in header.typedefs.items()],
        "prototypes": [cdecl.encode_prototype(proto) for proto in header.prototypes],
    }
    key = _key(header.name, include_dirs, model)
    cache.store(entry_path(header.name, include_dirs, model), key, value)


def _key(header, include_dirs, model):
    """Return the cache key of *header* found in *include_dirs* for *model*."""
    model = model or cdecl.native_data_model()
    return [header, [os.path.abspath(directory) for directory in include_dirs], model.name]


def _current_entry(header, include_dirs, model):
    """Return the value of *header*'s entry if no file it was made from has changed."""
    key = _key(header, include_dirs, model)
    entry = cache.load(entry_path(header, include_dirs, model), key)
    if entry is None or not _files_unchanged(entry["files"]):
        return None
    return entry


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
