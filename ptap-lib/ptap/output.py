"""Where what the script prints goes.

Inside the target, file descriptors 1 and 2 belong to the target: a
process the target started may have a pipe there that its parent reads, or
a file it is writing, and the tracer must not write to them nor close
them. The native runtime keeps the tracer's own streams, shared by every
process of the trace, and writes to them in whole lines.
:func:`install_streams` points ``sys.stdout`` and ``sys.stderr`` at them.
"""

import io
import sys

__all__ = ["STDOUT", "STDERR", "TracerStream", "install_streams"]

#: The tracer's streams, as the native runtime numbers them.
STDOUT = 1
STDERR = 2


class TracerStream(io.RawIOBase):
    """A write-only raw stream handing what is written to the tracer.

    *write(stream, data)* takes the bytes and *fileno(stream)* gives the
    descriptor behind *stream*; both default to the native runtime's.
    The stream never fails a write: output the tracer cannot deliver (a
    reader that left its pipe) is dropped, as the target must not notice.
    """

    def __init__(self, stream, write, fileno):
        super().__init__()
        self._stream = stream
        self._write = write
        self._fileno = fileno

    def writable(self):
        return True

    def write(self, data):
        data = bytes(data)
        self._write(self._stream, data)
        return len(data)

    def fileno(self):
        return self._fileno(self._stream)


def install_streams(write=None, fileno=None):
    """Make ``sys.stdout`` and ``sys.stderr`` write to the tracer's streams.

    The new streams are UTF-8 text that escapes what it cannot encode, and
    keeps nothing back (``write_through``): the native side holds a line
    until its end. ``sys.__stdout__`` and ``sys.__stderr__`` are replaced
    too. *write* and *fileno* are as for :class:`TracerStream`.
    """
    if write is None:
        import _ptap

        write, fileno = _ptap.write_stream, _ptap.stream_fileno
    sys.stdout = sys.__stdout__ = _text_stream(TracerStream(STDOUT, write, fileno))
    sys.stderr = sys.__stderr__ = _text_stream(TracerStream(STDERR, write, fileno))


def _text_stream(raw):
    """Return a text stream over *raw* that passes every write straight on."""
    return io.TextIOWrapper(
        raw,
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )
