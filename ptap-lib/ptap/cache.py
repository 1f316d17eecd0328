"""The on-disk cache of parsed C declarations.

Parsing C costs tens of milliseconds per header, and a header needs a C
preprocessor, which must not run inside the traced program. So
declarations are parsed once, before the target starts, and kept as JSON
files that the target only reads::

    $PTAP_CACHE_DIR/                      (else $XDG_CACHE_HOME/processtap,
                                           else ~/.cache/processtap)
        headers/stdio.h-1a2b3c4d.json     one header (see ptap.headers)
        headers/sys_stat.h-5e6f7a8b.json
        syscalls-9c0d1e2f.json            the system-call prototypes (ptap.syscalls)

An entry is made for a *key*: a list of everything its contents depend on
(for a header, its name, the ``-I`` directories and the data model). The
file's name holds a checksum of the key, and the file holds the key
itself, which :func:`load` compares, so two keys never share an entry.
:data:`FORMAT` is part of every key: a new layout never reads an old one.

Files are written under a temporary name and renamed into place, so a
reader sees a whole entry or none, even while another process writes the
same one.
"""

import json
import os
import zlib

__all__ = ["FORMAT", "directory", "entry_path", "load", "store"]

#: The version of the entries' layout, part of every key.
FORMAT = 1


def directory():
    """Return the cache's directory (it may not exist yet)."""
    explicit = os.environ.get("PTAP_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "processtap")


def entry_path(name, key):
    """Return the path of the entry *name* (``"headers/stdio.h"``) made for *key*."""
    checksum = zlib.crc32(_key_text(key).encode("utf-8"))
    return os.path.join(directory(), f"{name}-{checksum:08x}.json")


def load(path, key):
    """Return the value stored at *path* for *key*, or None if there is none."""
    try:
        with open(path, encoding="utf-8") as file:
            entry = json.load(file)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != _key_text(key):
        return None
    return entry.get("value")


def store(path, key, value):
    """Store the JSON-ready *value* at *path* for *key*, atomically.

    Creates the cache's folders if need be. Raises :exc:`OSError` if the
    entry cannot be written.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump({"key": _key_text(key), "value": value}, file, separators=(",", ":"))
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


def _key_text(key):
    """Return *key* (a list of JSON-ready values) and :data:`FORMAT` as JSON text."""
    return json.dumps([FORMAT, *key], separators=(",", ":"))


def _remove(path):
    """Remove the file at *path* if it is there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
