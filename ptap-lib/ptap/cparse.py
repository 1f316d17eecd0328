"""Parsing C declarations into :mod:`ptap.cdecl` types, with pycparser.

:func:`parse` reads C text -- a few declarations written in a script, the
system-call prototypes, or a whole preprocessed header -- and returns the
typedefs and the function prototypes it declares. It understands standard
C99/C11 only: headers must be preprocessed first (see :mod:`ptap.headers`
for how glibc's GNU extensions are kept out).

A C parser must know which names are types before it can parse a
declaration that uses them. :func:`parse` takes the typedefs known so far
and tells pycparser about those the text mentions, by a prelude of
``typedef int NAME;`` lines that a ``#line`` directive hides from error
messages; the meaning of each name comes from the typedefs given, not
from the prelude.

pycparser takes tens of milliseconds to import and to build its parser,
so this module is imported only when something must be parsed: including
a header already in the cache parses nothing.
"""

import functools
import linecache
import re
from collections import ChainMap

from pycparser import c_ast, c_generator, c_parser
from pycparser.plyparser import ParseError

from .cdecl import Array, Basic, Function, Param, Pointer, Prototype, Tagged, Typedef
from .errors import PrototypeError

__all__ = ["parse"]

_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")

#: A C comment, or a string or character literal (whose insides are not comments).
_COMMENT_OR_LITERAL = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.DOTALL)

#: pycparser's error messages: ``file:line:column: message``, the column optional.
_ERROR_MESSAGE = re.compile(r"^(?P<file>.*?):(?P<line>\d+):(?:(?P<column>\d+):)? (?P<message>.*)$")

_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern "
    "float for goto if inline int long register restrict return short signed "
    "sizeof static struct switch typedef union unsigned void volatile while "
    "_Alignas _Alignof _Atomic _Bool _Complex _Noreturn _Static_assert "
    "_Thread_local".split()
)


def parse(text, typedefs, filename="<declare>"):
    """Parse the C declarations in *text*.

    *typedefs* maps the typedef names *text* may use without defining them
    to the types they stand for. *filename* names the text in error
    messages (a preprocessed header names its own files by ``#`` lines).

    Return ``(new_typedefs, prototypes)``: a dict of the typedefs *text*
    defines, by name, in order, and a list of the :class:`Prototype` of
    every function it declares or defines, in order. Other declarations
    (variables, struct definitions) are read for their typedef names only.

    Raise :exc:`~ptap.errors.PrototypeError` if *text* is not valid C,
    quoting the line at fault.
    """
    text = _blank_comments(text)
    known = sorted(set(_IDENTIFIER.findall(text)) & typedefs.keys())
    prelude = "".join(f"typedef int {name};\n" for name in known)
    try:
        tree = _parser().parse(f'{prelude}#line 1 "{filename}"\n{text}', filename)
    except ParseError as error:
        raise PrototypeError(_describe_error(str(error), text, filename)) from None
    converter = _Converter(typedefs)
    for node in tree.ext[len(known):]:
        converter.add(node)
    return converter.new_typedefs, converter.prototypes


def _blank_comments(text):
    """Return *text* with its C comments turned to spaces, lines and columns kept.

    pycparser expects preprocessed text, which has no comments.
    """

    def blank(match):
        token = match.group()
        if token.startswith(("/*", "//")):
            return re.sub(r"[^\n]", " ", token)
        return token  # A string or character literal.

    return _COMMENT_OR_LITERAL.sub(blank, text)


@functools.cache
def _parser():
    """Return pycparser's parser, built once (it loads its parsing tables)."""
    return c_parser.CParser()


