"""Tests for ptap.predicates: building, printing, deciding and exporting predicates."""

import pytest

from ptap.predicates import (
    ALWAYS,
    VARIABLES,
    And,
    Compare,
    InRange,
    Like,
    Not,
    OneOf,
    Or,
    Predicate,
    branch_taken,
    function_address,
    function_name,
    instruction_address,
    memory_address,
    memory_size,
    memory_value,
    module_name,
    process_id,
    syscall_name,
    syscall_num,
    thread_id,
)

MALLOC = function_name == "malloc"


# --- building ----------------------------------------------------------------


@pytest.mark.parametrize(
    "predicate, op",
    [
        (process_id == 5, "=="),
        (process_id != 5, "!="),
        (process_id < 5, "<"),
        (process_id <= 5, "<="),
        (process_id > 5, ">"),
        (process_id >= 5, ">="),
    ],
)
def test_comparisons_build_compare_nodes(predicate, op):
    assert predicate == Compare("process_id", op, 5)


@pytest.mark.parametrize(
    "predicate, expected",
    [
        (5 == process_id, Compare("process_id", "==", 5)),
        (5 < process_id, Compare("process_id", ">", 5)),
        (5 >= process_id, Compare("process_id", "<=", 5)),
        ("malloc" == function_name, Compare("function_name", "==", "malloc")),
    ],
)
def test_reflected_comparisons(predicate, expected):
    assert predicate == expected


def test_combinators_build_trees():
    a = process_id == 1
    b = thread_id == 2
    assert (a & b) == And(a, b)
    assert (a | b) == Or(a, b)
    assert ~a == Not(a)
    assert (a & (b | ~a)) == And(a, Or(b, Not(a)))


@pytest.mark.parametrize("values", [["open", "openat"], ("open", "openat")])
def test_one_of_keeps_the_order_given(values):
    assert (syscall_name >> values) == OneOf("syscall_name", ("open", "openat"))


def test_one_of_a_set_is_sorted_and_duplicates_are_dropped():
    assert (syscall_name >> {"openat", "open"}) == OneOf("syscall_name", ("open", "openat"))
    assert (syscall_num >> [2, 2, 257]) == OneOf("syscall_num", (2, 257))


def test_range_builds_an_interval_without_expanding_it():
    predicate = memory_address >> range(0x1000, 0x7FFF_FFFF_FFFF)
    assert predicate == InRange("memory_address", 0x1000, 0x7FFF_FFFF_FFFF)


def test_range_with_a_step_is_refused():
    with pytest.raises(ValueError, match="step 1"):
        memory_address >> range(0, 10, 2)


def test_like_builds_a_like_node():
    assert module_name.like("libc*") == Like("module_name", "libc*")


def test_function_address_keeps_module_relative_strings():
    assert (function_address == "app+0x1136").to_data() == (
        "cmp", "function_address", "==", "app+0x1136",
    )


# --- truth values are refused ------------------------------------------------


def test_bool_of_a_predicate_explains_what_to_write():
    with pytest.raises(TypeError, match=r"combine predicates with & \| ~"):
        bool(MALLOC)


def test_and_keyword_is_refused():
    with pytest.raises(TypeError, match="not and/or/not"):
        (process_id == 1) and (thread_id == 2)


def test_not_keyword_is_refused():
    with pytest.raises(TypeError, match="not and/or/not"):
        not MALLOC


def test_chained_comparison_is_refused():
    with pytest.raises(TypeError, match=r"\(x > a\) & \(x < b\)"):
        0x1000 < memory_address < 0x2000


def test_predicates_combine_only_with_predicates():
    with pytest.raises(TypeError):
        MALLOC & True
    with pytest.raises(TypeError):
        MALLOC | "free"


# --- type checking -----------------------------------------------------------


@pytest.mark.parametrize(
    "build, variable",
    [
        (lambda: function_name == 5, "function_name"),
        (lambda: module_name == b"libc", "module_name"),
        (lambda: syscall_name >> ["open", 2], "syscall_name"),
        (lambda: process_id == "1", "process_id"),
        (lambda: thread_id == 1.5, "thread_id"),
        (lambda: syscall_num == True, "syscall_num"),
        (lambda: memory_address == "0x1000", "memory_address"),
        (lambda: memory_value == "abc", "memory_value"),
        (lambda: branch_taken == 1, "branch_taken"),
        (lambda: function_address == 1.0, "function_address"),
        (lambda: memory_size >> ["4"], "memory_size"),
    ],
)
def test_bad_value_type_names_the_variable(build, variable):
    with pytest.raises(TypeError, match=variable):
        build()


