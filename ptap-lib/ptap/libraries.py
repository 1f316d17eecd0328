"""The libraries a program would load, found as glibc's dynamic loader
finds them, without running it (``processtap -l``).

:func:`load_order` follows ``DT_NEEDED`` breadth first from the
executable, as ``ld.so`` does, and looks each name up in ``ld.so``'s
order: a name with a slash is a path; else the loading object's
``DT_RPATH`` and its loaders' (when it has no ``DT_RUNPATH``),
``LD_LIBRARY_PATH``, its ``DT_RUNPATH``, ``/etc/ld.so.cache``, then the
default directories. ``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` are expanded;
a file of the other ELF class is passed over, as the loader does.
Libraries a program opens with ``dlopen`` are not known before it runs.
"""

import os
import struct

from .elf import ElfError, ElfFile

__all__ = ["load_order", "cache_entries"]

#: ld.so's default directories, by ELF class (Debian's multiarch first).
DEFAULT_DIRS = {
    64: ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"),
    32: ("/lib/i386-linux-gnu", "/usr/lib/i386-linux-gnu", "/lib32", "/usr/lib32", "/lib", "/usr/lib"),
}
CACHE = "/etc/ld.so.cache"
_CACHE_MAGIC = b"glibc-ld.so.cache1.1"
#: The cache's flags for an x86-64 library (FLAG_ELF_LIBC6 | FLAG_X8664_LIB64)
#: and an i386 one (FLAG_ELF_LIBC6).
_CACHE_FLAGS = {64: 0x0303, 32: 0x0003}


def load_order(executable, environ=None):
    """``[(name, path), ...]``: the executable, its interpreter, then the
    libraries it needs in the order ``ld.so`` would load them (path None
    for one not found)."""
    environ = os.environ if environ is None else environ
    main = ElfFile(executable)
    cache = cache_entries(main.bits)
    library_path = [d for d in environ.get("LD_LIBRARY_PATH", "").replace(";", ":").split(":") if d]
    order = [(os.path.basename(executable), executable)]
    seen = set()
    if main.interpreter:
        interpreter = os.path.realpath(main.interpreter)
        order.append((os.path.basename(main.interpreter), interpreter))
        seen.add(os.path.basename(main.interpreter))
    queue = [(name, main, [main]) for name in main.needed]
    while queue:
        name, loader, chain = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        path = _find(name, loader, chain, main.bits, library_path, cache)
        order.append((name, path))
        if path is None:
            continue
        try:
            library = ElfFile(path)
        except (OSError, ElfError):
            continue
        queue.extend((needed, library, chain + [library]) for needed in library.needed)
    return order


def _find(name, loader, chain, bits, library_path, cache):
    """Where ``ld.so`` finds *name* for *loader* (None if nowhere)."""
    if "/" in name:
        return _usable(_expand(name, loader, bits), bits)
    candidates = []
    if not loader.has_runpath:
        # DT_RPATH of the loader, then of the objects that loaded it.
        for obj in reversed(chain):
            if not obj.has_runpath:
                candidates += [_expand(d, obj, bits) for d in obj.rpath]
    candidates += library_path
    candidates += [_expand(d, loader, bits) for d in loader.runpath]
    for directory in candidates:
        found = _usable(os.path.join(directory, name), bits)
        if found:
            return found
    if name in cache:
        found = _usable(cache[name], bits)
        if found:
            return found
    for directory in DEFAULT_DIRS[bits]:
        found = _usable(os.path.join(directory, name), bits)
        if found:
            return found
    return None


def _expand(text, obj, bits):
    """*text* with ``$ORIGIN`` (the object's directory), ``$LIB`` and
    ``$PLATFORM`` replaced, in both spellings."""
    origin = os.path.dirname(os.path.realpath(obj.path))
    for name, value in (("ORIGIN", origin), ("LIB", "lib64" if bits == 64 else "lib"),
                        ("PLATFORM", "x86_64" if bits == 64 else "i686")):
        text = text.replace("${" + name + "}", value).replace("$" + name, value)
    return text


def _usable(path, bits):
    """*path* if it is an ELF file of class *bits*, else None."""
    try:
        if ElfFile(path).bits == bits:
            return path
    except (OSError, ElfError):
        pass
    return None


def cache_entries(bits, path=CACHE):
    """``{soname: path}`` of ``ld.so.cache``'s libraries of ELF class
    *bits* (the first of each name, as the loader takes it)."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        return {}
    start = data.find(_CACHE_MAGIC)
    if start < 0:
        return {}
    count, _strings = struct.unpack_from("<II", data, start + len(_CACHE_MAGIC))
    entries = {}
    first = start + 48
    for i in range(count):
        flags, key, value, _osversion, _hwcap = struct.unpack_from("<iIIIQ", data, first + i * 24)
        if flags & 0xFFFF != _CACHE_FLAGS[bits]:
            continue
        name = _cstring(data, start + key if key < start else key)
        entries.setdefault(name, _cstring(data, start + value if value < start else value))
    return entries


def _cstring(data, offset):
    """The NUL-terminated string at *offset* of *data*."""
    end = data.find(b"\0", offset)
    return data[offset:end].decode("utf-8", "replace")
