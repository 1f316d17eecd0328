"""Preparing the C headers a script includes, before the target starts.

::

    python3 -m ptap.prepare [-I DIR]... [--data-model LP64|ILP32] SCRIPT

``include("stdio.h")`` runs inside the traced program, where the C
preprocessor cannot run (that would fork the target). So the processtap
launcher runs this first, whenever the script's text contains
``include(``: it finds the script's ``include("...")`` calls whose
argument is a string literal, and preprocesses and parses each header not
already in the cache (see :mod:`ptap.headers`). The script is only read,
never run; a script for the original ProcessTap (Python 2) is translated
first, as the loader does.

The preprocessor is gcc's ``cpp``, searching the ``-I`` directories before
the system include path. glibc's headers are full of GNU extensions
(``__attribute__``, ``__asm__`` symbol renames, ``__extension__``,
``_Float128`` functions, ...) that a standard C parser rejects; with
``__GNUC__`` undefined, glibc leaves almost all of them out itself, and
:data:`PREPROCESSOR_FLAGS` removes the rest. ``_GNU_SOURCE`` is defined so
that every function a program may call is declared.

Prints nothing when all is well. Exit status:

- 0: every header is in the cache. A header that is not found or does
  not parse counts: its error is stored, and ``include()`` raises it
  inside the target, where the traceback shows the script's line. So does
  a script that is not valid Python (the loader reports it).
- 1: the cache could not be written (the message says why).
- 2: wrong usage, or the script cannot be read.
"""

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys

from . import cdecl, headers
from .errors import PrototypeError

__all__ = ["PREPROCESSOR_FLAGS", "included_headers", "prepare_header", "main"]

#: What the preprocessor is told, besides the ``-I`` directories.
PREPROCESSOR_FLAGS = (
    # glibc's <sys/cdefs.h> then defines the GNU extensions away, and its
    # headers leave out what has no standard spelling.
    "-U__GNUC__",
    "-D_GNU_SOURCE",
    # What headers still write without asking for __GNUC__: gcc's own
    # <stddef.h>, the kernel's <asm-generic/int-ll64.h>, some libraries.
    "-D__attribute__(x)=",
    "-D__signed__=signed",
    "-D__extension__=",
    "-D__asm__(x)=",
    "-D__inline=inline",
    "-D__inline__=inline",
    "-D__restrict=restrict",
    "-D__restrict__=restrict",
)

#: Types that gcc knows without a declaration, which headers use even
#: without __GNUC__. (``va_list`` is a pointer wherever it is passed.)
GCC_BUILTIN_TYPEDEFS = {
    "__builtin_va_list": cdecl.Pointer(cdecl.Basic("void")),
    "__int128_t": cdecl.Basic("__int128"),
    "__uint128_t": cdecl.Basic("unsigned __int128"),
}

#: What the preprocessor is told for each data model: glibc's headers
#: differ between x86-64 and 32-bit x86 (``__WORDSIZE``, ``off_t``, ...),
#: which gcc's ``-m32`` selects (Debian: gcc-multilib).
_MACHINE_FLAGS = {"LP64": ("-m64",), "ILP32": ("-m32",)}

#: The preprocessors tried, in order.
_PREPROCESSORS = (("cpp",), ("gcc", "-E"), ("cc", "-E"))

#: The preprocessor's line markers: ``# 1 "/usr/include/stdio.h" 1 3 4``.
_LINE_MARKER = re.compile(r'^# \d+ "([^"]*)"', re.MULTILINE)


# ---------------------------------------------------------------------------
# Headers


def prepare_header(header, include_dirs, model=None):
    """Preprocess and parse *header*, store the result in the cache and return it.

    Returns a :class:`~ptap.headers.Header`. A header that is not found or
    does not parse (or a machine without a C preprocessor) is stored and
    returned with its error. Raises :exc:`OSError` if the cache cannot be
    written.
    """
    files = []
    try:
        text, files = _preprocess(header, include_dirs, model)
        typedefs, prototypes = _parse(header, text)
        entry = headers.Header(header, None, typedefs, prototypes)
    except PrototypeError as error:
        entry = headers.Header(header, str(error), {}, [])
    headers.store(entry, include_dirs, files, model)
    return entry


def _preprocess(header, include_dirs, model=None):
    """Run the preprocessor on *header* for *model*'s machine; return its
    output and the files it read.

    Raises :exc:`~ptap.errors.PrototypeError` if the header is not found or
    the preprocessor fails.
    """
    command = [*_preprocessor(), *PREPROCESSOR_FLAGS, *_MACHINE_FLAGS[(model or cdecl.native_data_model()).name]]
    for directory in include_dirs:
        command += ["-I", os.path.abspath(directory)]  # So the files' names are too.
    command.append("-")
    result = subprocess.run(
        command, input=f"#include <{header}>\n", capture_output=True, text=True
    )
    if result.returncode != 0:
        raise PrototypeError(_preprocessor_error(header, include_dirs, result.stderr))
    names = set(_LINE_MARKER.findall(result.stdout))
    files = sorted(name for name in names if not name.startswith("<"))  # Not <stdin>.
    return result.stdout, files


