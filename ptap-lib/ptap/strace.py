"""System calls written as strace writes them, and function calls as
ltrace writes them.

::

    openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3
    read(3, "myhost\\n", 131072)            = 7
    openat(AT_FDCWD, "/nonexistent", O_RDONLY) = -1 ENOENT (No such file or directory)

:func:`call_text` writes a call and its arguments, :func:`result_text` what
it returned, and :func:`line` puts them together with strace's alignment
(the ``=`` at column 40). The arguments are decoded as strace decodes
them for the calls people trace: file descriptors and ``AT_FDCWD``, paths
in full, buffers quoted and cut at ``-s`` bytes, flags by their names in
strace's order (``O_RDONLY|O_CLOEXEC``, ``PROT_READ|PROT_WRITE``,
``MAP_PRIVATE|MAP_ANONYMOUS``), modes in octal, whence, advice, signals,
resources and clocks by name. Structures are written as their addresses
(strace prints their fields), which is the one way the lines differ from
strace's for the calls the prototypes of :mod:`ptap.syscalls` cover.

An argument is an :class:`Arg`: its parameter's name, how its prototype
decodes it (``"int"``, ``"string"``, ``"pointer"``, ``"buffer"``,
``"strings"``), its decoded value and its raw word.
"""

import errno
import os
import struct

#: The target's pointer size (the interpreter runs in it).
_POINTER_SIZE = struct.calcsize("P")

__all__ = ["Arg", "quote", "call_text", "result_text", "function_call_text", "function_result_text",
           "line", "RESULT_COLUMN"]

#: Where strace puts the ``=`` of the result (its ``-a`` default, 40).
RESULT_COLUMN = 40


class Arg:
    """One argument of a call: its parameter's *name*, its *kind* of
    decoding (see the module docstring), its decoded *value*, its *raw*
    word as an unsigned int, and whether its type is *signed*."""

    __slots__ = ("name", "kind", "value", "raw", "signed")

    def __init__(self, name, kind, value, raw, signed=True):
        self.name, self.kind, self.value, self.raw, self.signed = name, kind, value, raw, signed

    @property
    def number(self):
        """The value as an integer (the raw word, signed as the type is)."""
        if isinstance(self.value, int) and not isinstance(self.value, bool):
            return self.value
        return self.raw

    def __repr__(self):
        return f"Arg({self.name!r}, {self.kind!r}, {self.value!r})"


# ---------------------------------------------------------------------------
# Strings


_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("\f"): "\\f", ord("\n"): "\\n",
            ord("\r"): "\\r", ord("\t"): "\\t", ord("\v"): "\\v"}


def quote(data, limit=None, force_hex=False):
    """*data* (bytes or str) as strace quotes it: printable ASCII as is, C
    escapes, other bytes in octal (three digits when an octal digit
    follows), or every byte as ``\\xNN`` with *force_hex*. With *limit*,
    at most that many bytes, and ``...`` after the quote if there were
    more."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    cut = limit is not None and len(data) > limit
    if cut:
        data = data[:limit]
    parts = []
    for i, byte in enumerate(data):
        if force_hex:
            parts.append(f"\\x{byte:02x}")
        elif byte in _ESCAPES:
            parts.append(_ESCAPES[byte])
        elif 0x20 <= byte < 0x7F:
            parts.append(chr(byte))
        elif i + 1 < len(data) and 0x30 <= data[i + 1] <= 0x37:
            parts.append(f"\\{byte:03o}")
        else:
            parts.append(f"\\{byte:o}")
    return '"' + "".join(parts) + '"' + ("..." if cut else "")


# ---------------------------------------------------------------------------
# Numbers, flags and names


def pointer(n):
    """An address: ``NULL`` or ``0x7ffd...``."""
    return "NULL" if n == 0 else f"{n:#x}"


def hex_or_zero(n):
    """strace's ``%#lx``: ``0`` or ``0x26000``."""
    return "0" if n == 0 else f"{n:#x}"


def octal_mode(n):
    """A file mode as strace writes it: ``0644``, ``04755``, ``000``."""
    return f"0{n:02o}" if n else "000"


def flags(n, names, zero="0"):
    """*n* as ``A|B|0x40``: the *names* ``(name, bits)`` whose bits are all
    set, in their order, each taking its bits, then what is left in hex."""
    if n == 0:
        return zero
    parts = []
    for name, bits in names:
        if n & bits == bits:
            parts.append(name)
            n &= ~bits
    if n:
        parts.append(f"{n:#x}")
    return "|".join(parts)


