"""ptap.listing, ptap.libraries, ptap.elf: what -l decides and reads."""

import pytest

from ptap import elf, libraries, listing
from ptap.predicates import function_name, module_name, thread_id


@pytest.mark.parametrize("pattern, module, name, expected", [
    (None, "libc.so.6", "malloc", True),
    ("malloc*", "libc.so.6", "malloc_usable_size", True),
    ("malloc*", "syscall", "mallocx", True),
    ("libc.so.6:str*", "libc.so.6", "strlen", True),
    ("libc.so.6:str*", "libm.so.6", "strlen", False),
    ("lib*:str?en", "libc.so.6", "strlen", True),
    ("syscall:open*", "syscall", "openat", True),
    ("syscall:open*", "libc.so.6", "open", False),
])
def test_patterns(pattern, module, name, expected):
    assert listing.matches(pattern, module, name) is expected


def test_decide_is_three_valued():
    known = {"module_name": "libc.so.6", "function_name": "malloc"}
    assert listing.decide(function_name == "malloc", known) is True
    assert listing.decide((function_name == "free") & (thread_id == 3), known) is False
    assert listing.decide((function_name == "malloc") & (thread_id == 3), known) is None
    assert listing.decide((function_name == "free") | (thread_id == 3), known) is None
    assert listing.decide((module_name == "libc.so.6") | (thread_id == 3), known) is True
    assert listing.decide(~(thread_id == 3), known) is None
    assert listing.decide(~(function_name == "free"), known) is True


def test_elf_reads_what_ls_needs():
    ls = elf.ElfFile("/bin/ls")
    assert (ls.bits, ls.is_pie, ls.interpreter) == (64, True, "/lib64/ld-linux-x86-64.so.2")
    assert "libc.so.6" in ls.needed
    libc = elf.ElfFile("/lib/x86_64-linux-gnu/libc.so.6")
    assert libc.soname == "libc.so.6"
    names = {s.name for s in libc.symbols() if s.code}
    assert {"malloc", "free", "strlen"} <= names
    with pytest.raises(elf.ElfError):
        elf.ElfFile("/etc/hostname")


def test_the_cache_knows_libc_for_both_classes():
    assert libraries.cache_entries(64)["libc.so.6"] == "/lib/x86_64-linux-gnu/libc.so.6"
    i386 = libraries.cache_entries(32)
    if i386:  # Debian's i386 libc is there when the 32-bit client is built.
        assert i386["libc.so.6"] == "/lib/i386-linux-gnu/libc.so.6"


def test_ld_library_path_comes_before_the_cache(tmp_path):
    copy = tmp_path / "libc.so.6"
    copy.write_bytes(open("/lib/x86_64-linux-gnu/libc.so.6", "rb").read())
    order = dict(libraries.load_order("/bin/ls", environ={"LD_LIBRARY_PATH": str(tmp_path)}))
    assert order["libc.so.6"] == str(copy)
    assert dict(libraries.load_order("/bin/ls", environ={}))["libc.so.6"] == "/lib/x86_64-linux-gnu/libc.so.6"
