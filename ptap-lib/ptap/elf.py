"""Reading ELF files, for ``processtap -l``: what a program would load
and the functions it and its libraries define.

:class:`ElfFile` reads the few parts ``-l`` needs, from the file on disk
(the target is not run): its class and type, its program interpreter, its
dynamic section's ``DT_NEEDED``, ``DT_RPATH`` and ``DT_RUNPATH``, and the
functions its ``.symtab`` and ``.dynsym`` define. Inside the target the
native client reads modules with goblin instead.
"""

import struct

__all__ = ["ElfFile", "ElfError", "Symbol"]

_MAGIC = b"\x7fELF"
#: e_type of an executable at a fixed address, and of a PIE or library.
ET_EXEC, ET_DYN = 2, 3
#: Symbol types that are code: functions and IFUNC resolvers.
_FUNCTION_TYPES = {2, 10}
#: Symbol types that are data objects.
_OBJECT_TYPES = {1}
_SHT_SYMTAB, _SHT_DYNSYM = 2, 11
_PT_INTERP, _PT_DYNAMIC, _PT_LOAD = 3, 2, 1
_DT_NEEDED, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH, _DT_SONAME = 1, 5, 15, 29, 14


class ElfError(Exception):
    """A file that is not an ELF file this module can read."""


class Symbol:
    """A function (or data object) an ELF file defines: its *name*, its
    *value* (an address in the file's own layout: relative to the load
    address for a PIE or a library), its *size*, and whether it is
    *code*."""

    __slots__ = ("name", "value", "size", "code")

    def __init__(self, name, value, size, code):
        self.name, self.value, self.size, self.code = name, value, size, code

    def __repr__(self):
        return f"Symbol({self.name!r}, {self.value:#x}, {self.size}, code={self.code})"


class ElfFile:
    """An ELF file read from *path*."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as file:
            self._data = file.read()
        data = self._data
        if data[:4] != _MAGIC or len(data) < 64 or data[4] not in (1, 2) or data[5] != 1:
            raise ElfError(f"{path}: not a little-endian ELF file")
        self.bits = 64 if data[4] == 2 else 32
        if self.bits == 64:
            (self.type, self.machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
             _) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
        else:
            (self.type, self.machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
             _) = struct.unpack_from("<HHIIIIIHHHHHH", data, 16)
        self._segments = [self._segment(phoff + i * phentsize) for i in range(phnum)]
        self._sections = [self._section(shoff + i * shentsize) for i in range(shnum)] if shoff else []
        self._dynamic = self._read_dynamic()

    @property
    def is_pie(self):
        """Whether the file loads at an address of the loader's choice (a
        PIE or a library): its symbols are offsets from its load address."""
        return self.type == ET_DYN

    @property
    def interpreter(self):
        """The program interpreter (``/lib64/ld-linux-x86-64.so.2``), or None."""
        for kind, offset, _vaddr, size in self._segments:
            if kind == _PT_INTERP:
                return self._data[offset:offset + size].split(b"\0", 1)[0].decode()
        return None

    @property
    def needed(self):
        """The libraries ``DT_NEEDED`` names, in order."""
        return [self._dynamic_string(v) for tag, v in self._dynamic if tag == _DT_NEEDED]

    @property
    def rpath(self):
        """``DT_RPATH``'s directories (the old search path), or []."""
        return self._path_list(_DT_RPATH)

    @property
    def runpath(self):
        """``DT_RUNPATH``'s directories, or []."""
        return self._path_list(_DT_RUNPATH)

    @property
    def has_runpath(self):
        """Whether the file has a ``DT_RUNPATH`` (which turns its ``DT_RPATH`` off)."""
        return any(tag == _DT_RUNPATH for tag, _ in self._dynamic)

    @property
    def soname(self):
        """``DT_SONAME``, or None."""
        for tag, value in self._dynamic:
            if tag == _DT_SONAME:
                return self._dynamic_string(value)
        return None

    def symbols(self):
        """The functions and data objects the file defines, from ``.symtab``
        and ``.dynsym``, each name once (``.symtab``'s first), by value."""
        found = {}
        for kind in (_SHT_SYMTAB, _SHT_DYNSYM):
            for section in self._sections:
                if section[0] == kind:
                    for symbol in self._read_symbols(section):
                        found.setdefault(symbol.name, symbol)
        return sorted(found.values(), key=lambda s: (s.value, s.name))

    # Parts of the file.

    def _segment(self, offset):
        if self.bits == 64:
            kind, _flags, file_offset, vaddr, _paddr, filesz = struct.unpack_from("<IIQQQQ", self._data, offset)
        else:
            kind, file_offset, vaddr, _paddr, filesz = struct.unpack_from("<IIIII", self._data, offset)
        return kind, file_offset, vaddr, filesz

    def _section(self, offset):
        if self.bits == 64:
            _name, kind, _flags, _addr, file_offset, size, link, _info, _align, entsize = struct.unpack_from(
                "<IIQQQQIIQQ", self._data, offset)
        else:
            _name, kind, _flags, _addr, file_offset, size, link, _info, _align, entsize = struct.unpack_from(
                "<IIIIIIIIII", self._data, offset)
        return kind, file_offset, size, link, entsize

    def _read_symbols(self, section):
        _kind, offset, size, link, entsize = section
        if not entsize or link >= len(self._sections):
            return
        strings = self._sections[link]
        for at in range(offset + entsize, offset + size, entsize):
            if self.bits == 64:
                name, info, _other, shndx, value, symsize = struct.unpack_from("<IBBHQQ", self._data, at)
            else:
                name, value, symsize, info, _other, shndx = struct.unpack_from("<IIIBBH", self._data, at)
            kind = info & 0xF
            if shndx == 0 or (kind not in _FUNCTION_TYPES and kind not in _OBJECT_TYPES):
                continue
            text = self._string(strings[1], name)
            if text:
                yield Symbol(text, value, symsize, kind in _FUNCTION_TYPES)

    def _string(self, table_offset, index):
        start = table_offset + index
        end = self._data.find(b"\0", start)
        return self._data[start:end].decode("utf-8", "replace") if end >= 0 else ""

    def _read_dynamic(self):
        for kind, offset, _vaddr, size in self._segments:
            if kind != _PT_DYNAMIC:
                continue
            fmt, step = ("<qQ", 16) if self.bits == 64 else ("<iI", 8)
            entries = []
            for at in range(offset, offset + size, step):
                tag, value = struct.unpack_from(fmt, self._data, at)
                if tag == 0:
                    break
                entries.append((tag, value))
            return entries
        return []

    def _dynamic_string(self, index):
        """A string of the dynamic string table (DT_STRTAB, an address)."""
        table = next((v for tag, v in self._dynamic if tag == _DT_STRTAB), None)
        if table is None:
            return ""
        return self._string(self._file_offset(table), index)

    def _file_offset(self, address):
        """Where the byte loaded at *address* is in the file."""
        for kind, offset, vaddr, size in self._segments:
            if kind == _PT_LOAD and vaddr <= address < vaddr + size:
                return offset + address - vaddr
        return address

    def _path_list(self, tag):
        for t, value in self._dynamic:
            if t == tag:
                return [p for p in self._dynamic_string(value).split(":") if p]
        return []
