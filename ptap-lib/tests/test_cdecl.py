"""Tests for ptap.cdecl: C types and prototypes, how they print and how they decode."""

import pytest

from ptap.cdecl import (
    ILP32,
    LP64,
    STRINGS,
    Array,
    Basic,
    Buffer,
    Function,
    Param,
    Pointer,
    Prototype,
    Tagged,
    Typedef,
    decode_prototype,
    decode_type,
    encode_prototype,
    encode_type,
    native_data_model,
)

CHAR = Basic("char")
CONST_CHAR = Basic("char", ("const",))
INT = Basic("int")
VOID = Basic("void")
SIZE_T = Typedef("size_t", Basic("unsigned long"))


# --- printing ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ctype, name, text",
    [
        (INT, "x", "int x"),
        (Pointer(CONST_CHAR), "s", "const char *s"),
        (Pointer(CHAR, ("const",)), "p", "char *const p"),
        (Pointer(Pointer(CHAR)), "argv", "char **argv"),
        (Array(Pointer(CHAR, ("const",))), "envp", "char *const envp[]"),
        (Array(CHAR, "16"), "name", "char name[16]"),
        (Pointer(Function(VOID, (Param(None, INT),))), "handler", "void (*handler)(int)"),
        (Pointer(Array(INT, "4")), "rows", "int (*rows)[4]"),
        (Tagged("struct", "stat", ("const",)), "st", "const struct stat st"),
        (SIZE_T, "n", "size_t n"),
        (Pointer(VOID), "", "void *"),
    ],
)
def test_declarations_print_as_c(ctype, name, text):
    assert ctype.declare(name) == text


def test_prototype_prints_its_declaration():
    malloc = Prototype("malloc", Pointer(VOID), (Param("size", SIZE_T),))
    assert str(malloc) == "void *malloc(size_t size);"
    assert repr(malloc) == "<Prototype void *malloc(size_t size);>"


def test_prototype_without_parameters_prints_void():
    assert str(Prototype("getpid", INT)) == "int getpid(void);"


def test_variadic_prototype_prints_an_ellipsis():
    printf = Prototype("printf", INT, (Param("format", Pointer(CONST_CHAR)),), variadic=True)
    assert str(printf) == "int printf(const char *format, ...);"


def test_function_returning_a_function_pointer():
    handler = Pointer(Function(VOID, (Param(None, INT),)))
    signal = Prototype("signal", handler, (Param("sig", INT), Param("h", handler)))
    assert str(signal) == "void (*signal(int sig, void (*h)(int)))(int);"


# --- decoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ctype, data",
    [
        (VOID, ("void", 0, False, None)),
        (Basic("_Bool"), ("bool", 1, False, None)),
        (CHAR, ("int", 1, True, None)),
        (Basic("unsigned char"), ("int", 1, False, None)),
        (Basic("short"), ("int", 2, True, None)),
        (Basic("unsigned short int"), ("int", 2, False, None)),
        (INT, ("int", 4, True, None)),
        (Basic("unsigned"), ("int", 4, False, None)),
        (Basic("long"), ("int", 8, True, None)),
        (Basic("long unsigned int"), ("int", 8, False, None)),
        (Basic("long long"), ("int", 8, True, None)),
        (Basic("float"), ("float", 4, False, None)),
        (Basic("double"), ("double", 8, False, None)),
        (Basic("long double"), ("long double", 16, False, None)),
        (Basic("double _Complex"), ("unsupported", 0, False, "_Complex value")),
        (Basic("__int128"), ("unsupported", 0, False, "128-bit integer")),
        (Tagged("enum", "color"), ("int", 4, True, None)),
        (Tagged("struct", "point"), ("unsupported", 0, False, "struct by value")),
        (Tagged("union", "value"), ("unsupported", 0, False, "union by value")),
        (Pointer(CHAR), ("string", 8, False, None)),
        (Pointer(CONST_CHAR), ("string", 8, False, None)),
        (Pointer(Basic("unsigned char")), ("pointer", 8, False, None)),
        (Pointer(Basic("signed char")), ("pointer", 8, False, None)),
        (Pointer(Pointer(CHAR)), ("pointer", 8, False, None)),
        (Pointer(Tagged("struct", "stat")), ("pointer", 8, False, None)),
        (Array(CHAR, "16"), ("string", 8, False, None)),
        (Array(INT), ("pointer", 8, False, None)),
        (Function(VOID), ("pointer", 8, False, None)),
        (Pointer(Typedef("gchar", CHAR)), ("string", 8, False, None)),
    ],
)
def test_type_data_on_x86_64(ctype, data):
    assert ctype.to_data(LP64) == data


def test_typedef_chains_decode_as_what_they_end_in():
    ssize_t = Typedef("ssize_t", Typedef("__ssize_t", Basic("long")))
    assert str(ssize_t) == "ssize_t"
    assert ssize_t.resolve() == Basic("long")
    assert ssize_t.to_data(LP64) == ("int", 8, True, None)


def test_ilp32_has_4_byte_longs_and_pointers():
    assert Basic("long").to_data(ILP32) == ("int", 4, True, None)
    assert Basic("long long").to_data(ILP32) == ("int", 8, True, None)
    assert Pointer(VOID).to_data(ILP32) == ("pointer", 4, False, None)
    assert SIZE_T.to_data(ILP32) == ("int", 4, False, None)
    assert Basic("long double").to_data(ILP32) == ("long double", 12, False, None)


def test_the_native_data_model_is_the_default():
    assert Basic("long").to_data() == Basic("long").to_data(native_data_model())


def test_prototype_to_data():
    read = Prototype(
        "read", Typedef("ssize_t", Basic("long")),
        (Param("fd", INT), Param("buf", Pointer(VOID)), Param("n", SIZE_T)),
    )
    assert read.to_data(LP64) == (
        "read",
        ("int", 8, True, None),
        (("int", 4, True, None), ("pointer", 8, False, None), ("int", 8, False, None)),
        False,
    )


def test_decoding_overrides_the_type():
    out = Param("buf", Pointer(VOID), Buffer("out", "retval"))
    into = Param("buf", Pointer(CONST_CHAR), Buffer("in", 2))
    argv = Param("argv", Array(Pointer(CHAR, ("const",))), STRINGS)
    assert out.to_data(LP64) == ("buffer", 8, False, ("retval", "out"))
    assert into.to_data(LP64) == ("buffer", 8, False, (2, "in"))
    assert argv.to_data(ILP32) == ("strings", 4, False, None)
    assert str(into) == "const char *buf"


# --- encoding ------------------------------------------------------------------


def test_prototypes_survive_encoding():
    handler = Pointer(Function(VOID, (Param(None, INT),), variadic=True))
    proto = Prototype(
        "f",
        Typedef("ssize_t", Typedef("__ssize_t", Basic("long"))),
        (
            Param("s", Pointer(CONST_CHAR, ("restrict",))),
            Param(None, Array(Tagged("struct", "x"), "N + 1")),
            Param("h", handler),
            Param("buf", Pointer(VOID), Buffer("out", "retval")),
            Param("argv", Array(Pointer(CHAR)), STRINGS),
        ),
        variadic=True,
    )
    assert decode_prototype(encode_prototype(proto)) == proto


def test_encoded_types_are_plain_lists():
    import json

    data = encode_type(Pointer(SIZE_T, ("const",)))
    assert json.loads(json.dumps(data)) == data
    assert decode_type(data) == Pointer(SIZE_T, ("const",))