def named(n, names, unknown):
    """*n* by its name in *names* (a dict), else ``0x5 /* SEEK_??? */``."""
    if n in names:
        return names[n]
    return f"{n:#x} /* {unknown} */"


#: open(2)'s flags after the access mode, in strace's order.
OPEN_FLAGS = (
    ("O_CREAT", 0o100), ("O_EXCL", 0o200), ("O_NOCTTY", 0o400), ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000), ("O_NONBLOCK", 0o4000), ("O_SYNC", 0o4010000), ("O_DSYNC", 0o10000),
    ("O_DIRECT", 0o40000), ("O_LARGEFILE", 0o100000), ("O_NOFOLLOW", 0o400000),
    ("O_NOATIME", 0o1000000), ("O_CLOEXEC", 0o2000000), ("O_PATH", 0o10000000),
    ("O_TMPFILE", 0o20200000), ("O_DIRECTORY", 0o200000), ("FASYNC", 0o20000),
)
_ACCESS_MODES = ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")
#: The open(2) flags that make it take a mode.
_TAKES_MODE = 0o100 | 0o20000000


def open_flags(n):
    """open(2)'s flags: ``O_RDONLY|O_CLOEXEC``."""
    rest = flags(n & ~3, OPEN_FLAGS, zero="")
    return _ACCESS_MODES[n & 3] + ("|" + rest if rest else "")


def fd_flags(n):
    """The flags of dup3(2), pipe2(2) and the like, which are open(2)'s:
    ``O_CLOEXEC``, ``O_NONBLOCK``, ``0``."""
    return flags(n, OPEN_FLAGS)


PROT_FLAGS = (("PROT_READ", 1), ("PROT_WRITE", 2), ("PROT_EXEC", 4), ("PROT_SEM", 8),
              ("PROT_GROWSDOWN", 0x01000000), ("PROT_GROWSUP", 0x02000000))

MAP_TYPES = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}
MAP_FLAGS = (
    ("MAP_FIXED", 0x10), ("MAP_ANONYMOUS", 0x20), ("MAP_32BIT", 0x40), ("MAP_NORESERVE", 0x4000),
    ("MAP_POPULATE", 0x8000), ("MAP_NONBLOCK", 0x10000), ("MAP_GROWSDOWN", 0x100),
    ("MAP_DENYWRITE", 0x800), ("MAP_EXECUTABLE", 0x1000), ("MAP_LOCKED", 0x2000),
    ("MAP_STACK", 0x20000), ("MAP_HUGETLB", 0x40000), ("MAP_SYNC", 0x80000),
    ("MAP_FIXED_NOREPLACE", 0x100000), ("MAP_UNINITIALIZED", 0x4000000),
)
_MAP_HUGE_SHIFT = 26


def map_flags(n):
    """mmap(2)'s flags: ``MAP_PRIVATE|MAP_ANONYMOUS``."""
    kind = n & 0xF
    parts = [MAP_TYPES.get(kind, f"{kind:#x} /* MAP_??? */")]
    huge = n >> _MAP_HUGE_SHIFT & 0x3F
    rest = flags(n & ~0xF & ~(0x3F << _MAP_HUGE_SHIFT), MAP_FLAGS, zero="")
    if rest:
        parts.append(rest)
    if huge:
        parts.append(f"{huge}<<MAP_HUGE_SHIFT")
    return "|".join(parts)


AT_FLAGS = (("AT_SYMLINK_NOFOLLOW", 0x100), ("AT_REMOVEDIR", 0x200), ("AT_SYMLINK_FOLLOW", 0x400),
            ("AT_NO_AUTOMOUNT", 0x800), ("AT_EMPTY_PATH", 0x1000), ("AT_RECURSIVE", 0x8000))
#: faccessat2(2)'s: 0x200 is AT_EACCESS there.
ACCESS_AT_FLAGS = (("AT_SYMLINK_NOFOLLOW", 0x100), ("AT_EACCESS", 0x200), ("AT_EMPTY_PATH", 0x1000))
ACCESS_MODES = (("R_OK", 4), ("W_OK", 2), ("X_OK", 1))
AT_FDCWD = -100