class _Converter:
    """Turns pycparser's syntax tree into typedefs and prototypes, node by node."""

    def __init__(self, typedefs):
        self.new_typedefs = {}
        self.prototypes = []
        self._typedefs = ChainMap(self.new_typedefs, typedefs)

    def add(self, node):
        """Take in one top-level declaration or function definition."""
        if isinstance(node, c_ast.FuncDef):
            node = node.decl
        if isinstance(node, c_ast.Typedef):
            self.new_typedefs[node.name] = self.convert(node.type)
        elif isinstance(node, c_ast.Decl) and isinstance(node.type, c_ast.FuncDecl):
            function = self.convert(node.type)
            self.prototypes.append(
                Prototype(node.name, function.restype, function.params, function.variadic)
            )

    def convert(self, node):
        """Return the :class:`~ptap.cdecl.CType` of a pycparser type node."""
        if isinstance(node, c_ast.TypeDecl):
            return self._named(node.type, tuple(node.quals))
        if isinstance(node, c_ast.PtrDecl):
            return Pointer(self.convert(node.type), tuple(node.quals))
        if isinstance(node, c_ast.ArrayDecl):
            length = None if node.dim is None else c_generator.CGenerator().visit(node.dim)
            return Array(self.convert(node.type), length, tuple(node.dim_quals))
        if isinstance(node, c_ast.FuncDecl):
            return self._function(node)
        if isinstance(node, c_ast.Typename):
            return self.convert(node.type)
        raise PrototypeError(f"unexpected C construct {type(node).__name__} at {node.coord}")

    def _named(self, node, quals):
        """Return the type a specifier names: keywords, a typedef name or a tag."""
        if isinstance(node, c_ast.IdentifierType):
            name = " ".join(node.names)
            if name in self._typedefs:
                return Typedef(name, self._typedefs[name], quals)
            return Basic(name, quals)
        keyword = {c_ast.Struct: "struct", c_ast.Union: "union", c_ast.Enum: "enum"}
        return Tagged(keyword[type(node)], node.name, quals)

    def _function(self, node):
        """Return the :class:`~ptap.cdecl.Function` type of a FuncDecl node."""
        params = []
        variadic = False
        for param in node.args.params if node.args else ():
            if isinstance(param, c_ast.EllipsisParam):
                variadic = True
            elif isinstance(param, c_ast.ID):  # An old-style `f(a, b)`: type unknown.
                params.append(Param(param.name, Basic("int")))
            else:
                params.append(Param(param.name, self.convert(param.type)))
        if len(params) == 1 and params[0].name is None and params[0].type == Basic("void"):
            params = []  # f(void)
        return Function(self.convert(node.type), tuple(params), variadic)


def _describe_error(message, text, filename):
    """Turn pycparser's error *message* into one that quotes the line at fault."""
    match = _ERROR_MESSAGE.match(message)
    if match is None:
        return _describe_end_of_input(message, text, filename)
    where, number = match["file"], int(match["line"])
    column = int(match["column"] or 0)
    problem = match["message"]
    description = f"C syntax error in {where}, line {number}"
    if column:
        description += f", column {column}"
    description += f": {problem.replace('before: ', 'before ', 1)}"
    line = _source_line(where, number, text, filename)
    if line and column:
        marker = "".join(c if c == "\t" else " " for c in line[: column - 1]) + "^"
        description += f"\n    {line}\n    {marker}"
        description += _unknown_type_hint(line, column, problem)
    elif line:
        description += f"\n    {line}"
    return description


def _describe_end_of_input(message, text, filename):
    """Describe pycparser's ``file: At end of input``, quoting the last line of *text*."""
    where, _, problem = message.rpartition(": ")
    if problem != "At end of input":
        return f"C syntax error: {message}"
    description = f"C syntax error in {where}: the text ends in the middle of a declaration"
    lines = [line for line in text.splitlines() if line.strip()] if where == filename else []
    if lines:
        description += f"\n    {lines[-1].rstrip()}"
    return description + "\n(is a ';' or a ')' missing?)"


def _source_line(where, number, text, filename):
    """Return line *number* of *where*: of *text* if it is *filename*, else of that file."""
    if where == filename:
        lines = text.splitlines()
        return lines[number - 1].rstrip() if 1 <= number <= len(lines) else ""
    return linecache.getline(where, number).rstrip()


def _unknown_type_hint(line, column, problem):
    """Name the word that may be an unknown type, for errors like ``foo_t *p``.

    pycparser reads an unknown type name as a plain identifier, and stops
    either at it or at what follows it: another identifier or a ``*``.
    """
    token = problem.removeprefix("before: ")
    after = line[column - 1 + len(token):]
    before = re.search(r"([A-Za-z_]\w*)\s*$", line[: column - 1])
    if _IDENTIFIER.fullmatch(token) and re.match(r"\s*([A-Za-z_*])", after):
        suspect = token
    elif before and (token == "*" or _IDENTIFIER.fullmatch(token)):
        suspect = before[1]
    else:
        return ""
    if suspect in _C_KEYWORDS:
        return ""
    return f"\n(is {suspect!r} a type? declare it with typedef, or include() the header that does)"
