"""ptap.strace: lines as strace writes them. The expected strings are what
strace 6.1 printed for the same calls (tests/test_tracing.py compares
whole runs with strace itself)."""

import pytest

from ptap import strace
from ptap.strace import Arg
from ptap.tracing import Summary


def test_quote_escapes_as_strace_does():
    # Octal takes three digits only before an octal digit.
    assert strace.quote(b'\x018\x017\x00a\x7f\x80\xff"\\\t\n\r\v\f\x1b[') == '"\\18\\0017\\0a\\177\\200\\377\\"\\\\\\t\\n\\r\\v\\f\\33["'
    assert strace.quote(b"abcd", 4) == '"abcd"'
    assert strace.quote(b"abcde", 4) == '"abcd"...'
    assert strace.quote(b"\x07Ap", force_hex=True) == '"\\x07\\x41\\x70"'
    assert strace.quote("héllo") == '"h\\303\\251llo"'


@pytest.mark.parametrize("n, text", [
    (0, "O_RDONLY"),
    (0o2000000, "O_RDONLY|O_CLOEXEC"),
    (0o1 | 0o100 | 0o1000 | 0o2000 | 0o2000000, "O_WRONLY|O_CREAT|O_TRUNC|O_APPEND|O_CLOEXEC"),
    (0o4000 | 0o2000000 | 0o200000, "O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY"),
    (0o2 | 0o20200000, "O_RDWR|O_TMPFILE"),
    (0o4010000, "O_RDONLY|O_SYNC"),
    (0o100000 | 0o2000000, "O_RDONLY|O_LARGEFILE|O_CLOEXEC"),
    (0x40000000, "O_RDONLY|0x40000000"),
])
def test_open_flags(n, text):
    assert strace.open_flags(n) == text


def test_mmap_flags_and_protections():
    assert strace.map_flags(0x22) == "MAP_PRIVATE|MAP_ANONYMOUS"
    assert strace.map_flags(0x812) == "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE"
    assert strace.map_flags(3) == "MAP_SHARED_VALIDATE"
    assert strace.map_flags(0xC) == "0xc /* MAP_??? */"
    assert strace.map_flags(0x22 | 21 << 26) == "MAP_PRIVATE|MAP_ANONYMOUS|21<<MAP_HUGE_SHIFT"
    assert strace.flags(0, strace.PROT_FLAGS, zero="PROT_NONE") == "PROT_NONE"
    assert strace.flags(5, strace.PROT_FLAGS) == "PROT_READ|PROT_EXEC"


def test_signals_and_signal_sets():
    assert [strace.signal_name(n) for n in (0, 9, 17, 32, 34, 64, 65)] == ["0", "SIGKILL", "SIGCHLD", "SIGRTMIN", "SIGRT_2", "SIGRT_32", "65"]
    assert strace.signal_set((1 << 1 | 1 << 14 | 1 << 33).to_bytes(8, "little")) == "[INT TERM RT_2]"
    assert strace.signal_set(bytes(8)) == "[]"
    everything_but = ~(1 << 8 | 1 << 18 | 1 << 31 | 1 << 32) & (1 << 64) - 1
    assert strace.signal_set(everything_but.to_bytes(8, "little")) == "~[KILL STOP RTMIN RT_1]"


def args(*specs):
    return [Arg(name, kind, value, value if isinstance(value, int) else 0x7ffd0000) for name, kind, value in specs]


