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

Every process the target starts runs the script, so its compiled code is
kept in the cache (see :mod:`ptap.cache`), one entry per script path,
holding the script's bytes, which must be those read now, and the code,
for this version of the interpreter. The first ``compile()`` in a process
costs a millisecond or more, however short the script, as CPython sets up
its syntax-tree types; a Python 2 script's translation costs 300 ms (most
of it importing ``lib2to3``). Reading the entry costs tens of
microseconds.
"""

import builtins
import os
import sys

import ptap

from . import aggregations, oneliner, prototypes
from .errors import ScriptError
from .probes import Registry, close_registration, use_registry

__all__ = ["run_script", "include_dirs", "print_handler_error"]

_PTAP_DIR = os.path.dirname(os.path.abspath(__file__))

_include_dirs = ()


def include_dirs():
    """Return the header directories (``-I``) given to the last :func:`run_script`."""
    return _include_dirs


def _print_warning(message):
    """Print a warning to ``sys.stderr`` in the style of the banner."""
    print(f"[!] {message}", file=sys.stderr)


def run_script(path, *, exe, argv, include_dirs=(), warn=_print_warning, name=None, source=None, programs=()):
    """Run the script at *path* and return the probes it declared, in order.

    *programs* are the one-liner programs of ``-e`` (:mod:`ptap.oneliner`),
    run after the script in its namespace, as one program named ``-e``;
    with programs, *path* may be None: there is no script file.

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
    (any :exc:`BaseException`: :exc:`SystemExit`, :exc:`KeyboardInterrupt`
    and the script's own subclasses too) at its top level.
    """
    global _include_dirs
    _include_dirs = tuple(include_dirs)
    prototypes.reset()
    name = (path or oneliner.NAME) if name is None else name
    try:
        codes = []
        if path:
            if source is None:
                with open(path, "rb") as file:
                    source = file.read()
            codes.append(_compile_script(source, name, warn))
        if programs:
            program = "\n".join(programs)
            code, translation = oneliner.compile_program(program)
            _sources[oneliner.NAME] = translation.encode()
            codes.append(code)
        namespace = _script_globals(name, exe, argv)
        aggregations.namespace = namespace
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)) if path else os.getcwd())
        with use_registry(Registry()) as registry:
            for code in codes:
                exec(code, namespace)
        close_registration()
    except BaseException as error:
        _print_traceback(error)
        raise ScriptError(path, f"{type(error).__name__} while loading the script") from error
    return registry.probes


def _compile_script(data, name, warn):
    """Compile the script's bytes *data* as *name*, translating it from
    Python 2 if need be.

    The code comes from the cache if the script is unchanged since it was
    stored there.
    """
    code, translation = _cached_code(name, data)
    if code is None:
        code, translation = _compile_source(name, data)
        _store_code(name, data, code, translation)
    if translation is None:
        _sources[name] = data
    else:
        warn(f"{name}: Python 2 script translated to Python 3")
        _sources[name] = translation
    return code


def _decode(data):
    """Return the script's bytes *data* as text, decoded as CPython decodes
    a source file (PEP 263: a ``coding`` line, else UTF-8, a BOM allowed).

    Needed only for tracebacks and Python 2 translation: ``compile()``
    takes the bytes themselves.
    """
    import io
    import tokenize

    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        text = data.decode("utf-8", "replace")
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _compile_source(path, data):
    """Compile the script's bytes *data*, translated from Python 2 if need
    be; return the code and the translation (None for a Python 3 script).

    When the script is Python 2 neither, the error is Python 3's own: the
    translation's (lib2to3 may even run out of stack on deep nesting)
    would only confuse.
    """
    try:
        return compile(data, path, "exec", dont_inherit=True), None
    except SyntaxError as error:
        original = error
    if _is_decoding_error(original):
        raise _undecodable(path, data) from None

    from . import legacy  # Slow to import, and rarely needed.

    try:
        translation = legacy.translate(_decode(data), path)
        return compile(translation, path, "exec", dont_inherit=True), translation
    except Exception:
        raise original from None


def _is_decoding_error(error):
    """Whether *error* is ``compile()``'s for source bytes it cannot decode."""
    return str(error.msg).startswith("(unicode error)")


def _undecodable(path, data):
    """The SyntaxError CPython gives for a file it cannot decode as the
    source's encoding (for the UTF-8 default, its own words)."""
    for number, line in enumerate(data.splitlines(keepends=True), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            byte = line[error.start]
            return SyntaxError(
                f"Non-UTF-8 code starting with '\\x{byte:02x}' in file {path} on line {number}, "
                "but no encoding declared; see https://peps.python.org/pep-0263/ for details"
            )
    return SyntaxError(f"{path}: cannot decode the script's source as its declared encoding")


def _code_key(path):
    """Return the cache key of the script at *path*: what its code depends on but its text.

    ``sys.hexversion`` changes with every release, including those that
    change the bytecode's magic number (which importlib would take half a
    millisecond to import to give).
    """
    return ["script", path, sys.implementation.cache_tag, sys.hexversion, sys.flags.optimize]


def _cached_code(path, data):
    """Return the cached code and translation of the script *data* read at *path*, or Nones."""
    from . import cache

    key = _code_key(path)
    entry = cache.load(cache.entry_path("scripts/script", key), key)
    if (
        isinstance(entry, tuple)
        and len(entry) == 3
        and entry[0] == data
        and type(entry[1]) is _CODE
        and isinstance(entry[2], (str, type(None)))
    ):
        return entry[1], entry[2]
    return None, None


def _store_code(path, data, code, translation):
    """Keep the code and translation of the script *data* at *path* for the next process."""
    from . import cache

    key = _code_key(path)
    try:
        cache.store(cache.entry_path("scripts/script", key), key, (data, code, translation))
    except OSError:
        pass  # An unwritable cache: compile again next time.


#: The type of code objects (``types.CodeType``).
_CODE = type(_compile_script.__code__)

#: The source of each script run, by name (bytes as read, or a Python 2
#: script's translation), for tracebacks: never read again from a file,
#: which may have changed, or be a pipe (``/dev/stdin`` in the target is
#: the target's own stdin).
_sources = {}


def _remember_source(path, source):
    """Make tracebacks show *source* for *path*, whatever the file holds later.

    *source* is text, or bytes as read from the script's file.
    """
    import linecache

    if isinstance(source, bytes):
        source = _decode(source)
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


def format_handler_error(error, tb=None):
    """Return the traceback *tb* of *error*, which a handler raised (*tb*
    defaults to the exception's own), without ptap's own frames, as for
    the top level. The native side writes it to the tracer's stderr
    itself, whatever a handler did to ``sys.stderr``.

    The script's lines come from its source as compiled, never from its
    file again: in the target the file may have changed, or be a pipe or
    terminal (``/dev/stdin`` there is the target's own stdin).
    """
    import traceback

    for path, source in _sources.items():
        _remember_source(path, source)
    tb = error.__traceback__ if tb is None else tb
    report = traceback.TracebackException(type(error), error, tb)
    _drop_ptap_frames(report, seen=set())
    return "".join(report.format())


def print_handler_error(error, tb=None):
    """Print :func:`format_handler_error` to ``sys.stderr``."""
    sys.stderr.write(format_handler_error(error, tb))
    sys.stderr.flush()


def _print_traceback(error):
    """Print *error*'s traceback to ``sys.stderr`` without ptap's own frames.

    The traceback shows the script's lines as they were compiled. Only
    now are they given to :mod:`linecache`, which imports ``tokenize`` and
    ``re``: a script that runs without error should not pay for them.
    """
    import traceback

    for path, source in _sources.items():
        _remember_source(path, source)
    report = traceback.TracebackException.from_exception(error)
    _drop_ptap_frames(report, seen=set())
    sys.stderr.write("".join(report.format()))
    sys.stderr.flush()


def _drop_ptap_frames(report, seen):
    """Remove ptap's frames from *report* and the exceptions chained to it."""
    import traceback

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
