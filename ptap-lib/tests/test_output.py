"""Tests for ptap.output: handler output goes to the tracer's own streams."""

import sys

import pytest

from ptap.output import STDERR, STDOUT, install_streams


@pytest.fixture
def written(monkeypatch):
    """``written()`` installs the streams over a recorder, a list of
    (stream, bytes), and returns it. (Called in the test itself: pytest
    sets its own sys.stdout again between a fixture and the test.)

    sys.stdout, sys.stderr and their __dunder__ twins are restored afterwards.
    """
    for name in ("stdout", "stderr", "__stdout__", "__stderr__"):
        monkeypatch.setattr(sys, name, getattr(sys, name))

    def install():
        record = []
        install_streams(lambda stream, data: record.append((stream, data)), lambda stream: 100 + stream)
        return record

    return install


def joined(record, stream):
    return b"".join(data for s, data in record if s == stream)


def test_print_reaches_the_tracer_streams(written):
    record = written()
    print("to out")
    print("to err", file=sys.stderr)
    assert joined(record, STDOUT) == b"to out\n"
    assert joined(record, STDERR) == b"to err\n"


def test_nothing_is_kept_back(written):
    record = written()
    # A partial line goes on at once: the native side keeps it until its
    # newline, and a forked child must not find a copy in Python's buffers.
    print("partial", end="")
    assert joined(record, STDOUT) == b"partial"


def test_dunder_streams_are_replaced_too(written):
    record = written()
    assert sys.__stdout__ is sys.stdout
    assert sys.__stderr__ is sys.stderr
    assert sys.stdout.fileno() == 100 + STDOUT
    assert sys.stderr.fileno() == 100 + STDERR


def test_streams_are_line_buffered_utf8_with_backslash_escapes(written):
    record = written()
    assert sys.stdout.line_buffering
    assert sys.stdout.encoding == "utf-8"
    assert sys.stdout.errors == "backslashreplace"
    print("caf\u00e9 \udcff")
    assert joined(record, STDOUT) == b"caf\xc3\xa9 \\udcff\n"


def test_closing_a_stream_does_not_stop_the_other(written):
    record = written()
    sys.stdout.close()
    print("still here", file=sys.stderr)
    assert joined(record, STDERR) == b"still here\n"
