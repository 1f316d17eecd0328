"""Tests for ptap.cache: entries written atomically, read back only for their key."""

import marshal
import os
import subprocess
import sys
import zlib

import pytest

import ptap
from ptap import cache

LIB_DIR = os.path.dirname(os.path.dirname(ptap.__file__))

VALUE = {"files": [["/usr/include/stdio.h", 123, 456]], "data": [("int", 4, True, None)], "error": None}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A cache of the test's own."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("PTAP_CACHE_DIR", str(directory))
    return directory


def test_an_entry_is_read_back_for_its_key(cache_dir):
    path = cache.entry_path("headers/a.h", ["a.h", []])
    cache.store(path, ["a.h", []], VALUE)
    assert cache.load(path, ["a.h", []]) == VALUE
    assert os.path.dirname(path) == str(cache_dir / "headers")
    assert os.listdir(cache_dir / "headers") == [os.path.basename(path)]  # No temporary file left.


def test_keys_name_different_files(cache_dir):
    assert cache.entry_path("x", ["a"]) != cache.entry_path("x", ["b"])
    assert cache.entry_path("x", ["a"]) == cache.entry_path("x", ["a"])


def test_an_entry_is_not_read_for_another_key(cache_dir):
    path = cache.entry_path("x", ["a"])
    cache.store(path, ["a"], VALUE)
    assert cache.load(path, ["b"]) is None


def test_an_entry_of_another_format_is_not_read(cache_dir, monkeypatch):
    path = cache.entry_path("x", ["a"])
    cache.store(path, ["a"], VALUE)
    monkeypatch.setattr(cache, "FORMAT", cache.FORMAT + 1)
    assert cache.load(path, ["a"]) is None


def test_a_missing_entry_is_none(cache_dir):
    assert cache.load(cache.entry_path("x", ["a"]), ["a"]) is None


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flipped bit", "other value"])
def test_a_corrupt_entry_is_none(cache_dir, damage):
    path = cache.entry_path("x", ["a"])
    cache.store(path, ["a"], VALUE)
    with open(path, "rb") as file:
        data = file.read()
    damaged = {
        "truncate": data[: len(data) // 2],
        "garbage": b"\x00\xff" * 50,
        "empty": b"",
        "flipped bit": data[:-3] + bytes([data[-3] ^ 1]) + data[-2:],
        "other value": zlib.crc32(other := marshal.dumps(["not", "a", "pair"])).to_bytes(4, "little") + other,
    }[damage]
    with open(path, "wb") as file:
        file.write(damaged)
    assert cache.load(path, ["a"]) is None


def test_an_unwritable_cache_raises_oserror_and_reads_nothing(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PTAP_CACHE_DIR", str(blocker))
    path = cache.entry_path("x", ["a"])
    with pytest.raises(OSError):
        cache.store(path, ["a"], VALUE)
    assert cache.load(path, ["a"]) is None


WRITER = """
import sys
from ptap import cache
path, value = sys.argv[1], eval(sys.argv[2])
for _ in range(200):
    cache.store(path, ["a"], value)
"""


def test_concurrent_writers_leave_whole_entries(cache_dir):
    # Processes of a shell loop prepare the same entry at the same time:
    # once an entry is there, a reader always sees one writer's whole
    # entry, never a part of one, nor a mix.
    path = cache.entry_path("x", ["a"])
    values = [{"n": n, "text": str(n) * 100_000} for n in range(3)]
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, path, f"{{'n': {n}, 'text': {str(n)!r} * 100_000}}"],
                         cwd=LIB_DIR)
        for n in range(3)
    ]
    seen = []
    while any(writer.poll() is None for writer in writers):
        value = cache.load(path, ["a"])
        if seen or value is not None:
            assert value in values
            seen.append(value["n"])
    assert [writer.returncode for writer in writers] == [0, 0, 0]
    assert cache.load(path, ["a"]) in values
    assert seen
    assert not [name for name in os.listdir(cache_dir) if name.endswith(".tmp")]
