"""ptap.jsonlines: emit() and --json's records."""

import io
import json
import os

import pytest

from ptap import aggregations, jsonlines


def test_emit_puts_pid_tid_and_ts_first(capsys):
    jsonlines.emit(path="/etc/hostname", fd=3, data=b"\xffok", items={1, 2}, other=object)
    record = json.loads(capsys.readouterr().out)
    assert list(record) == ["pid", "tid", "ts", "path", "fd", "data", "items", "other"]
    assert record["pid"] == os.getpid() and record["ts"] > 0
    assert (record["data"], sorted(record["items"]), record["other"]) == ("\\xffok", [1, 2], "<class 'object'>")


def test_fields_may_replace_the_first_three(capsys):
    jsonlines.emit(pid=1, ts=2)
    record = json.loads(capsys.readouterr().out)
    assert (record["pid"], record["ts"]) == (1, 2)


def test_a_line_is_one_json_object_even_with_newlines_inside():
    out = io.StringIO()
    jsonlines.write({"text": "a\nb", "é": "ü"}, out)
    assert out.getvalue().count("\n") == 1
    assert json.loads(out.getvalue()) == {"text": "a\nb", "é": "ü"}


@pytest.fixture
def json_mode(monkeypatch):
    monkeypatch.setattr(jsonlines, "_enabled", True)
    monkeypatch.setattr(aggregations, "_made", [])


def test_aggregations_print_as_records_with_json(json_mode):
    calls, sizes = aggregations.count(), aggregations.hist()
    calls["malloc", 7] += 2
    sizes.add(5)
    sizes.add(6)
    sizes.add(100)
    out = io.StringIO()
    aggregations.print_unprinted(out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records[0] == {"pid": os.getpid(), "aggregation": "count", "kind": "count",
                          "values": [{"key": ["malloc", 7], "value": 2}]}
    assert records[1]["values"] == [{"key": None, "value": [{"low": 4, "high": 8, "count": 2}, {"low": 64, "high": 128, "count": 1}]}]
