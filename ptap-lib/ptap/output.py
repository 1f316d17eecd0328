"""Where what the script prints goes.

Inside the target, file descriptors 1 and 2 belong to the target: the
tracer must not write to them, nor close them. The tracer duplicates its own
output descriptors (the terminal, or the ``-o`` file) and hands them to
:func:`install_streams`, which points ``sys.stdout`` and ``sys.stderr`` at
them.
"""

import sys

__all__ = ["install_streams"]


def install_streams(out_fd, err_fd):
    """Make ``sys.stdout`` and ``sys.stderr`` write to *out_fd* and *err_fd*.

    The new streams are line-buffered UTF-8 text that escapes what it
    cannot encode, and never close the descriptors, which stay the
    caller's. ``sys.__stdout__`` and ``sys.__stderr__`` are replaced too.
    """
    sys.stdout = sys.__stdout__ = _text_stream(out_fd)
    sys.stderr = sys.__stderr__ = _text_stream(err_fd)


def _text_stream(fd):
    """Open a line-buffered UTF-8 text stream over *fd* that does not close it."""
    return open(
        fd,
        "w",
        buffering=1,
        encoding="utf-8",
        errors="backslashreplace",
        closefd=False,
    )
