"""Tests for ptap.oneliner: the programs of ``processtap -e``."""

import pytest

from ptap import oneliner


def test_clauses_become_handlers_and_other_lines_stay():
    source, _ = oneliner.translate(
        'import os ;; syscall_entry(syscall_name == "openat"): print(ctx.args[1]); n = 1\n'
        'process_exit: print("done ;; not a separator")'
    )
    assert source == (
        "import os\n"
        '@syscall_entry(syscall_name == "openat")\n'
        "def _clause_1(ctx):\n"
        "    print(ctx.args[1]); n = 1\n"
        "@process_exit\n"
        "def _clause_2(ctx):\n"
        '    print("done ;; not a separator")\n'
    )


def test_predicates_with_parentheses_colons_and_keywords():
    source, _ = oneliner.translate('branch((function_name == "a:b") & (branch_taken == True), once=True): print(ctx.taken)')
    assert source.splitlines()[0] == '@branch((function_name == "a:b") & (branch_taken == True), once=True)'
    # A name that is not a probe kind is plain Python.
    assert oneliner.translate("function_entries = 3")[0] == "function_entries = 3\n"


@pytest.mark.parametrize(
    "program, message, line, column",
    [
        ('n = 0 ;; syscall_entry(syscall_name == "read": n += 1', "syscall_entry( is not closed", 1, 23),
        ('function_entry(function_name == "f") print(1)', "expected ':'", 1, 38),
        ("x = 1\nprocess_exit:   ", "no statement after process_exit", 2, 14),
        # Python's own errors, moved from the translation to the program.
        ('x = 1\nfunction_exit(function_name == "f"): print(ctx.retval', "was never closed", 2, 43),
        ("thread_start: x = = 1", "invalid syntax", 1, 19),
        ('function_entry(function_name ==): pass', "invalid syntax", 1, 32),
    ],
)
def test_syntax_errors_point_at_the_programs_line_and_column(program, message, line, column):
    with pytest.raises(SyntaxError) as raised:
        oneliner.compile_program(program)
    error = raised.value
    assert message in error.msg
    assert (error.filename, error.lineno, error.offset) == ("-e", line, column), error
    assert error.text == program.split("\n")[line - 1]
