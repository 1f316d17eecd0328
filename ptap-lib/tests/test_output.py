"""Tests for ptap.output: handler output goes to the tracer's own descriptors."""

import gc
import os
import sys

import pytest

from ptap.output import install_streams


@pytest.fixture
def pipes(monkeypatch):
    """Two pipes standing in for the tracer's output and error descriptors.

    sys.stdout, sys.stderr and their __dunder__ twins are restored afterwards.
    """
    for name in ("stdout", "stderr", "__stdout__", "__stderr__"):
        monkeypatch.setattr(sys, name, getattr(sys, name))
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    yield out_read, out_write, err_read, err_write
    for fd in (out_read, out_write, err_read, err_write):
        os.close(fd)


def test_streams_write_lines_to_the_given_descriptors(pipes):
    out_read, out_write, err_read, err_write = pipes
    install_streams(out_write, err_write)
    print("to out")
    print("to err", file=sys.stderr)
    assert os.read(out_read, 100) == b"to out\n"
    assert os.read(err_read, 100) == b"to err\n"


def test_dunder_streams_are_replaced_too(pipes):
    _, out_write, _, err_write = pipes
    install_streams(out_write, err_write)
    assert sys.__stdout__ is sys.stdout
    assert sys.__stderr__ is sys.stderr
    assert sys.stdout.fileno() == out_write
    assert sys.stderr.fileno() == err_write


def test_streams_are_line_buffered_utf8_with_backslash_escapes(pipes):
    out_read, out_write, _, err_write = pipes
    install_streams(out_write, err_write)
    assert sys.stdout.line_buffering
    assert sys.stdout.encoding == "utf-8"
    assert sys.stdout.errors == "backslashreplace"
    print("caf\u00e9 \udcff")
    assert os.read(out_read, 100) == b"caf\xc3\xa9 \\udcff\n"


def test_streams_do_not_close_the_descriptors(pipes):
    out_read, out_write, _, err_write = pipes
    install_streams(out_write, err_write)
    stream = sys.stdout
    sys.stdout = sys.__stdout__ = None
    stream.close()
    del stream
    gc.collect()
    os.write(out_write, b"still open")
    assert os.read(out_read, 100) == b"still open"