@pytest.mark.parametrize("value", [-1, 2**64])
def test_integers_must_fit_in_64_bits(value):
    with pytest.raises(ValueError, match="process_id"):
        process_id == value


@pytest.mark.parametrize("text", ["app", "app+", "+0x10", "app+zz"])
def test_malformed_module_relative_address(text):
    with pytest.raises(ValueError, match="module\\+0xoffset"):
        function_address == text


def test_accepted_value_types():
    function_address == 0x401136
    function_address == "app+0x1136"
    memory_value == 0x90
    memory_value == b"\x90\x90"
    branch_taken == False
    memory_address >> (0x10, 0x20)


@pytest.mark.parametrize("variable", [process_id, memory_address, branch_taken])
def test_like_only_on_string_variables(variable):
    with pytest.raises(TypeError, match="string variables"):
        variable.like("1*")


def test_like_needs_a_str_glob():
    with pytest.raises(TypeError, match="function_name"):
        function_name.like(5)


def test_strings_cannot_be_ordered():
    with pytest.raises(TypeError, match="only numbers can be ordered"):
        function_name < "m"
    with pytest.raises(TypeError, match="only numbers can be ordered"):
        function_address < "app+0x10"


def test_membership_needs_a_collection():
    with pytest.raises(TypeError, match="list"):
        syscall_name >> "open"
    with pytest.raises(TypeError, match="list"):
        syscall_num >> 5


def test_range_only_on_numeric_variables():
    with pytest.raises(TypeError, match="numeric"):
        function_name >> range(0, 3)


def test_two_variables_cannot_be_compared():
    with pytest.raises(TypeError, match="with a value"):
        process_id == thread_id


# --- printing ----------------------------------------------------------------


def test_contract_example_prints_as_in_the_banner():
    assert str(function_name == "malloc") == "(function.name == @malloc)"


@pytest.mark.parametrize(
    "predicate, text",
    [
        (ALWAYS, "(true)"),
        (module_name == "libc.so.6", '(module.name == "libc.so.6")'),
        (syscall_name != "read", '(syscall.name != "read")'),
        (process_id >= 100, "(process.id >= 100)"),
        (syscall_num == 257, "(syscall.num == 257)"),
        (function_address == 0x401136, "(function.address == 0x401136)"),
        (function_address == "app+0x1136", '(function.address == "app+0x1136")'),
        (instruction_address < 4096, "(instruction.address < 0x1000)"),
        (memory_size > 4, "(memory.size > 4)"),
        (memory_value == 144, "(memory.value == 144)"),
        (memory_value == b"\x90", "(memory.value == b'\\x90')"),
        (branch_taken == True, "(branch.taken == true)"),
        (syscall_name >> ["open", "openat"], '(syscall.name in ["open", "openat"])'),
        (function_name >> ["malloc", "free"], "(function.name in [@malloc, @free])"),
        (memory_address >> range(0x1000, 0x2000), "(memory.address in [0x1000, 0x2000))"),
        (thread_id >> range(1, 3), "(thread.id in [1, 3))"),
        (function_name.like("str*"), '(function.name like "str*")'),
        (module_name.like('a"b'), '(module.name like "a\\"b")'),
        (~MALLOC, "~(function.name == @malloc)"),
        (
            MALLOC & (thread_id == 2),
            "((function.name == @malloc) & (thread.id == 2))",
        ),
        (
            MALLOC | (function_name == "free"),
            "((function.name == @malloc) | (function.name == @free))",
        ),
        (
            (MALLOC | (function_name == "free")) & ~(thread_id == 1),
            "(((function.name == @malloc) | (function.name == @free)) & ~(thread.id == 1))",
        ),
    ],
)
def test_printing(predicate, text):
    assert str(predicate) == text


def test_every_variable_prints_with_dots():
    for name, variable in VARIABLES.items():
        assert variable.banner_name == name.replace("_", ".")
        assert str(variable) == variable.banner_name


# --- variables() ---------------------------------------------------------------


def test_variables_lists_each_variable_used():
    predicate = (MALLOC | module_name.like("libc*")) & ~(thread_id >> range(1, 5))
    assert predicate.variables() == frozenset({"function_name", "module_name", "thread_id"})
    assert ALWAYS.variables() == frozenset()


# --- evaluate() ----------------------------------------------------------------


def test_evaluate_compare():
    assert MALLOC.evaluate({"function_name": "malloc"})
    assert not MALLOC.evaluate({"function_name": "free"})
    assert (process_id > 5).evaluate({"process_id": 6})
    assert not (process_id > 5).evaluate({"process_id": 5})
    assert (process_id <= 5).evaluate({"process_id": 5})
    assert (process_id != 5).evaluate({"process_id": 4})


