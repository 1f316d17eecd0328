"""Tests for ptap.syscalls: system calls' numbers, names and prototypes."""

import os
import sys

import pytest

import ptap
from ptap import cparse, syscalls
from ptap.cdecl import LP64

x86_64 = pytest.mark.skipif(sys.maxsize < 2**32, reason="numbers of x86-64")


def _forget_prototypes(monkeypatch):
    """Make syscalls read or parse its prototypes again."""
    monkeypatch.setattr(syscalls, "_data", None)
    monkeypatch.setattr(syscalls, "_encoded", None)
    monkeypatch.setattr(syscalls, "_decoded", {})


@pytest.fixture
def fresh_prototypes(tmp_path, monkeypatch):
    """Forget the parsed system-call prototypes, and use a cache of the test's own."""
    monkeypatch.setenv("PTAP_CACHE_DIR", str(tmp_path / "cache"))
    _forget_prototypes(monkeypatch)
    yield tmp_path / "cache"


# --- numbers and names ---------------------------------------------------------


@x86_64
@pytest.mark.parametrize(
    "name, number",
    [("read", 0), ("write", 1), ("open", 2), ("execve", 59), ("exit_group", 231), ("openat", 257)],
)
def test_numbers_of_x86_64(name, number):
    assert ptap.syscall(name) == number
    assert ptap.syscall(number) == name


def test_count_is_the_size_of_the_table():
    assert syscalls.count() > 300
    assert syscalls.count() == len(syscalls.table_data())


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ValueError) as raised:
        ptap.syscall("opnat")
    assert str(raised.value) == (
        "no system call is named 'opnat' (did you mean 'openat' or 'openat2' or 'open'?)"
    )


def test_unknown_name_without_suggestion():
    with pytest.raises(ValueError, match=r"^no system call is named 'zzzzzz'$"):
        ptap.syscall("zzzzzz")


def test_unknown_number():
    with pytest.raises(ValueError, match=r"no system call has number 100000 \(they go from 0 to \d+"):
        ptap.syscall(100000)


def test_syscall_takes_a_name_or_a_number():
    for wrong in (1.5, True, None):
        with pytest.raises(TypeError, match="name or number"):
            ptap.syscall(wrong)


def test_missing_kernel_headers_say_what_to_install(monkeypatch):
    monkeypatch.setitem(syscalls._NUMBER_HEADERS, 8, ("/nonexistent/unistd_64.h",))
    monkeypatch.setitem(syscalls._NUMBER_HEADERS, 4, ("/nonexistent/unistd_32.h",))
    with pytest.raises(FileNotFoundError, match="linux-libc-dev"):
        syscalls._number_header()


# --- prototypes ----------------------------------------------------------------


def test_read_fills_a_buffer_as_long_as_it_returns():
    proto = syscalls.syscall_prototype("read")
    assert str(proto) == "long read(int fd, void *buf, size_t count);"
    assert proto.to_data(LP64) == (
        "read",
        ("int", 8, True, None),
        (("int", 4, True, None), ("buffer", 8, False, ("retval", "out")), ("int", 8, False, None)),
        False,
    )


def test_write_reads_a_buffer_as_long_as_its_count():
    assert syscalls.syscall_prototype("write").to_data(LP64)[2][1] == ("buffer", 8, False, (2, "in"))


def test_openat_has_a_path():
    proto = syscalls.syscall_prototype("openat")
    assert str(proto) == "long openat(int dirfd, const char *pathname, int flags, mode_t mode);"
    assert proto.to_data(LP64)[2] == (
        ("int", 4, True, None), ("string", 8, False, None),
        ("int", 4, True, None), ("int", 4, False, None),
    )


def test_execve_has_string_arrays():
    proto = syscalls.syscall_prototype("execve")
    assert str(proto) == "long execve(const char *pathname, char *const argv[], char *const envp[]);"
    assert proto.to_data(LP64)[2] == (
        ("string", 8, False, None), ("strings", 8, False, None), ("strings", 8, False, None),
    )


@x86_64
def test_prototypes_by_number():
    assert syscalls.syscall_prototype(257) is syscalls.syscall_prototype("openat")


def test_a_system_call_without_prototype():
    assert syscalls.syscall_prototype("kexec_load") is None
    with pytest.raises(ValueError):
        syscalls.syscall_prototype("opnat")


def test_every_declaration_names_a_system_call_of_x86_64():
    declared = syscalls._parse_declarations()
    for name in declared:
        if sys.maxsize > 2**32:
            assert syscalls.syscall(name) >= 0
    assert set(syscalls.BUFFERS) | set(syscalls.STRING_ARRAYS) <= set(declared)


@pytest.mark.parametrize(
    "name",
    [
        "open", "close", "pread64", "pwrite64", "readv", "lseek", "newfstatat", "statx",
        "faccessat2", "unlinkat", "renameat2", "mkdirat", "getcwd", "readlinkat", "dup3",
        "pipe2", "fcntl", "ioctl", "getdents64", "ftruncate", "fchmodat", "flock", "sendfile",
        "copy_file_range", "execveat", "clone", "clone3", "wait4", "waitid", "tgkill", "gettid",
        "prctl", "arch_prctl", "set_tid_address", "mmap", "munmap", "mprotect", "brk", "mremap",
        "socket", "connect", "accept4", "sendto", "recvfrom", "sendmsg", "getsockopt",
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "nanosleep",
        "clock_nanosleep", "clock_gettime", "poll", "ppoll", "pselect6", "epoll_wait", "futex",
        "getrandom", "uname", "prlimit64", "sched_yield", "exit_group",
    ],
)
def test_families_of_the_issue_have_prototypes(name):
    proto = syscalls.syscall_prototype(name)
    assert proto.name == name
    assert proto.to_data(LP64)[1] == ("int", 8, True, None)