SEEK_WHENCE = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
FADVISE = {0: "POSIX_FADV_NORMAL", 1: "POSIX_FADV_RANDOM", 2: "POSIX_FADV_SEQUENTIAL",
           3: "POSIX_FADV_WILLNEED", 4: "POSIX_FADV_DONTNEED", 5: "POSIX_FADV_NOREUSE"}
MADVISE = {0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED",
           4: "MADV_DONTNEED", 8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK",
           11: "MADV_DOFORK", 12: "MADV_MERGEABLE", 13: "MADV_UNMERGEABLE", 14: "MADV_HUGEPAGE",
           15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP", 17: "MADV_DODUMP", 18: "MADV_WIPEONFORK",
           19: "MADV_KEEPONFORK", 20: "MADV_COLD", 21: "MADV_PAGEOUT"}
GRND_FLAGS = (("GRND_NONBLOCK", 1), ("GRND_RANDOM", 2), ("GRND_INSECURE", 4))
ARCH_CODES = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
              0x1004: "ARCH_GET_GS", 0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID"}
RLIMITS = {0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK",
           4: "RLIMIT_CORE", 5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE",
           8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS", 10: "RLIMIT_LOCKS", 11: "RLIMIT_SIGPENDING",
           12: "RLIMIT_MSGQUEUE", 13: "RLIMIT_NICE", 14: "RLIMIT_RTPRIO", 15: "RLIMIT_RTTIME"}
CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
          3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE",
          6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME", 8: "CLOCK_REALTIME_ALARM",
          9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"}
FCNTL_COMMANDS = {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL",
                  5: "F_GETLK", 6: "F_SETLK", 7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN",
                  10: "F_SETSIG", 11: "F_GETSIG", 1024: "F_SETLEASE", 1025: "F_GETLEASE",
                  1026: "F_NOTIFY", 1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ",
                  1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS", 1034: "F_GET_SEALS"}
#: The fcntl(2) commands that take no third argument.
_FCNTL_NO_ARG = {1, 3, 9, 11, 1025, 1032, 1034}

SIGNALS = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
    7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
    13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
    18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG",
    24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
    30: "SIGPWR", 31: "SIGSYS",
}


def signal_name(n):
    """``SIGTERM``, ``SIGRTMIN`` (32), ``SIGRT_2`` (34), or the number."""
    if n in SIGNALS:
        return SIGNALS[n]
    if n == 32:
        return "SIGRTMIN"
    if 32 < n <= 64:
        return f"SIGRT_{n - 32}"
    return str(n)


def signal_set(data):
    """A sigset_t's bytes as strace writes them: ``[INT TERM]``, or the
    complement when most are set: ``~[KILL STOP]``."""
    bits = int.from_bytes(data, "little")
    count = len(data) * 8
    members = [sig for sig in range(1, count + 1) if bits >> (sig - 1) & 1]
    if len(members) > count // 2:
        members = [sig for sig in range(1, count + 1) if not bits >> (sig - 1) & 1]
        return "~[" + " ".join(signal_name(sig)[3:] for sig in members) + "]"
    return "[" + " ".join(signal_name(sig)[3:] for sig in members) + "]"


SIGPROCMASK_HOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}

#: clone(2)'s flags, in strace's order; the low byte is the exit signal.
CLONE_FLAGS = (
    ("CLONE_VM", 0x100), ("CLONE_FS", 0x200), ("CLONE_FILES", 0x400), ("CLONE_SIGHAND", 0x800),
    ("CLONE_PIDFD", 0x1000), ("CLONE_PTRACE", 0x2000), ("CLONE_VFORK", 0x4000),
    ("CLONE_PARENT", 0x8000), ("CLONE_THREAD", 0x10000), ("CLONE_NEWNS", 0x20000),
    ("CLONE_SYSVSEM", 0x40000), ("CLONE_SETTLS", 0x80000), ("CLONE_PARENT_SETTID", 0x100000),
    ("CLONE_CHILD_CLEARTID", 0x200000), ("CLONE_DETACHED", 0x400000), ("CLONE_UNTRACED", 0x800000),
    ("CLONE_CHILD_SETTID", 0x1000000), ("CLONE_NEWCGROUP", 0x2000000), ("CLONE_NEWUTS", 0x4000000),
    ("CLONE_NEWIPC", 0x8000000), ("CLONE_NEWUSER", 0x10000000), ("CLONE_NEWPID", 0x20000000),
    ("CLONE_NEWNET", 0x40000000), ("CLONE_IO", 0x80000000),
)


