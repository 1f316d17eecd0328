"""Loading a user's script: compile it, run its top level, collect its probes.

:func:`run_script` is what the native runtime calls once, before the target
runs. The script's top level runs like ``python SCRIPT``: its ``__name__`` is
``"__main__"``, its directory is first on ``sys.path``, and the names of the
``ptap`` package are in its globals without an import, along with ``exe``
and ``argv``, the target's path and arguments. Its decorators fill a fresh
:class:`~ptap.probes.Registry`, whose probes :func:`run_script` returns.

A script that fails to compile or raises at its top level gets a traceback
on ``sys.stderr`` that shows the script's own lines and none of ptap's, and
:exc:`~ptap.errors.ScriptError` is raised. A script written for the original
ProcessTap in Python 2 is translated (see :mod:`ptap.legacy`) with a warning.
"""

import builtins
import linecache
import os
import sys
import traceback

import ptap

from . import prototypes
from .errors import ScriptError
from .probes import Registry, use_registry

__all__ = ["run_script", "include_dirs"]

_PTAP_DIR = os.path.dirname(os.path.abspath(__file__))

_include_dirs = ()


def include_dirs():
    """Return the header directories (``-I``) given to the last :func:`run_script`."""
    return _include_dirs


def _print_warning(message):
    """Print a warning to ``sys.stderr`` in the style of the banner."""
    print(f"[!] {message}", file=sys.stderr)


def run_script(path, *, exe, argv, include_dirs=(), warn=_print_warning, name=None, source=None):
    """Run the script at *path* and return the probes it declared, in order.

    *source* is the script's bytes when they were read already (every
    traced process runs the script as the first one read it, which may
    have been from a pipe such as ``/dev/stdin``); by default the file is
    read. *name* is how the user named the script, shown in tracebacks and
    as ``__file__``; it defaults to *path*, whose directory is put first
    on ``sys.path``.

    *exe* and *argv* are the target's path and arguments, which the script
    sees as ``exe`` and ``argv``. *include_dirs* are searched for headers
    before the system include path by ``include()``; the prototypes of
    an earlier run are forgotten. *warn* is called with a one-line
    message for anything the user should know that is not an error.

    Raises :exc:`~ptap.errors.ScriptError`, after printing a traceback to
    ``sys.stderr``, if the script cannot be read or compiled, or raises
    (including :exc:`SystemExit`) at its top level.
    """
    global _include_dirs
    _include_dirs = tuple(include_dirs)
    prototypes.reset()
    name = path if name is None else name
    try:
        if source is None:
            with open(path, "rb") as file:
                source = file.read()
        code = _compile_script(source, name, warn)
        namespace = _script_globals(name, exe, argv)
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        with use_registry(Registry()) as registry:
            exec(code, namespace)
    except (Exception, SystemExit) as error:
        _print_traceback(error)
        raise ScriptError(path, f"{type(error).__name__} while loading the script") from error
    return registry.probes


def _compile_script(source, name, warn):
    """Compile the script's *source* bytes as *name*, translating it from
    Python 2 if need be."""
    source = source.decode("utf-8-sig")
    try:
        code = compile(source, name, "exec", dont_inherit=True)
    except SyntaxError as error:
        original = error
    else:
        _remember_source(name, source)
        return code

    from . import legacy  # Slow to import, and rarely needed.

    try:
        translation = legacy.translate(source, name)
        code = compile(translation, name, "exec", dont_inherit=True)
    except SyntaxError:
        raise original from None
    warn(f"{name}: Python 2 script translated to Python 3")
    _remember_source(name, translation)
    return code


def _remember_source(path, source):
    """Make tracebacks show *source* for *path*, whatever the file holds later."""
    lines = source.splitlines(keepends=True)
    linecache.cache[path] = (len(source), None, lines, path)


def _script_globals(path, exe, argv):
    """Return the globals the script's top level runs in."""
    namespace = {name: getattr(ptap, name) for name in ptap.__all__}
    namespace["exe"] = exe
    namespace["argv"] = list(argv)
    namespace["__name__"] = "__main__"
    namespace["__file__"] = path
    namespace["__builtins__"] = builtins
    return namespace


def _print_traceback(error):
    """Print *error*'s traceback to ``sys.stderr`` without ptap's own frames."""
    report = traceback.TracebackException.from_exception(error)
    _drop_ptap_frames(report, seen=set())
    sys.stderr.write("".join(report.format()))
    sys.stderr.flush()


def _drop_ptap_frames(report, seen):
    """Remove ptap's frames from *report* and the exceptions chained to it."""
    if report is None or id(report) in seen:
        return
    seen.add(id(report))
    frames = [frame for frame in report.stack if not _is_ptap_file(frame.filename)]
    report.stack = traceback.StackSummary.from_list(frames)
    _drop_ptap_frames(report.__cause__, seen)
    _drop_ptap_frames(report.__context__, seen)
    for member in report.exceptions or ():
        _drop_ptap_frames(member, seen)


def _is_ptap_file(filename):
    """Whether *filename* is one of the ptap package's own modules."""
    return os.path.abspath(filename).startswith(_PTAP_DIR + os.sep)
