"""The on-disk cache of what ProcessTap computes once and reads at every start.

Parsing C costs tens of milliseconds per header, and a header needs a C
preprocessor, which must not run inside the traced program. So
declarations are parsed once, before the target starts, and kept in files
that every traced process only reads::

    $PTAP_CACHE_DIR/                      (else $XDG_CACHE_HOME/processtap,
                                           else ~/.cache/processtap)
        headers/stdio.h-1a2b3c4d.marshal  one header (see ptap.headers)
        headers/sys_stat.h-5e6f7a8b.marshal
        syscalls-9c0d1e2f.marshal         the system-call prototypes (ptap.syscalls)
        scripts/script-0a1b2c3d.marshal   a script's compiled code (ptap.script)

An entry is made for a *key*: a list of everything its contents depend on
(for a header, its name, the ``-I`` directories and the data model). The
file's name holds a checksum of the key, and the file holds the key
itself, which :func:`load` compares, so two keys never share an entry.
:data:`FORMAT` is part of every key: a new layout never reads an old one.

Entries are in :mod:`marshal`'s format, which the interpreter reads
without importing anything (``json`` would bring ``re`` into every traced
process) and several times faster than JSON. Keys and values are made of
``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, tuples, lists
and dicts, whose encoding :data:`marshal.version` fixes: that version
is part of every key, so an interpreter that reads another format never
reads an entry written in this one. (A value may also hold code objects,
whose format changes with the interpreter's version: their key must say
which version made them.)

A file is the CRC-32 of the rest (4 bytes, little-endian), then the
marshalled ``(key, value)``. Files are written under a temporary name and
renamed into place, so a reader sees a whole entry or none, even while
another process writes the same one. An entry that cannot be read, fails
its checksum (``marshal`` checks little, and a damaged code object could
crash the interpreter that runs it) or does not hold its key is no entry;
a cache that cannot be written leaves the caller to compute again next
time.
"""

import marshal
import os
import zlib

__all__ = ["FORMAT", "directory", "entry_path", "load", "store"]

#: The version of the entries' layout, part of every key.
FORMAT = 2


def directory():
    """Return the cache's directory (it may not exist yet)."""
    explicit = os.environ.get("PTAP_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "processtap")


def entry_path(name, key):
    """Return the path of the entry *name* (``"headers/stdio.h"``) made for *key*."""
    checksum = zlib.crc32(repr(_full_key(key)).encode("utf-8"))
    return os.path.join(directory(), f"{name}-{checksum:08x}.marshal")


def load(path, key):
    """Return the value stored at *path* for *key*, or None if there is none."""
    try:
        with open(path, "rb") as file:
            checksum = file.read(4)
            data = file.read()
        if len(checksum) != 4 or int.from_bytes(checksum, "little") != zlib.crc32(data):
            return None  # Damaged, or not an entry at all.
        stored_key, value = marshal.loads(data)
    except (OSError, EOFError, ValueError, TypeError):
        return None  # Missing or unreadable, or a layout of its own.
    if stored_key != _full_key(key):
        return None
    return value


def store(path, key, value):
    """Store *value* at *path* for *key*, atomically.

    *value* is made of the types the module docstring lists. Creates the
    cache's folders if need be. Raises :exc:`OSError` if the entry cannot
    be written.
    """
    data = marshal.dumps((_full_key(key), value))
    data = zlib.crc32(data).to_bytes(4, "little") + data
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


def _full_key(key):
    """Return *key* (a list) preceded by what the entries' format depends on."""
    return [FORMAT, marshal.version, *key]


def _remove(path):
    """Remove the file at *path* if it is there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