# ---------------------------------------------------------------------------
# Arguments


#: Parameters that name files: strace prints them whole, not cut at -s.
_PATH_PARAMS = {"pathname", "path", "oldpath", "newpath", "filename", "target", "linkpath", "library"}
#: Parameters that are a directory fd, which may be AT_FDCWD.
_DIRFD_PARAMS = {"dirfd", "olddirfd", "newdirfd"}
#: Buffers strace shows in hex escapes.
_HEX_BUFFERS = {"getrandom"}
#: Results strace shows in hex: addresses.
_HEX_RESULTS = {"mmap", "mmap2", "brk", "mremap", "shmat"}


class _Writer:
    """Writes the arguments of one system call."""

    def __init__(self, name, string_size, read, failed):
        self.name = name
        self.string_size = string_size
        self.read = read
        self.failed = failed

    def memory(self, address, size, decode):
        """What *decode* makes of *size* bytes at *address*: ``NULL`` for
        0, the address when they cannot be read."""
        if address == 0:
            return "NULL"
        if self.read is None:
            return pointer(address)
        try:
            return decode(self.read(address, size))
        except Exception:  # noqa: BLE001 - a MemoryFault, or no memory reader.
            return pointer(address)

    def default(self, arg):
        """An argument by its kind and its parameter's name."""
        if arg.name in _DIRFD_PARAMS and arg.kind == "int":
            return "AT_FDCWD" if arg.number == AT_FDCWD else str(arg.number)
        value = arg.value
        if arg.kind in ("string", "buffer") and isinstance(value, (str, bytes)):
            if arg.kind == "string" and arg.name in _PATH_PARAMS:
                return quote(value)
            return quote(value, self.string_size, force_hex=self.name in _HEX_BUFFERS)
        if arg.kind == "strings" and isinstance(value, list):
            if arg.name == "envp":
                return f"{pointer(arg.raw)} /* {len(value)} vars */"
            return "[" + ", ".join(quote(v, self.string_size) for v in value) + "]"
        if arg.kind in ("string", "buffer", "strings", "pointer") or value is None:
            return pointer(arg.raw)
        if isinstance(value, int):
            return str(value)
        return repr(value)

    def write(self, args):
        """The arguments, as strace writes them, for this call."""
        special = getattr(self, "args_" + self.name, None)
        if special is not None:
            try:
                return special(args)
            except (IndexError, ValueError):
                pass  # Not the prototype it expects (another architecture's): as any call.
        return [self._by_param(arg) for arg in args]

    def _by_param(self, arg):
        """Flags and names that mean the same in every call they appear in."""
        n = arg.number
        if arg.name == "prot":
            return flags(n, PROT_FLAGS, zero="PROT_NONE")
        if arg.name == "whence":
            return named(n, SEEK_WHENCE, "SEEK_???")
        if arg.name in ("sig", "signum") and arg.kind == "int":
            return signal_name(n)
        if arg.name == "resource":
            return named(n, RLIMITS, "RLIMIT_???")
        if arg.name in ("clockid", "clk_id", "which_clock"):
            return named(n, CLOCKS, "CLOCK_???")
        if arg.name == "mode" and arg.kind == "int" and self.name in ("mkdir", "mkdirat", "chmod", "fchmod", "fchmodat", "creat", "mknod", "mknodat", "umask"):
            return octal_mode(n)
        return self.default(arg)

    # Calls whose arguments depend on each other, or that name their
    # flags their own way.

    def _open_like(self, args, flags_at):
        parts = [self._by_param(a) for a in args[:flags_at]]
        n = args[flags_at].number
        parts.append(open_flags(n))
        if n & _TAKES_MODE and len(args) > flags_at + 1:
            parts.append(octal_mode(args[flags_at + 1].number))
        return parts

    def args_open(self, args):
        return self._open_like(args, 1)

    def args_openat(self, args):
        return self._open_like(args, 2)

    def args_mmap(self, args):
        addr, length, prot, map_, fd, offset = args
        return [pointer(addr.raw), str(length.number), self._by_param(prot), map_flags(map_.number),
                str(fd.number), hex_or_zero(offset.raw)]

    def args_mmap2(self, args):
        # strace writes mmap2's offset in bytes, as mmap's.
        parts = self.args_mmap(args)
        parts[5] = hex_or_zero(args[5].raw * 4096)
        return parts

    def args_mprotect(self, args):
        return [pointer(args[0].raw), str(args[1].number), self._by_param(args[2])]

    def args_munmap(self, args):
        return [pointer(args[0].raw), str(args[1].number)]

    def args_brk(self, args):
        return [pointer(args[0].raw)]

    def args_fadvise64(self, args):
        return [self._by_param(a) for a in args[:3]] + [named(args[3].number, FADVISE, "POSIX_FADV_???")]

    def args_madvise(self, args):
        return [pointer(args[0].raw), str(args[1].number), named(args[2].number, MADVISE, "MADV_???")]

    def args_access(self, args):
        return [self._by_param(args[0]), flags(args[1].number, ACCESS_MODES, zero="F_OK")]

    def args_faccessat(self, args):
        return [self._by_param(args[0]), self._by_param(args[1]), flags(args[2].number, ACCESS_MODES, zero="F_OK")]

    def args_faccessat2(self, args):
        return self.args_faccessat(args) + [flags(args[3].number, ACCESS_AT_FLAGS)]

    def _at_flags_last(self, args):
        return [self._by_param(a) for a in args[:-1]] + [flags(args[-1].number, AT_FLAGS)]

    args_newfstatat = args_unlinkat = args_linkat = args_fchownat = args_utimensat = _at_flags_last

    def _fd_flags_last(self, args):
        return [self._by_param(a) for a in args[:-1]] + [fd_flags(args[-1].number)]

    args_dup3 = _fd_flags_last

    def args_pipe(self, args):
        # The two fds the call filled in.
        if self.failed:
            return [pointer(args[0].raw)] + [fd_flags(a.number) for a in args[1:]]
        fds = self.memory(args[0].raw, 8, lambda b: "[{}, {}]".format(*struct.unpack("<ii", b)))
        return [fds] + [fd_flags(a.number) for a in args[1:]]

    args_pipe2 = args_pipe

    def args_getrandom(self, args):
        return [self._by_param(args[0]), str(args[1].number), flags(args[2].number, GRND_FLAGS)]

    def args_arch_prctl(self, args):
        return [named(args[0].number, ARCH_CODES, "ARCH_???"), hex_or_zero(args[1].raw)]

    def args_fcntl(self, args):
        fd, cmd, arg = args
        n = cmd.number
        parts = [str(fd.number), named(n, FCNTL_COMMANDS, "F_???")]
        if n in _FCNTL_NO_ARG:
            return parts
        if n == 2:
            parts.append("FD_CLOEXEC" if arg.raw == 1 else str(arg.raw))
        elif n == 4:
            parts.append(open_flags(arg.raw))
        elif n in (5, 6, 7):
            parts.append(pointer(arg.raw))
        else:
            parts.append(str(arg.raw))
        return parts

    def args_prlimit64(self, args):
        return [str(args[0].number), self._by_param(args[1]), pointer(args[2].raw), pointer(args[3].raw)]

    def args_rt_sigprocmask(self, args):
        how, new, old, size = args
        size_n = min(size.number, 8) if size.number > 0 else 8
        old_text = pointer(old.raw) if self.failed else self.memory(old.raw, size_n, signal_set)
        return [named(how.number, SIGPROCMASK_HOW, "SIG_???"), self.memory(new.raw, size_n, signal_set),
                old_text, str(size.number)]

    def args_clone(self, args):
        # x86-64's order: flags, stack, parent_tid, child_tid, tls (32-bit
        # x86 puts tls before child_tid).
        flags_, stack, parent_tid, child_tid, tls = args
        if _POINTER_SIZE == 4:
            child_tid, tls = tls, child_tid
        n = flags_.raw
        exit_signal = n & 0xFF
        names = flags(n & ~0xFF, CLONE_FLAGS, zero="")
        if exit_signal:
            names = (names + "|" if names else "") + signal_name(exit_signal)
        parts = [f"child_stack={pointer(stack.raw)}", f"flags={names or '0'}"]
        if n & 0x100000:
            parts.append(f"parent_tid={pointer(parent_tid.raw)}")
        if n & (0x200000 | 0x1000000):
            parts.append(f"child_tidptr={pointer(child_tid.raw)}")
        if n & 0x80000:
            parts.append(f"tls={pointer(tls.raw)}")
        return parts

    def args_getcwd(self, args):
        buf, size = args
        if isinstance(buf.value, bytes):
            # A path, ended by the NUL the call counts in its result.
            return [quote(buf.value.split(b"\0", 1)[0]), str(size.number)]
        return [pointer(buf.raw), str(size.number)]

    def args_kill(self, args):
        return [str(args[0].number), signal_name(args[1].number)]

    args_fcntl64 = args_fcntl

    def args_tgkill(self, args):
        return [str(args[0].number), str(args[1].number), signal_name(args[2].number)]

    args_tkill = args_kill


