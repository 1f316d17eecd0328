"""Tests for ptap.legacy: scripts for the original, Python 2 ProcessTap."""

import textwrap
import warnings

import pytest

from ptap.legacy import looks_like_python2, translate

OLD_SCRIPT = textwrap.dedent("""\
    count = 0
    def on_exit(ctx):
        print "exit code %d" % ctx.exit_code
    process_exit(on_exit)
""")


def test_translates_print_statements_in_functions():
    assert translate(OLD_SCRIPT, "old.ptap") == textwrap.dedent("""\
        count = 0
        def on_exit(ctx):
            print("exit code %d" % ctx.exit_code)
        process_exit(on_exit)
    """)


def test_translates_print_at_top_level():
    assert translate('print "hello"\n', "hello.ptap") == 'print("hello")\n'


def test_translates_other_python2_forms():
    source = textwrap.dedent("""\
        try:
            x = 0777
        except ValueError, e:
            print >>sys.stderr, e
        d = {}
        if d.has_key("a"):
            pass
    """)
    translation = translate(source, "forms.ptap")
    compile(translation, "forms.ptap", "exec")
    assert "except ValueError as e:" in translation
    assert "0o777" in translation
    assert '"a" in d' in translation


def test_keeps_line_numbers():
    source = 'x = 1\n\nprint "a", x\n\n\nprint\nraise ValueError, "bad"\n'
    translation = translate(source, "lines.ptap")
    assert len(translation.splitlines()) == len(source.splitlines())
    assert translation.splitlines()[2] == 'print("a", x)'
    assert translation.splitlines()[6] == 'raise ValueError("bad")'


def test_adds_a_missing_final_newline():
    assert translate('print "x"', "x.ptap") == 'print("x")\n'


def test_source_that_is_not_python2_either_is_a_syntax_error():
    with pytest.raises(SyntaxError) as caught:
        translate("def (:\n", "broken.ptap")
    assert caught.value.filename == "broken.ptap"
    assert caught.value.lineno == 1


def test_translation_emits_no_deprecation_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        translate('print "quiet"\n', "quiet.ptap")


def test_looks_like_python2():
    assert looks_like_python2(OLD_SCRIPT, "old.ptap")
    assert looks_like_python2('print "hello"\n', "hello.ptap")


def test_python3_does_not_look_like_python2():
    assert not looks_like_python2('print("hello")\n', "new.ptap")


def test_broken_source_does_not_look_like_python2():
    assert not looks_like_python2("def (:\n", "broken.ptap")
    assert not looks_like_python2('print "a" +\n', "broken.ptap")
