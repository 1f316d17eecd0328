"""32-bit x86 processes (issue 14): the i686 client under a 32-bit drrun,
and under the launcher, which chooses it by the command's ELF class.

``scripts/test`` builds them (``scripts/build-i686 --drrun``:
``target/i686-unknown-linux-gnu/release/libptap.so``, its 32-bit DynamoRIO
and ``build/drrun-i686/drrun``); when it could not, these tests fail,
saying so, and the rest of the suite runs. The target is a ``gcc -m32``
program built here; what it does is in its source below, and its own
output and exit status are the ground truth.

The tests that run on both architectures are elsewhere (those that take
``arch_target``: tests/function_targets.py); these are what only 32-bit
x86 has, and exec from one architecture into the other.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

I686 = REPO_ROOT / "target" / "i686-unknown-linux-gnu" / "release"
DRRUN = REPO_ROOT / "build" / "drrun-i686" / "drrun"

HELLO32 = r"""
#include <stdio.h>
int main(void)
{
    puts("hello from 32-bit");
    return 3;
}
"""

SCRIPT = """\
print("[ptap] top level")

@syscall_entry(syscall_name == "write")
def write(ctx):
    print("[ptap] write", ctx.syscall, ctx.args[0], ctx.args[1], ctx.args[2])

@function_entry(function_name == "puts")
def puts(ctx):
    print("[ptap] puts", ctx.mem.string(ctx.args[0]))

@function_exit(function_name == "puts")
def puts_done(ctx):
    print("[ptap] puts ->", ctx.retval)

@process_exit
def done(ctx):
    print("[ptap] exit", ctx.exit_code)