def call_text(name, args, string_size=32, read=None, failed=False):
    """The call *name* with the :class:`Arg` list *args*: ``close(3)``.

    *read(address, size)* reads the target's memory, for the arguments
    strace shows by what they point to (signal sets); *failed* says the
    call failed, and what it would have filled is shown as an address.
    """
    return f"{name}({', '.join(_Writer(name, string_size, read, failed).write(args))})"


#: The kernel's codes for a call to be restarted, which strace names
#: itself (a program never sees them returned).
_RESTARTS = {512: ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
             513: ("ERESTARTNOINTR", "To be restarted"),
             514: ("ERESTARTNOHAND", "To be restarted if no handler"),
             515: ("ENOIOCTLCMD", "No ioctl command"),
             516: ("ERESTART_RESTARTBLOCK", "Interrupted by signal")}


def _fcntl_result(command, retval):
    """fcntl(2)'s result as strace decodes it for F_GETFL and F_GETFD."""
    if command == 3:
        return f"{retval:#x} (flags {open_flags(retval)})"
    if command == 1:
        return f"{retval:#x} (flags {flags(retval, (('FD_CLOEXEC', 1),))})" if retval else "0"
    return str(retval)


def result_text(name, retval, args=()):
    """What *name* returned, as strace writes it: ``3``, ``0x7f...`` for an
    address, ``-1 ENOENT (No such file or directory)`` for a failure, ``?``
    for None (a call that does not return)."""
    if retval is None:
        return "?"
    if -4095 <= retval <= -1:
        code = -retval
        if code in _RESTARTS:
            symbol, message = _RESTARTS[code]
            return f"? {symbol} ({message})"
        symbol = errno.errorcode.get(code, f"errno {code}")
        return f"-1 {symbol} ({os.strerror(code)})"
    if name in _HEX_RESULTS:
        return f"{retval:#x}"
    if name in ("fcntl", "fcntl64") and len(args) > 1:
        return _fcntl_result(args[1].number, retval)
    return str(retval)