def test_evaluate_constant():
    assert ALWAYS.evaluate({})


def test_evaluate_one_of():
    predicate = syscall_name >> ["open", "openat"]
    assert predicate.evaluate({"syscall_name": "openat"})
    assert not predicate.evaluate({"syscall_name": "read"})
    assert not (syscall_num >> []).evaluate({"syscall_num": 0})


def test_evaluate_range_is_half_open():
    predicate = memory_address >> range(0x1000, 0x2000)
    assert predicate.evaluate({"memory_address": 0x1000})
    assert predicate.evaluate({"memory_address": 0x1FFF})
    assert not predicate.evaluate({"memory_address": 0x2000})
    assert not predicate.evaluate({"memory_address": 0xFFF})


def test_evaluate_like_is_a_case_sensitive_glob():
    predicate = module_name.like("libc*")
    assert predicate.evaluate({"module_name": "libc.so.6"})
    assert not predicate.evaluate({"module_name": "LIBC.so.6"})
    assert not predicate.evaluate({"module_name": "ld-linux-x86-64.so.2"})
    assert function_name.like("str?py").evaluate({"function_name": "strcpy"})
    assert function_name.like("[!_]*").evaluate({"function_name": "main"})


def test_evaluate_and_or_not():
    a = process_id == 1
    b = thread_id == 2
    for pid in (1, 9):
        for tid in (2, 9):
            fields = {"process_id": pid, "thread_id": tid}
            assert (a & b).evaluate(fields) == (pid == 1 and tid == 2)
            assert (a | b).evaluate(fields) == (pid == 1 or tid == 2)
            assert (~a).evaluate(fields) == (pid != 1)


def test_evaluate_memory_value_as_bytes_or_little_endian_int():
    fields = {"memory_value": b"\x34\x12"}
    assert (memory_value == b"\x34\x12").evaluate(fields)
    assert (memory_value == 0x1234).evaluate(fields)
    assert (memory_value > 0x1000).evaluate(fields)
    assert (memory_value >> range(0x1234, 0x1235)).evaluate(fields)


def test_evaluate_module_relative_function_address():
    predicate = function_address == "app+0x1136"
    assert predicate.evaluate({"function_address": "app+4406"})
    assert not predicate.evaluate({"function_address": "lib+0x1136"})
    assert (function_address == 0x401136).evaluate({"function_address": 0x401136})


def test_evaluate_refuses_to_mix_absolute_and_module_relative_addresses():
    with pytest.raises(TypeError, match="module-relative"):
        (function_address == "app+0x1136").evaluate({"function_address": 0x401136})
    with pytest.raises(TypeError, match="module-relative"):
        (function_address == 0x401136).evaluate({"function_address": "app+0x1136"})


def test_evaluate_branch_taken():
    assert (branch_taken == True).evaluate({"branch_taken": True})
    assert not (branch_taken == True).evaluate({"branch_taken": False})


def test_evaluate_missing_variable_raises_key_error():
    with pytest.raises(KeyError, match="function_name"):
        MALLOC.evaluate({"module_name": "libc.so.6"})


def test_evaluate_missing_variable_raises_even_when_the_other_side_decides():
    predicate = (process_id == 1) & MALLOC
    with pytest.raises(KeyError, match="function_name"):
        predicate.evaluate({"process_id": 2})


# --- to_data() -----------------------------------------------------------------


@pytest.mark.parametrize(
    "predicate, data",
    [
        (ALWAYS, ("const", True)),
        (MALLOC, ("cmp", "function_name", "==", "malloc")),
        (process_id >= 7, ("cmp", "process_id", ">=", 7)),
        (memory_value == b"\x00", ("cmp", "memory_value", "==", b"\x00")),
        (branch_taken == False, ("cmp", "branch_taken", "==", False)),
        (syscall_name >> ["open", "openat"], ("in", "syscall_name", ("open", "openat"))),
        (memory_address >> range(16, 32), ("range", "memory_address", 16, 32)),
        (module_name.like("libc*"), ("like", "module_name", "libc*")),
        (~MALLOC, ("not", ("cmp", "function_name", "==", "malloc"))),
        (
            MALLOC & (thread_id == 3),
            ("and", ("cmp", "function_name", "==", "malloc"), ("cmp", "thread_id", "==", 3)),
        ),
        (
            MALLOC | (thread_id == 3),
            ("or", ("cmp", "function_name", "==", "malloc"), ("cmp", "thread_id", "==", 3)),
        ),
    ],
)
def test_to_data(predicate, data):
    assert predicate.to_data() == data


def test_predicates_are_hashable_values():
    assert hash(process_id == 1) == hash(process_id == 1)
    assert isinstance(ALWAYS, Predicate)
