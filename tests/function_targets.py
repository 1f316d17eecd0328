"""Targets and helpers shared by the function-probe tests (test_functions*.py,
test_prototypes.py) and the system-call tests (test_syscalls.py).

The C targets of these tests are built by tests/targets/CMakeLists.txt along
with the others, but conftest's ``target`` fixture knows only its own list:
:func:`ftarget` gives the path of one of ours, building the targets once
more when a build directory predates them.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import TARGET_NAMES

#: Executables (and the one library) the function-probe and system-call tests use.
FUNCTION_TARGETS = (
    "malloc_sizes",
    "malloc_loop",
    "password",
    "recurse",
    "longjmp_out",
    "cxx_throw",
    "workers",
    "dlopen_plugin",
    "libplugin.so",
    "secret",
    "secret_stripped",
    "secret_nopie",
    "secret_nopie_stripped",
    "memargs",
    "vectors",
    "syscall_threads",
    "syscall_sites",
    "forks",
    "fpargs",
    "records",
    "strlens",
    "memwatch",
    "heapblocks",
    "secret_read",
    "lock_counter",
    "fault_store",
    "flags_store",
    "branchy_O0",
    "branchy_O2",
    "libbranchplugin.so",
    "tinycat",
    "fpflags",
    "naps",
)

#: The architectures of the tests that run on both (issue 14), as the
#: ``arch`` fixture's parameters.
ARCHES = ("x86-64", "i686")

#: What a 32-bit x86 run needs besides the targets (scripts/build-i686).
I686_CLIENT = Path(__file__).resolve().parent.parent / "target" / "i686-unknown-linux-gnu" / "release" / "libptap.so"


def _missing(directory):
    return [name for name in FUNCTION_TARGETS if not (directory / name).is_file()]


def _rebuild(directory):
    """Build again the CMake build directory that *directory* belongs to."""
    cmake = shutil.which("cmake")
    # build/targets (tests/targets on its own) or build/tests/targets (top level).
    for build_dir in (directory, directory.parent.parent):
        if (build_dir / "CMakeCache.txt").is_file() and cmake:
            completed = subprocess.run(
                [cmake, "--build", str(build_dir)], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            if completed.returncode != 0:
                pytest.fail(
                    f"building the test targets in {build_dir} failed\n"
                    + completed.stdout.decode(errors="replace")
                )
            return


@pytest.fixture(scope="session")
def ftarget(targets_dir):
    """``ftarget("recurse")``: the path of a function-probe target, as a str."""
    directory = Path(targets_dir)
    if _missing(directory):
        _rebuild(directory)
    missing = _missing(directory)
    if missing:
        pytest.fail(f"{directory} lacks the targets {', '.join(missing)} (build tests/targets)")

    def path_of(name):
        assert name in FUNCTION_TARGETS, f"unknown function-probe target {name!r}"
        return str(directory / name)

    return path_of


@pytest.fixture(params=ARCHES)
def arch(request):
    """The architecture a test runs its targets for: ``"x86-64"`` or
    ``"i686"`` (which fails, saying what to build, without the i686 client)."""
    if request.param == "i686" and not I686_CLIENT.is_file():
        pytest.fail(f"the 32-bit x86 client {I686_CLIENT} is not built: scripts/build-i686 builds it "
                    "(scripts/test runs it; build/build-i686.log says why it failed)")
    return request.param


@pytest.fixture
def arch_target(arch, ftarget, targets_dir):
    """``arch_target("password")``: the path of a target (conftest's or
    ours) built for the test's ``arch`` (gcc -m32's into m32/ for i686), as
    a str."""

    def path_of(name):
        path = Path(targets_dir) / name if name in TARGET_NAMES else Path(ftarget(name))
        if arch == "x86-64":
            return str(path)
        path = path.parent / "m32" / path.name
        if not path.is_file():
            pytest.fail(f"{path} is not built: tests/targets builds the 32-bit targets when gcc -m32 works "
                        "(Debian: gcc-multilib; then remove the CMakeCache.txt of the targets' build)")
        return str(path)

    return path_of


def nm_address(path, symbol):
    """The value ``nm`` prints for the function *symbol* of the file at *path*."""
    completed = subprocess.run(["nm", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert completed.returncode == 0, completed.stderr
    found = [
        int(fields[0], 16)
        for fields in (line.split() for line in completed.stdout.splitlines())
        if len(fields) == 3 and fields[1] in "Tt" and fields[2] == symbol
    ]
    assert len(found) == 1, f"nm {path}: {symbol} found {len(found)} times"
    return found[0]


def fields_of(text, prefix):
    """The lines of *text* that start with *prefix*, split into fields."""
    return [line[len(prefix):].split() for line in text.splitlines() if line.startswith(prefix)]


def without_handler_lines(text, prefixes=("[",)):
    """The lines of *text* that are the target's own (not a handler's)."""
    return [line for line in text.splitlines() if not line.startswith(tuple(prefixes))]
