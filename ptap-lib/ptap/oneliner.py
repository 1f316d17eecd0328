"""One-liners: the programs of ``processtap -e PROGRAM``.

::

    processtap -e 'syscall_entry(syscall_name == "openat"): print(ctx.args[1])' -- cat /etc/hostname

A program is a sequence of pieces, one per line or separated by `` ;; ``.
A piece that starts with a probe kind is a *clause*::

    KIND(PREDICATE): STATEMENT[; STATEMENT...]
    KIND: STATEMENT[; STATEMENT...]          # a kind that needs no predicate

which is a handler of that probe whose body is the statements, with
``ctx`` in scope: ``function_exit(function_name == "malloc"): print(ctx.retval)``
is::

    @function_exit(function_name == "malloc")
    def _clause_1(ctx):
        print(ctx.retval)

Any other piece is plain Python, run at the top level in its place
(imports, state the handlers share). A clause's statements are what Python
allows after a colon on one line: simple statements separated by ``;``, or
one compound statement (``if ctx.retval < 0: print(ctx.errno)``).

:func:`compile_program` compiles a program; a syntax error in it is
reported at the piece's line and column in the program, as the user wrote
it.
"""

from . import probes

__all__ = ["KINDS", "translate", "compile_program"]

#: The probe kinds a clause may start with.
KINDS = tuple(probes.PROBE_KINDS)

#: What separates pieces on one line.
SEPARATOR = " ;; "

#: The name programs go by in tracebacks and errors.
NAME = "-e"


class _Piece:
    """A piece of a program: its text, where it starts (1-based line,
    0-based column) and the whole line it is on."""

    __slots__ = ("text", "line", "column", "line_text")

    def __init__(self, text, line, column, line_text):
        self.text, self.line, self.column, self.line_text = text, line, column, line_text


def _pieces(program):
    """The pieces of *program*, split at newlines and at `` ;; `` outside
    string literals, blank ones left out."""
    pieces = []
    for number, line in enumerate(program.split("\n"), start=1):
        start = 0
        for cut in _separators(line):
            pieces.append(_Piece(line[start:cut], number, start, line))
            start = cut + len(SEPARATOR)
        pieces.append(_Piece(line[start:], number, start, line))
    return [p for p in pieces if p.text.strip()]


def _outside_strings(text, start=0):
    """The (index, character) pairs of *text* from *start* that stand
    outside string literals (quotes and backslash escapes followed)."""
    quote, i = None, start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        else:
            yield i, c
        i += 1


def _separators(line):
    """The columns where `` ;; `` stands outside quotes in *line*."""
    found, after = [], 0
    for i, _ in _outside_strings(line):
        if i >= after and line.startswith(SEPARATOR, i):
            found.append(i)
            after = i + len(SEPARATOR)
    return found


def _closing_paren(text, opening):
    """The index of the ``)`` matching the ``(`` at *opening*, outside
    string literals; None if there is none."""
    depth = 0
    for i, c in _outside_strings(text, opening):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return None


class _Clause:
    """A clause: its kind, the predicate's text (None for a bare kind) and
    column, and the body's text and column, columns in the program."""

    __slots__ = ("kind", "predicate", "predicate_column", "body", "body_column")


def _clause(piece):
    """The clause *piece* is, or None if it is plain Python. Raises
    :exc:`SyntaxError` for a clause whose head is not closed or has no
    ``:`` or no statement after it."""
    text = piece.text
    lead = len(text) - len(text.lstrip())
    name_end = lead
    while name_end < len(text) and (text[name_end].isalnum() or text[name_end] == "_"):
        name_end += 1
    kind = text[lead:name_end]
    rest = text[name_end:].lstrip()
    if kind not in KINDS or not rest or rest[0] not in "(:":
        return None
    clause = _Clause()
    clause.kind = kind
    at = text.index(rest[0], name_end)
    if rest[0] == "(":
        close = _closing_paren(text, at)
        if close is None:
            raise _error(f"{kind}( is not closed", piece, at)
        clause.predicate = text[at + 1:close]
        clause.predicate_column = piece.column + at + 1
        at = close + 1
        while at < len(text) and text[at] == " ":
            at += 1
        if at == len(text) or text[at] != ":":
            raise _error(f"expected ':' and the handler's statements after {kind}(...)", piece, at)
    else:
        clause.predicate, clause.predicate_column = None, None
    body = text[at + 1:]
    if not body.strip():
        raise _error(f"no statement after {kind}'s ':'", piece, at + 1)
    clause.body = body.strip()
    clause.body_column = piece.column + at + 1 + (len(body) - len(body.lstrip()))
    return clause


def _error(message, piece, index):
    """A SyntaxError at *index* of *piece*, located in the program."""
    return SyntaxError(message, (NAME, piece.line, piece.column + index + 1, piece.line_text))


def translate(program):
    """Return (the Python source *program* stands for, where each of its
    lines comes from: a list of (program line, column of the line's first
    character there, how many characters of the generated line precede
    it)). Raises :exc:`SyntaxError` for a malformed clause."""
    lines, origins = [], []
    clauses = 0
    for piece in _pieces(program):
        clause = _clause(piece)
        if clause is None:
            text = piece.text.strip()
            lines.append(text)
            origins.append((piece.line, piece.column + piece.text.index(text), 0))
            continue
        clauses += 1
        if clause.predicate is None:
            lines.append(f"@{clause.kind}")
            origins.append((piece.line, piece.column, 1))
        else:
            prefix = f"@{clause.kind}("
            lines.append(f"{prefix}{clause.predicate})")
            origins.append((piece.line, clause.predicate_column, len(prefix)))
        lines.append(f"def _clause_{clauses}(ctx):")
        origins.append((piece.line, piece.column, None))
        lines.append(f"    {clause.body}")
        origins.append((piece.line, clause.body_column, 4))
    return "\n".join(lines) + "\n", origins


def compile_program(program):
    """Compile *program*; return (its code, the Python source it stands
    for). A :exc:`SyntaxError` names the program's line and column."""
    source, origins = translate(program)
    try:
        return compile(source, NAME, "exec", dont_inherit=True), source
    except SyntaxError as error:
        raise _located(error, program, origins) from None


def _located(error, program, origins):
    """*error*, raised by the translation, moved to the program's line and
    column (its text the program's line)."""
    index = (error.lineno or 1) - 1
    if not 0 <= index < len(origins):
        return error
    line, column, skipped = origins[index]
    offset = (error.offset or 1) - 1
    # A decorator's or body's column maps through; the def line (which we
    # wrote) points at the clause's start.
    column = column + max(offset - skipped, 0) if skipped is not None else column
    text = program.split("\n")[line - 1]
    return SyntaxError(error.msg, (NAME, line, column + 1, text))