"""


@pytest.fixture
def i686_build():
    missing = [p for p in (I686 / "libptap.so", I686 / "dynamorio", DRRUN) if not p.exists()]
    if missing:
        pytest.fail(f"the 32-bit x86 build is missing ({', '.join(map(str, missing))}): "
                    "scripts/build-i686 --drrun could not build it (see build/build-i686.log)")
    return I686


def build32(tmp_path, name, source, optimise="-O1"):
    """The gcc -m32 program *name* built from *source* in *tmp_path*."""
    (tmp_path / f"{name}.c").write_text(source)
    exe = tmp_path / name
    subprocess.run(["gcc", "-m32", optimise, "-o", exe, tmp_path / f"{name}.c"], check=True)
    return exe


def traced_lines(processtap, tmp_path, configdir, name, script_text, command):
    """(the run of *command* under processtap with *script_text*, the
    handlers' lines), the handlers' output kept apart with -o."""
    script = tmp_path / f"{name}.ptap"
    script.write_text(script_text)
    out = tmp_path / f"{name}.txt"
    traced = run_traced([processtap, "-q", "-o", out, script, "--", *command], configdir)
    return traced, (out.read_text().splitlines() if out.exists() else [])


@pytest.fixture
def hello32(tmp_path):
    """A gcc -m32 program, and what it does untraced."""
    exe = build32(tmp_path, "hello32", HELLO32, "-O0")
    assert "ELF 32-bit" in subprocess.run(["file", "-L", exe], capture_output=True, text=True).stdout
    native = subprocess.run([exe], capture_output=True, text=True)
    assert (native.returncode, native.stdout) == (3, "hello from 32-bit\n")
    return exe


# i386 numbering: write is 4 (x86-64's is 1); puts's argument is read from
# the stack (cdecl), its return value from EAX. stdout is a pipe: the
# program writes its line when it exits.
EXPECTED = [
    "[ptap] top level",
    "[ptap] puts hello from 32-bit",
    "[ptap] puts -> 18",
    "[ptap] write 4 1 b'hello from 32-bit\\n' 18",
    "hello from 32-bit",
    "[ptap] exit 3",
]


def run_traced(argv, configdir, env=()):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "DYNAMORIO_CONFIGDIR": str(configdir), **dict(env)})


def test_a_32bit_program_traced_by_the_i686_client(i686_build, hello32, tmp_path, configdir):
    script = tmp_path / "hello32.ptap"
    script.write_text(SCRIPT)
    traced = run_traced([DRRUN, "-root", i686_build / "dynamorio", "-c", i686_build / "libptap.so", "-q", script, "--", hello32],
                        configdir)
    detail = f"stdout:\n{traced.stdout}\nstderr:\n{traced.stderr}"
    assert traced.returncode == 3, detail
    assert "[!]" not in traced.stderr and "Traceback" not in traced.stderr, detail
    assert traced.stdout.splitlines() == EXPECTED, detail


@pytest.mark.parametrize("how", ["program", "shebang"])
def test_the_launcher_chooses_the_i686_client_by_elf_class(i686_build, processtap, hello32, tmp_path, configdir, how):
    # The 64-bit launcher reads the command's ELF class (for a #! script,
    # its interpreter's) and runs the 32-bit DynamoRIO and client; the
    # banner names the architecture.
    script = tmp_path / "hello32.ptap"
    script.write_text(SCRIPT)
    command = hello32
    if how == "shebang":
        # hello32 as a script's interpreter (it ignores its arguments).
        command = tmp_path / "run-hello"
        command.write_text(f"#!{hello32}\n")
        command.chmod(0o755)
    traced = run_traced([processtap, script, "--", command], configdir)
    detail = f"stdout:\n{traced.stdout}\nstderr:\n{traced.stderr}"
    assert traced.returncode == 3, detail
    assert "[!]" not in traced.stderr and "Traceback" not in traced.stderr, detail
    assert traced.stdout.splitlines() == EXPECTED, detail
    assert traced.stderr.splitlines()[0] == f"[*] Executable file: {hello32} (32-bit x86)", detail


def test_a_32bit_program_without_the_i686_build_is_refused_saying_what_to_build(processtap, hello32, tmp_path, configdir):
    # A launcher whose folder holds only the x86-64 build.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(processtap, alone / "processtap")
    (alone / "libptap.so").symlink_to(processtap.parent / "libptap.so")
    (alone / "dynamorio").symlink_to((processtap.parent / "dynamorio").resolve())
    script = tmp_path / "hello32.ptap"
    script.write_text(SCRIPT)
    refused = run_traced([alone / "processtap", script, "--", hello32], configdir)
    assert refused.returncode == 2, refused
    assert refused.stdout == "", refused
    (message,) = refused.stderr.splitlines()
    assert message.startswith("processtap: the command is a 32-bit x86 program, and the 32-bit libdynamorio.so is not built ("), message
    assert message.endswith("; scripts/build-i686 builds it"), message
    # The x86-64 build beside it still traces 64-bit programs.
    native64 = subprocess.run(["/bin/true"])
    assert run_traced([alone / "processtap", "-q", script, "--", "/bin/true"], configdir).returncode == native64.returncode


def test_a_program_for_another_machine_is_refused(processtap, tmp_path, configdir):
    # An ELF header for AArch64 (EM_AARCH64 = 183), 64-bit.
    foreign = tmp_path / "arm64-program"
    foreign.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little") + (183).to_bytes(2, "little") + bytes(44))
    foreign.chmod(0o755)
    script = tmp_path / "any.ptap"
    script.write_text("")
    refused = run_traced([processtap, script, "--", foreign], configdir)
    assert (refused.returncode, refused.stdout) == (2, ""), refused
    assert refused.stderr == (f"processtap: {foreign}: a 64-bit ELF program for machine 183: "
                              "ProcessTap traces x86-64 and 32-bit x86 programs\n"), refused


SYSCALLS32 = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void)
{
    /* mmap2 has six parameters; glibc makes its calls through the vDSO's
       __kernel_vsyscall (sysenter, or syscall on AMD). */
    void *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mapped %s\n", p == MAP_FAILED ? "no" : "yes");
    fflush(stdout);
    printf("pid %d\n", (int)getpid());
    return 0;
}
"""

SYSCALLS32_SCRIPT = """\
@syscall_entry(syscall_name >> ["mmap2", "getpid", "write"])
def entry(ctx):
    if ctx.syscall_name == "mmap2":
        print("[ptap] entry mmap2 %d %#x %#x %d %#x" % tuple(ctx.args[i] for i in (1, 2, 3, 4, 5)))
    else:
        print("[ptap] entry " + ctx.syscall_name)
    if ctx.syscall_name == "getpid":
        ctx.skip(4242)

@syscall_exit(syscall_name >> ["mmap2", "getpid", "write"])
def exit(ctx):
    if ctx.syscall_name == "getpid":
        print("[ptap] exit getpid %d" % ctx.retval)
    else:
        print("[ptap] exit %s %s" % (ctx.syscall_name, "ok" if 0 <= ctx.retval < 2**32 - 4096 else ctx.retval))
"""


def test_32bit_system_calls_through_the_vdso_enter_and_exit_as_strace_sees_them(i686_build, processtap, tmp_path, configdir):
    # glibc's system calls go through __kernel_vsyscall: the sixth
    # parameter is on the stack there, and the kernel returns to the vDSO's
    # landing pad. Every entry has its exit, with mmap2's six parameters
    # as strace shows them (its offset in bytes, ours in pages); a skipped
    # getpid returns what the handler said.
    exe = build32(tmp_path, "syscalls32", SYSCALLS32)
    log = tmp_path / "strace.txt"
    native = subprocess.run(["strace", "-f", "-X", "raw", "-e", "trace=mmap2,getpid,write", "-o", log, exe],
                            capture_output=True, text=True)
    assert native.returncode == 0 and native.stdout.startswith("mapped yes\npid "), native
    expected = []
    for line in log.read_text().splitlines():
        line = line.split(None, 1)[1] if line.split(None, 1)[0].isdigit() else line
        call = re.match(r"mmap2\(\w+, (\d+), (0x[0-9a-f]+|0), (0x[0-9a-f]+|0), (-?\d+), (0x[0-9a-f]+|0)\)\s+= (0x[0-9a-f]+|-?\d+)", line)
        if call:
            length, prot, flags, fd, offset, _ = call.groups()
            # ctx.args are the raw 32-bit words: fd -1 is 0xffffffff.
            expected += [f"[ptap] entry mmap2 {length} {int(prot, 16):#x} {int(flags, 16):#x} {int(fd) & 0xffffffff} {int(offset, 16) // 4096:#x}",
                         "[ptap] exit mmap2 ok"]
        elif line.startswith(("getpid(", "write(")):
            name = line.split("(")[0]
            expected += [f"[ptap] entry {name}", f"[ptap] exit {name} " + ("4242" if name == "getpid" else "ok")]
    assert sum(1 for e in expected if e.startswith("[ptap] entry mmap2")) >= 5, expected
    traced, lines = traced_lines(processtap, tmp_path, configdir, "syscalls32", SYSCALLS32_SCRIPT, [exe])
    detail = f"stdout:\n{traced.stdout}\nstderr:\n{traced.stderr}"
    assert traced.returncode == 0 and "Traceback" not in traced.stderr, detail
    assert traced.stdout == "mapped yes\npid 4242\n", detail
    assert lines == expected, detail


INT80 = r"""
#include <stdio.h>
#include <string.h>
static long int80(long number, long a, long b, long c)
{
    long result;
    __asm__ volatile("int $0x80" : "=a"(result) : "a"(number), "b"(a), "c"(b), "d"(c) : "memory");
    return result;
}
int main(void)
{
    const char line[] = "direct write\n";
    long written = int80(4, 1, (long)line, (long)strlen(line));   /* write */
    long pid = int80(20, 0, 0, 0);                                 /* getpid */
    long closed = int80(6, 99, 0, 0);                              /* close(99): EBADF */
    printf("written %ld pid %ld closed %ld\n", written, pid, closed);
    return 0;
}
"""

INT80_SCRIPT = """\
import os
@syscall_entry(syscall_name >> ["getpid", "close"])
def entry(ctx):
    print("[ptap] entry", ctx.syscall_name, ctx.syscall, *[ctx.args[i] for i in range(len(ctx.args))])
    if ctx.syscall_name == "getpid":
        ctx.skip(-38)

@syscall_exit(syscall_name >> ["getpid", "close"])
def leave(ctx):
    print("[ptap] exit", ctx.syscall_name, ctx.retval, ctx.errno)
    if ctx.syscall_name == "close" and ctx.args[0] == 99:
        ctx.retval = 0
"""


def test_32bit_system_calls_by_int_0x80_skipped_failed_and_changed(i686_build, processtap, tmp_path, configdir):
    # int $0x80 straight from the program, with i386's numbers (getpid 20,
    # close 6): a skipped call returns what the handler said (-ENOSYS), a
    # failed one's result is signed (-EBADF) with its errno, and an exit
    # handler turns the failure into success.
    exe = build32(tmp_path, "int80", INT80)
    native = subprocess.run([exe], capture_output=True, text=True)
    assert re.fullmatch(r"direct write\nwritten 13 pid [1-9]\d* closed -9\n", native.stdout), native
    traced, lines = traced_lines(processtap, tmp_path, configdir, "int80", INT80_SCRIPT, [exe])
    detail = f"stdout:\n{traced.stdout}\nstderr:\n{traced.stderr}"
    assert traced.returncode == 0 and "Traceback" not in traced.stderr, detail
    assert traced.stdout == "direct write\nwritten 13 pid -38 closed 0\n", detail
    # close is also libc's at exit (fd 1 and so on): only ours are checked.
    ours = [line for line in lines if "getpid" in line or " 99" in line or line.endswith(" -9 9")]
    assert ours == ["[ptap] entry getpid 20", "[ptap] exit getpid -38 38", "[ptap] entry close 6 99", "[ptap] exit close -9 9"], detail


REGISTERS_SCRIPT = """\
@function_exit(function_name == "puts")
def puts_done(ctx):
    regs = ctx.regs
    print("[ptap] eax", regs.EAX, regs.EAX == ctx.retval)
    print("[ptap] esp", regs.ESP == regs.STACKPTR, regs.EIP == regs.INSTPTR, regs.EIP == ctx.caller)
    print("[ptap] names", " ".join(sorted(dir(regs))))
    try:
        regs.RAX
    except AttributeError as e:
        print("[ptap] error", e)
"""


def test_32bit_registers_have_their_i386_names(i686_build, processtap, hello32, tmp_path, configdir):
    # At puts's exit: EAX holds its result (18 bytes written), ESP and EIP
    # are STACKPTR and INSTPTR, and EIP is where puts returns to; the
    # x86-64 names are not there.
    traced, lines = traced_lines(processtap, tmp_path, configdir, "regs32", REGISTERS_SCRIPT, [hello32])
    detail = f"stdout:\n{traced.stdout}\nstderr:\n{traced.stderr}"
    assert traced.returncode == 3 and traced.stdout == "hello from 32-bit\n", detail
    assert lines == [
        "[ptap] eax 18 True",
        "[ptap] esp True True True",
        "[ptap] names EAX EBP EBX ECX EDI EDX EFLAGS EIP ESI ESP INSTPTR STACKPTR",
        "[ptap] error no register RAX (32-bit x86: EAX, EBX, ECX, EDX, ESI, EDI, EBP, ESP, EIP, EFLAGS, STACKPTR, INSTPTR)",
    ], detail


ARGS32 = r"""
#include <stdio.h>
__attribute__((noipa)) int mix(int a, double x, long long b, float f, int c)
{
    return a + (int)x + (int)(b >> 32) + (int)f + c;
}
int main(void)
{
    printf("mix %d\n", mix(1, 2.5, 3LL << 32, 4.5f, 5));
    return 0;
}
"""

ARGS32_SCRIPT = """\
declare("int mix(int a, double x, long long b, float f, int c);")

@function_entry(function_name == "mix")
def entry(ctx):
    print("[ptap] entry", ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3], ctx.args[4])
    ctx.args[1] = 10.0
    ctx.args[2] = 7 << 32

@function_exit(function_name == "mix")
def exit(ctx):
    print("[ptap] exit", ctx.retval, ctx.args[1], ctx.args[2])
"""


def test_32bit_eight_byte_arguments_take_two_stack_words(i686_build, processtap, tmp_path, configdir):
    # cdecl: a double and a long long take two stack words each, low first;
    # read at entry, changed there (the program adds them up: 1 + 10 + 7 +
    # 4 + 5 = 27 instead of 1 + 2 + 3 + 4 + 5 = 15), and kept for the exit.
    exe = build32(tmp_path, "args32", ARGS32)
    assert subprocess.run([exe], capture_output=True, text=True).stdout == "mix 15\n"
    traced, lines = traced_lines(processtap, tmp_path, configdir, "args32", ARGS32_SCRIPT, [exe])
    detail = f"stdout:\n{traced.stdout}\nstderr:\n{traced.stderr}"
    assert traced.returncode == 0 and "Traceback" not in traced.stderr, detail
    assert traced.stdout == "mix 27\n", detail
    assert lines == [f"[ptap] entry 1 2.5 {3 << 32} 4.5 5", f"[ptap] exit 27 10.0 {7 << 32}"], detail


# ---------------------------------------------------------------------------
# A process that execs a program of the other architecture

EXECS = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    printf("%d-bit\n", (int)sizeof(void *) * 8);
    fflush(stdout);
    if (argc > 1) {
        execv(argv[1], argv + 1);
        perror("execv");
        return 1;
    }
    return 7;
}
"""

#: Each image of the process runs the script, under its own client.
EXEC_SCRIPT = """\
import struct
@syscall_entry(syscall_name == "write")
def write(ctx):
    print("[ptap] write", struct.calcsize("P") * 8, ctx.args[0])