def _preprocessor():
    """Return the command that runs the C preprocessor."""
    for command in _PREPROCESSORS:
        if shutil.which(command[0]):
            return command
    raise PrototypeError(
        "include() needs a C preprocessor (cpp or gcc), and none is installed "
        "(Debian: apt-get install cpp)"
    )


def _preprocessor_error(header, include_dirs, stderr):
    """Return the message for a preprocessor that failed on *header*."""
    lines = stderr.splitlines()
    if lines and lines[0].startswith("<stdin>:") and "No such file or directory" in lines[0]:
        searched = "".join(f"{directory}, " for directory in include_dirs)
        return f"header {header!r} not found (searched {searched}then the system include path)"
    errors = [line for line in lines if "error" in line][:5] or lines[:5]
    return f"cannot preprocess header {header!r}:\n    " + "\n    ".join(errors)


def _parse(header, text):
    """Parse the preprocessed *text* of *header*; return its typedefs and prototypes.

    A function declared twice is listed once. Raises
    :exc:`~ptap.errors.PrototypeError` if the text does not parse.
    """
    from . import cparse  # Imports pycparser, which takes a while.

    try:
        typedefs, prototypes = cparse.parse(text, GCC_BUILTIN_TYPEDEFS, filename=header)
    except PrototypeError as error:
        raise PrototypeError(f"cannot parse header {header!r}: {error}") from None
    by_name = {proto.name: proto for proto in prototypes}
    return typedefs, list(by_name.values())


# ---------------------------------------------------------------------------
# Scripts


def included_headers(source, filename):
    """Return the headers that *source*'s ``include("literal")`` calls name, in order.

    *source* is a script's text, Python 3 or 2. Returns an empty list if it
    is neither.
    """
    tree = _parse_script(source, filename)
    if tree is None:
        return []
    calls = [node for node in ast.walk(tree) if _is_include_call(node)]
    calls.sort(key=lambda call: (call.lineno, call.col_offset))
    found = []
    for call in calls:
        header = call.args[0].value
        if header not in found:
            found.append(header)
    return found


def _program_headers(program):
    """The headers a one-liner program's include() calls name (none if it
    does not translate: the target will say why)."""
    from . import oneliner

    try:
        source, _origins = oneliner.translate(program)
    except SyntaxError:
        return []
    return included_headers(source, oneliner.NAME)


def _parse_script(source, filename):
    """Return the syntax tree of *source*, translated from Python 2 if need be, or None."""
    try:
        return ast.parse(source, filename)
    except SyntaxError:
        pass
    from . import legacy  # Slow to import, and rarely needed.

    try:
        return ast.parse(legacy.translate(source, filename), filename)
    except SyntaxError:
        return None


def _is_include_call(node):
    """Whether *node* is ``include("...")`` or ``ptap.include("...")`` with a string literal."""
    if not isinstance(node, ast.Call) or len(node.args) != 1 or node.keywords:
        return False
    function = node.func
    named = (isinstance(function, ast.Name) and function.id == "include") or (
        isinstance(function, ast.Attribute) and function.attr == "include"
    )
    argument = node.args[0]
    return named and isinstance(argument, ast.Constant) and isinstance(argument.value, str)


def main(argv=None):
    """Prepare the headers of the script named in *argv*; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python3 -m ptap.prepare",
        description="Preprocess and cache the C headers a ProcessTap script includes.",
    )
    parser.add_argument(
        "-I", dest="include_dirs", action="append", default=[], metavar="DIR",
        help="search DIR for headers before the system include path",
    )
    parser.add_argument(
        "--data-model", choices=sorted(cdecl.DATA_MODELS), default=cdecl.native_data_model().name,
        help="the target's: LP64 (x86-64) or ILP32 (32-bit x86); default this Python's",
    )
    parser.add_argument(
        "--program", dest="programs", action="append", default=[], metavar="PROGRAM",
        help="a one-liner program of -e, whose include() calls to prepare too",
    )
    parser.add_argument("script", nargs="?", help="the script whose include() calls to prepare")
    options = parser.parse_args(argv)
    if options.script is None and not options.programs:
        parser.error("a script or --program is needed")
    model = cdecl.DATA_MODELS[options.data_model]
    wanted = []
    if options.script is not None:
        try:
            with open(options.script, encoding="utf-8-sig") as file:
                source = file.read()
        except (OSError, UnicodeDecodeError) as error:
            print(f"{parser.prog}: cannot read {options.script}: {error}", file=sys.stderr)
            return 2
        wanted += included_headers(source, options.script)
    for program in options.programs:
        wanted += _program_headers(program)
    for header in dict.fromkeys(wanted):
        if headers.is_prepared(header, options.include_dirs, model):
            continue
        try:
            prepare_header(header, options.include_dirs, model)
        except OSError as error:
            print(f"{parser.prog}: cannot write the header cache: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