def test_calls():
    openat = args(("dirfd", "int", -100), ("pathname", "string", "/etc/ld.so.cache"), ("flags", "int", 0o2000000), ("mode", "int", 0))
    assert strace.call_text("openat", openat) == 'openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC)'
    creating = args(("dirfd", "int", 3), ("pathname", "string", "f"), ("flags", "int", 0o1101), ("mode", "int", 0o666))
    assert strace.call_text("openat", creating) == 'openat(3, "f", O_WRONLY|O_CREAT|O_TRUNC, 0666)'
    mmap = args(("addr", "pointer", 0), ("length", "int", 8192), ("prot", "int", 3), ("flags", "int", 0x22), ("fd", "int", -1), ("offset", "int", 0))
    assert strace.call_text("mmap", mmap) == "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
    read = args(("fd", "int", 3), ("buf", "buffer", b"# Locale name alias data base.\n#" + b"x" * 100), ("count", "int", 4096))
    assert strace.call_text("read", read) == 'read(3, "# Locale name alias data base.\\n#"..., 4096)'
    failed_read = args(("fd", "int", 3), ("buf", "buffer", 0x7ffd1234), ("count", "int", 10))
    assert strace.call_text("read", failed_read) == "read(3, 0x7ffd1234, 10)"
    assert strace.call_text("lseek", args(("fd", "int", 3), ("offset", "int", 5), ("whence", "int", 1))) == "lseek(3, 5, SEEK_CUR)"
    assert strace.call_text("getpid", []) == "getpid()"
    assert strace.call_text("fcntl", args(("fd", "int", 255), ("cmd", "int", 3), ("arg", "int", 0))) == "fcntl(255, F_GETFL)"
    clone = args(("flags", "int", 0x1200011), ("stack", "pointer", 0), ("parent_tid", "pointer", 0), ("child_tid", "pointer", 0x7f5de0743a10), ("tls", "int", 0))
    assert strace.call_text("clone", clone) == "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f5de0743a10)"


def test_calls_reading_memory():
    memory = {0x1000: (1 << 16).to_bytes(8, "little"), 0x2000: bytes(8), 0x3000: (3).to_bytes(4, "little") + (4).to_bytes(4, "little")}
    read = lambda address, size: memory[address][:size]  # noqa: E731
    mask = args(("how", "int", 0), ("set", "pointer", 0x1000), ("oldset", "pointer", 0x2000), ("sigsetsize", "int", 8))
    assert strace.call_text("rt_sigprocmask", mask, read=read) == "rt_sigprocmask(SIG_BLOCK, [CHLD], [], 8)"
    unreadable = args(("how", "int", 2), ("set", "pointer", 0x9000), ("oldset", "pointer", 0), ("sigsetsize", "int", 8))
    assert strace.call_text("rt_sigprocmask", unreadable, read=read) == "rt_sigprocmask(SIG_SETMASK, 0x9000, NULL, 8)"
    pipe = args(("pipefd", "pointer", 0x3000), ("flags", "int", 0o2000000))
    assert strace.call_text("pipe2", pipe, read=read) == "pipe2([3, 4], O_CLOEXEC)"


def test_results():
    assert strace.result_text("close", 0) == "0"
    assert strace.result_text("openat", -2) == "-1 ENOENT (No such file or directory)"
    assert strace.result_text("mmap", 0x7F0C51997000) == "0x7f0c51997000"
    assert strace.result_text("exit_group", None) == "?"
    assert strace.result_text("read", -512) == "? ERESTARTSYS (To be restarted if SA_RESTART is set)"
    fcntl = args(("fd", "int", 255), ("cmd", "int", 3), ("arg", "int", 0))
    assert strace.result_text("fcntl", 0x8000, fcntl) == "0x8000 (flags O_RDONLY|O_LARGEFILE)"


def test_lines_put_the_result_at_column_40():
    assert strace.line("close(3)", "0") == "close(3)                                = 0"
    assert strace.line("close(3)", "0", "[pid  1440] ") == "[pid  1440] close(3)                    = 0"
    long_call = 'openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC)'
    assert strace.line(long_call, "3") == long_call + " = 3"
    assert strace.line("close(3)", "0", duration_ns=1_979_400) == "close(3)                                = 0 <0.001979>"


def test_summary_table():
    summary = Summary()
    for name, ns, failed in [("openat", 1_000_000, False), ("openat", 26_000, True), ("close", 478_000, False)]:
        summary.add(name, ns, failed)
    assert summary.lines() == [
        "% time     seconds  usecs/call     calls    errors syscall",
        "------ ----------- ----------- --------- --------- ----------------",
        " 68.22    0.001026         513         2         1 openat",
        " 31.78    0.000478         478         1           close",
        "------ ----------- ----------- --------- --------- ----------------",
        "100.00    0.001504         501         3         1 total",
    ]
    assert Summary().lines() == []