def test_buffers_decoded_at_exit_by_the_return_value():
    for name in ("pread64", "recvfrom", "getrandom", "readlink", "readlinkat", "getcwd"):
        params = syscalls.syscall_prototype(name).to_data(LP64)[2]
        assert ("buffer", 8, False, ("retval", "out")) in params, name


def test_sendto_buffers():
    params = syscalls.syscall_prototype("sendto").to_data(LP64)[2]
    assert params[1] == ("buffer", 8, False, (2, "in"))
    assert params[4] == ("buffer", 8, False, (5, "in"))


def test_table_data_rows():
    rows = syscalls.table_data(LP64)
    numbers = [number for number, _, _ in rows]
    assert numbers == sorted(numbers)
    by_name = {name: (number, data) for number, name, data in rows}
    assert by_name["read"] == (ptap.syscall("read"), syscalls.syscall_prototype("read").to_data(LP64))
    assert by_name["kexec_load"][1] is None


def test_prototypes_are_parsed_once_then_cached(fresh_prototypes, monkeypatch):
    first = syscalls.syscall_prototype("read")
    data = syscalls.table_data()
    entries = sorted(path.name.split("-")[0] for path in (fresh_prototypes / "syscalls").iterdir())
    assert entries == ["data", "prototypes"]
    _forget_prototypes(monkeypatch)

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again")

    monkeypatch.setattr(cparse, "parse", no_parsing)
    assert syscalls.table_data() == data
    assert syscalls.syscall_prototype("read") == first


def test_table_data_reads_no_prototype(fresh_prototypes, monkeypatch):
    # The native runtime's table needs the data alone, not the larger
    # entry of encoded prototypes.
    syscalls.table_data()
    _forget_prototypes(monkeypatch)
    monkeypatch.setattr(syscalls, "_stored_prototypes", lambda: pytest.fail("prototypes read"))
    assert len(syscalls.table_data()) == syscalls.count()


@pytest.fixture
def number_header(tmp_path, monkeypatch):
    """A kernel header of our own that numbers three system calls, and a cache of our own."""
    header = tmp_path / "unistd.h"
    header.write_text("#define __NR_read 0\n#define __NR_write 1\n#define __NR_open 2\n")
    monkeypatch.setitem(syscalls._NUMBER_HEADERS, 8, (str(header),))
    monkeypatch.setitem(syscalls._NUMBER_HEADERS, 4, (str(header),))
    monkeypatch.setenv("PTAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(syscalls, "_numbers", None)
    return header


def test_numbers_are_parsed_once_then_cached(number_header, monkeypatch):
    assert syscalls.count() == 3
    monkeypatch.setattr(syscalls, "_numbers", None)
    monkeypatch.setattr(syscalls, "_parse_number_header", lambda text: pytest.fail("parsed again"))
    assert syscalls.count() == 3
    assert syscalls.syscall("open") == 2


def test_a_changed_number_header_is_parsed_again(number_header, monkeypatch):
    assert syscalls.count() == 3
    number_header.write_text("#define __NR_read 0\n#define __NR_write 1\n")
    os.utime(number_header, ns=(0, 10**9))
    monkeypatch.setattr(syscalls, "_numbers", None)
    assert syscalls.count() == 2
    assert syscalls.syscall(1) == "write"


def test_number_header_lines_that_define_no_number_are_left_out():
    text = (
        "#ifndef _ASM_UNISTD_64_H\n#define _ASM_UNISTD_64_H\n"
        "#define __NR_read 0\n#define __NR_write  1 \n"
        "#define __NR_syscalls (__NR_write + 1)\n#define __NR_x32 0x10\n#endif\n"
    )
    assert syscalls._parse_number_header(text) == {"read": 0, "write": 1}


def test_changed_declarations_are_parsed_again(fresh_prototypes, monkeypatch):
    syscalls.syscall_prototype("read")
    _forget_prototypes(monkeypatch)
    monkeypatch.setattr(syscalls, "DECLARATIONS", "long read(int fd, char *buf, size_t n);")
    monkeypatch.setattr(syscalls, "BUFFERS", {})
    assert str(syscalls.syscall_prototype("read")) == "long read(int fd, char *buf, size_t n);"
    assert syscalls.syscall_prototype("write") is None


def test_prototypes_without_a_writable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PTAP_CACHE_DIR", str(blocker))
    _forget_prototypes(monkeypatch)
    assert syscalls.syscall_prototype("read") is not None


def test_a_decoding_of_a_missing_parameter_is_an_error(monkeypatch):
    monkeypatch.setitem(syscalls.BUFFERS, "read", {"buffer": ("out", "retval")})
    with pytest.raises(ValueError, match="read has no parameter buffer"):
        syscalls._parse_declarations()