# ---------------------------------------------------------------------------
# Function calls, as ltrace writes them


def _function_value(value, kind, string_size, raw=None):
    """A function's argument or result by its type's kind: strings quoted
    and cut at *string_size*, pointers in hex, numbers as they are."""
    if kind == "string":
        if isinstance(value, (str, bytes)):
            return quote(value, string_size)
        return pointer(value or 0) if isinstance(value, int) else "NULL"
    if kind == "pointer":
        return pointer(raw if raw is not None else value)
    if kind is None:
        return hex_or_zero(value)
    if kind == "void":
        return "<void>"
    if kind == "bool":
        return "true" if value else "false"
    if kind == "ellipsis":
        return "..."
    return str(value)


def function_call_text(name, args, string_size=32):
    """A function call with its :class:`Arg` list: ``malloc(30)``,
    ``strlen("hello")``, ``printf("%d\n", ...)``."""
    parts = [_function_value(a.value, a.kind, string_size, a.raw if a.kind == "pointer" else None) for a in args]
    return f"{name}({', '.join(parts)})"


def function_result_text(retval, kind, string_size=32):
    """A function's result by its return type's kind (None: no prototype,
    the word in hex): ``0x55d0c2a4b2a0``, ``5``, ``<void>``."""
    return _function_value(retval, kind, string_size)


def line(call, result, prefix="", duration_ns=None):
    """One line of the trace: *prefix* (``[pid N] ``, a time) and *call*,
    spaces up to the result's column, ``= result``, and with
    *duration_ns* the time in the call, `` <0.000012>``."""
    text = prefix + call
    text = text.ljust(RESULT_COLUMN - 1) + " = " + result
    if duration_ns is not None:
        text += f" <{duration_ns // 1_000_000_000}.{duration_ns // 1000 % 1_000_000:06d}>"
    return text