@process_exit
def done(ctx):
    print("[ptap] exit", struct.calcsize("P") * 8, ctx.exit_code)
"""


@pytest.fixture
def execs(tmp_path):
    """(execs64, execs32): the same program, which prints its width and
    execs its arguments, built for each architecture."""
    exe32 = build32(tmp_path, "execs32", EXECS)
    (tmp_path / "execs64.c").write_text(EXECS)
    exe64 = tmp_path / "execs64"
    subprocess.run(["gcc", "-O1", "-o", exe64, tmp_path / "execs64.c"], check=True)
    return exe64, exe32


def test_an_exec_into_the_other_architecture_is_followed_both_ways(i686_build, processtap, execs, tmp_path, configdir):
    # DynamoRIO execs its other libdynamorio.so, found by swapping lib64 and
    # lib32 in its own path: the launcher runs the home that has both
    # (target/dynamorio-home) and names both clients.
    exe64, exe32 = execs
    command = [exe64, exe32, exe64, exe32]
    native = subprocess.run(command, capture_output=True, text=True)
    assert (native.returncode, native.stdout) == (7, "64-bit\n32-bit\n64-bit\n32-bit\n")
    traced, lines = traced_lines(processtap, tmp_path, configdir, "execs", EXEC_SCRIPT, command)
    detail = f"stdout:\n{traced.stdout}\nstderr:\n{traced.stderr}\nhandlers: {lines}"
    assert (traced.returncode, traced.stdout) == (native.returncode, native.stdout), detail
    # One process: the exit handler runs in the last image only.
    assert lines == ["[ptap] write 64 1", "[ptap] write 32 1", "[ptap] write 64 1", "[ptap] write 32 1", "[ptap] exit 32 7"], detail


def test_a_64bit_shell_runs_a_32bit_program_and_a_32bit_program_runs_a_64bit_one(i686_build, processtap, execs, tmp_path, configdir):
    exe64, exe32 = execs
    command = ["/bin/sh", "-c", f"{exe32}; {exe32} /bin/echo done"]
    native = subprocess.run(command, capture_output=True, text=True)
    assert (native.returncode, native.stdout) == (0, "32-bit\n32-bit\ndone\n")
    traced, lines = traced_lines(processtap, tmp_path, configdir, "shell", EXEC_SCRIPT, command)
    detail = f"stdout:\n{traced.stdout}\nstderr:\n{traced.stderr}\nhandlers: {lines}"
    assert (traced.returncode, traced.stdout) == (native.returncode, native.stdout), detail
    # The shell's child runs execs32 and exits 7; the second child's
    # execs32 becomes echo, a 64-bit program, which exits 0; then the shell.
    assert lines == ["[ptap] write 32 1", "[ptap] exit 32 7", "[ptap] write 32 1", "[ptap] write 64 1", "[ptap] exit 64 0",
                     "[ptap] exit 64 0"], detail
