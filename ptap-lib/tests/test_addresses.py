"""AddressSet and the access-span meaning of memory_address."""

import pytest

from ptap import AddressSet, memory_address, memory_value, symbol_range
from ptap.predicates import InSet


def test_an_address_set_holds_ranges_by_start():
    heap = AddressSet()
    heap.add(0x1000, 16)
    heap.add(0x2000, 1)
    assert len(heap) == 2
    assert 0x1000 in heap and 0x100F in heap and 0x1010 not in heap
    heap.add(0x1000, 4)  # the same start: replaced
    assert len(heap) == 2 and 0x1004 not in heap
    heap.discard(0x1000)
    heap.discard(0x1000)  # absent: nothing happens
    assert list(heap) == [(0x2000, 1)]
    heap.clear()
    assert len(heap) == 0 and 0x2000 not in heap


def test_overlapping_ranges_are_found():
    heap = AddressSet([(0x1000, 0x1000), (0x1100, 8)])
    assert heap.overlaps(0x1F00, 4)
    heap.discard(0x1000)
    assert not heap.overlaps(0x1F00, 4)
    assert heap.overlaps(0x10F8, 16)


@pytest.mark.parametrize("args, error", [
    (("x", 1), TypeError), ((-1, 1), ValueError), ((0, 0), ValueError),
    ((2**64 - 1, 2), ValueError), ((0, 1.5), TypeError),
])
def test_bad_ranges_are_refused(args, error):
    with pytest.raises(error):
        AddressSet().add(*args)


def test_memory_address_matches_any_byte_of_the_access():
    watched = 0x1004
    vector_store = {"memory_address": (0x1000, 16)}
    assert (memory_address == watched).evaluate(vector_store)
    assert (memory_address >> [watched, 0x9999]).evaluate(vector_store)
    assert (memory_address >> range(0x100F, 0x1010)).evaluate(vector_store)
    assert not (memory_address >> range(0x1010, 0x1020)).evaluate(vector_store)
    assert not (memory_address != watched).evaluate(vector_store)
    # < tests the first byte, > the last.
    assert (memory_address < 0x1001).evaluate(vector_store)
    assert (memory_address > 0x100E).evaluate(vector_store)
    both = (memory_address >= 0x100F) & (memory_address < 0x1100)
    assert both.evaluate(vector_store)


def test_an_address_set_in_a_predicate():
    heap = AddressSet()
    predicate = memory_address >> heap
    assert isinstance(predicate, InSet)
    assert predicate.to_data() == ("set", "memory_address", heap.id)
    assert not predicate.evaluate({"memory_address": (0x5000, 8)})
    heap.add(0x5004, 4)  # the set changes; the predicate sees it
    assert predicate.evaluate({"memory_address": (0x5000, 8)})
    assert "AddressSet" in str(predicate)
    with pytest.raises(TypeError):
        memory_value >> heap


def test_symbol_range_needs_a_traced_program():
    with pytest.raises(RuntimeError):
        symbol_range("table")
