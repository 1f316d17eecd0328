"""Listing probe points without running the target: ``processtap -l``
(issue 15, item 2).

Ground truth from outside the tracer: ``nm`` for a module's functions,
their offsets and sizes; ``ldd`` for the libraries the dynamic loader
loads (the programs here are ours and Debian's, safe to hand to ldd); the
kernel's header for the system calls' numbers.
"""

import os
import re
import subprocess

import pytest

from function_targets import arch, arch_target, ftarget  # noqa: F401

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


def listing(processtap, *args):
    result = subprocess.run([processtap, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    return result, [line.split(None, 3) for line in result.stdout.splitlines() if not line.startswith("#")]


def nm_functions(path, dynamic=False):
    """{name: (value, size)} of the functions nm shows defined in *path*."""
    out = subprocess.run(["nm", "-S", "--defined-only", *(["-D"] if dynamic else []), path],
                         capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "TtWwi":
            found.setdefault(fields[3].split("@")[0], (int(fields[0], 16), int(fields[1], 16)))
    return found


def test_a_libc_function_with_its_offset_size_and_prototype(processtap):
    result, rows = listing(processtap, "-l", "malloc", "--", "/bin/ls")
    assert result.returncode == 0, result
    value, size = nm_functions(LIBC, dynamic=True)["malloc"]
    assert rows == [["libc.so.6:malloc", f"+{value:#x}", str(size), "void *malloc(size_t __size);"]], result.stdout


def test_a_module_glob_lists_what_nm_shows(processtap):
    result, rows = listing(processtap, "-l", "libc.so.6:str*", "--", "/bin/ls")
    listed = {row[0].split(":", 1)[1]: (int(row[1].lstrip("+"), 16), int(row[2])) for row in rows}
    expected = {n: v for n, v in nm_functions(LIBC, dynamic=True).items() if n.startswith("str")}
    assert expected and set(expected) <= set(listed), sorted(set(expected) - set(listed))
    for name, (value, size) in expected.items():
        assert listed[name] == (value, size), name
    assert all(row[0].startswith("libc.so.6:str") for row in rows)


def test_the_libraries_are_those_the_loader_loads(processtap):
    for command in ("/bin/ls", "/usr/bin/python3"):
        ldd = subprocess.run(["ldd", command], capture_output=True, text=True, check=True).stdout
        expected = {os.path.basename(m) for m in re.findall(r"(?:=> )?(/\S+) \(0x", ldd)}
        result, rows = listing(processtap, "-l", "--", command)
        modules = {row[0].split(":", 1)[0] for row in rows if not row[0].startswith("syscall:")}
        libraries = modules - {os.path.basename(command)}
        # ldd names the loader by its PT_INTERP path; the listing by its file.
        ldd_libraries = {m for m in expected if not m.startswith("ld-linux")} | {"ld-linux-x86-64.so.2"}
        assert ldd_libraries <= libraries | {"ld-linux-x86-64.so.2"}, (ldd_libraries, libraries)
        assert libraries <= ldd_libraries, (ldd_libraries, libraries)


def test_runpath_with_origin_is_followed(processtap, tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "mine.c").write_text("int mine_answer(void) { return 42; }\n")
    (tmp_path / "main.c").write_text("int mine_answer(void);\nint main(void) { return mine_answer() != 42; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", tmp_path / "lib" / "libmine.so", tmp_path / "mine.c"], check=True)
    subprocess.run(["gcc", "-o", tmp_path / "main", tmp_path / "main.c", "-L", tmp_path / "lib", "-lmine",
                    "-Wl,-rpath,$ORIGIN/lib"], check=True)
    assert subprocess.run([tmp_path / "main"]).returncode == 0
    result, rows = listing(processtap, "-l", "libmine.so:*", "--", str(tmp_path / "main"))
    value, size = nm_functions(str(tmp_path / "lib" / "libmine.so"))["mine_answer"]
    assert ["libmine.so:mine_answer", f"+{value:#x}", str(size)] in rows, result.stdout
    # Without the library where RUNPATH says, the listing says it is missing.
    (tmp_path / "lib" / "libmine.so").rename(tmp_path / "libmine.so")
    result, _ = listing(processtap, "-l", "libmine.so:*", "--", str(tmp_path / "main"))
    assert "# libmine.so: not found where the dynamic loader would look" in result.stdout and result.returncode == 1


def test_system_calls_by_the_kernels_numbers(processtap):
    header = open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h").read()
    expected = {name: int(n) for name, n in re.findall(r"#define __NR_(open\w*) (\d+)", header)}
    result, rows = listing(processtap, "-l", "syscall:open*")
    assert {row[0][len("syscall:"):]: int(row[1]) for row in rows} == expected
    assert ["syscall:openat", "257", "long", "openat(int dirfd, const char *pathname, int flags, mode_t mode);"] in rows


def test_a_32_bit_program_lists_its_own_libraries_and_system_calls(processtap, arch, arch_target):
    result, rows = listing(processtap, "-l", "mmap*", "--", arch_target("hello"))
    assert result.returncode == 0, result
    libc = "/lib/i386-linux-gnu/libc.so.6" if arch == "i686" else LIBC
    value, _ = nm_functions(libc, dynamic=True)["mmap"]
    assert [row for row in rows if row[0] == "libc.so.6:mmap"][0][1] == f"+{value:#x}"
    syscalls = {row[0]: row[1] for row in rows if row[0].startswith("syscall:")}
    assert syscalls == ({"syscall:mmap": "9"} if arch == "x86-64" else {"syscall:mmap": "90", "syscall:mmap2": "192"})


def test_a_script_lists_what_each_probe_would_match(processtap, tmp_path, ftarget):
    script = tmp_path / "probes.ptap"
    script.write_text(
        '@function_entry(function_name.like("str*") & (module_name == "libc.so.6"))\n'
        "def strings(ctx): pass\n"
        '@syscall_exit(syscall_name >> ["openat", "close"])\n'
        "def files(ctx): pass\n"
        '@function_exit((function_name == "secret_function") & (thread_id == 5))\n'
        "def check(ctx): pass\n"
        "@memory_write(memory_address >> range(0x1000, 0x2000))\n"
        "def watch(ctx): pass\n"
    )
    result = subprocess.run([processtap, script, "-l", "--", ftarget("secret")], capture_output=True, text=True)
    assert result.returncode == 0, result
    heads = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    expected_str = {n for n in nm_functions(LIBC, dynamic=True) if n.startswith("str")}
    count = int(re.search(r" strings \((\d+) match\)$", heads[0]).group(1))
    assert count >= len(expected_str), heads
    assert heads[1].endswith(" files (2 match)")
    assert heads[2].endswith(" check (1 may match: thread_id decided as the program runs)")
    assert heads[3].endswith(" watch (decided as the program runs)")
    value, size = nm_functions(ftarget("secret"))["secret_function"]
    assert f"  secret:secret_function  +{value:#x}  {size}" in result.stdout, result.stdout


def test_a_pattern_that_matches_nothing_exits_1(processtap):
    result, rows = listing(processtap, "-l", "no_such_function_*", "--", "/bin/ls")
    assert (result.returncode, rows) == (1, [])
