"""Reading the live source: a piece of a topic ("module:object") resolved to its object and cut
into logical lines (a statement spanning several physical lines stays one unit), with where
comments sit, where code may continue on the next line, and which lines are docstrings.
"""

import dataclasses
import functools
import importlib
import inspect
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

# Where a line of code may continue on the next, best first: after a comma, after an opening
# bracket, before an operator or keyword, before any other token (a dot included). Never inside a token,
# so a name or a string is never cut.
AFTER_COMMA, AFTER_BRACKET, BEFORE_OPERATOR, BEFORE_TOKEN = range(4)
OPERATORS = {"+", "-", "*", "/", "//", "%", "@", "**", "=", "==", "!=", "<", ">", "<=", ">=", "->", "|", "&",
             "and", "or", "if", "else", "for", "in", "not", "is", "lambda"}


@dataclasses.dataclass(frozen=True)
class Break:
    column: int  # the code before it stays on this line, the rest goes to the next
    kind: int  # AFTER_COMMA ... BEFORE_TOKEN
    backslash: bool  # outside any bracket: the line needs a backslash to go on
    depth: int = 0  # how many brackets are open there: a formatter breaks at the outermost comma first


@dataclasses.dataclass
class Line:
    """One logical line of source: a statement, a comment, a blank, kept whole across lines."""

    physical: list[str]  # the file's lines, indentation kept
    path: str  # shown relative to the repository (or to site-packages for a library)
    lineno: int  # of the first physical line
    comment_at: list[int | None]  # per physical line: column of a comment after code
    breaks: list[list[Break]]  # per physical line: where its code may continue on the next line
    prose: list[bool]  # per physical line: inside a triple-quoted string

    @functools.cached_property
    def key(self) -> str:
        return " ".join(" ".join(self.physical).split())

    @functools.cached_property
    def comment(self) -> str:
        found = [p[c:] for p, c in zip(self.physical, self.comment_at) if c is not None]
        return " ".join(found[-1].split()) if found else ""

    @functools.cached_property
    def target(self) -> str:
        """What the line is about: the name it assigns, or the kind of statement."""
        key = self.key
        for start, kind in (("#", "#"), ("@", "@"), ("def ", "def"), ("class ", "def"), ('"""', "doc"),
                            ("'''", "doc"), ("return", "return")):
            if key.startswith(start):
                return kind
        m = re.match(r"([A-Za-z_][\w\s,.\[\]]*?)\s*(?:[-+*/@]?=(?!=)|:\s)", key)
        if m:
            return m.group(1).replace(" ", "")
        word = re.match(r"\w+", key)
        return word.group(0) if word else ""

    @functools.cached_property
    def words(self) -> list[str]:
        code = self.key[: self.key.index("#")] if "#" in self.key and self.comment else self.key
        return re.findall(r"\w+|[^\w\s]", code)


def display_path(filename: str) -> str:
    path = Path(filename).resolve()
    if "site-packages" in path.parts:
        return "/".join(path.parts[path.parts.index("site-packages") + 1:])
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def resolve(ref: str, impl: str | None = None):
    """'model:GPT' (in `impl`'s package) or 'common.sampling:sample_tokens' -> the live object;
    of 'a | b', the first that exists."""
    if " | " in ref:
        first, rest = ref.split(" | ", 1)
        try:
            return resolve(first, impl)
        except (ImportError, AttributeError):
            return resolve(rest, impl)
    module, name = ref.split(":")
    if impl and "." not in module:
        module = f"{impl}.{module}"
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def scan(physical: list[str]):
    """Tokenise `physical`, returning (comment columns, breaks, docstring flags, ends of logical
    lines). Code that does not tokenise to the end (a fragment of a statement) keeps what was
    found before the error."""
    n = len(physical)
    comment_at: list[int | None] = [None] * n
    breaks: list[list[Break]] = [[] for _ in range(n)]
    prose = [False] * n
    ends, depth, fstring = [], 0, 0
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    layout = (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    try:
        for tok in tokenize.generate_tokens(io.StringIO("\n".join(physical) + "\n").readline):
            (r0, c0), (r1, c1) = tok.start, tok.end
            if tok.type not in layout and not fstring and physical[r0 - 1][:c0].strip():  # a token after another
                kind = BEFORE_OPERATOR if tok.string in OPERATORS else BEFORE_TOKEN
                if tok.string not in ")]}:,([" or tok.string in "([" and physical[r0 - 1][c0 - 1] == " ":
                    breaks[r0 - 1].append(Break(c0, kind, depth == 0))
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
                if not fstring:
                    breaks[r0 - 1].append(Break(c1, AFTER_BRACKET, False))
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
            elif tok.type == tokenize.OP and tok.string == "," and not fstring:
                breaks[r0 - 1].append(Break(c1, AFTER_COMMA, depth == 0, depth))
            elif tok.type == tokenize.COMMENT and physical[r0 - 1][:c0].strip():
                comment_at[r0 - 1] = c0
            elif tok.type == tokenize.STRING and tok.string.lstrip("rbuRBUfF")[:3] in ('"""', "'''"):
                for r in range(r0, r1 + 1):
                    prose[r - 1] = True
            elif tok.type == fstring_start:
                fstring += 1
            elif tok.type == fstring_end:
                fstring -= 1
            if tok.type == tokenize.NEWLINE or (tok.type == tokenize.NL and depth == 0):
                ends.append(r0)
    except (tokenize.TokenError, SyntaxError):
        pass
    return comment_at, breaks, prose, ends


def logical_lines(physical: list[str], path: str, first: int) -> list[Line]:
    """Cut source into logical lines, noting comments, places to continue a line, and strings."""
    physical = [p.rstrip("\n") for p in physical]
    n = len(physical)
    comment_at, breaks, prose, ends = scan(physical)
    lines, start = [], 1
    for end in ends + ([n] if not ends or ends[-1] < n else []):
        if end < start:
            continue
        s = slice(start - 1, end)
        lines.append(Line(physical[s], path, first + start - 1, comment_at[s], breaks[s], prose[s]))
        start = end + 1
    return lines


def code_line(text: str, path: str = "", lineno: int = 0) -> Line:
    """One line of code quoted on its own (a note's library line), as a Line that can be wrapped."""
    comment_at, breaks, prose, _ = scan([text])
    return Line([text], path, lineno, comment_at, breaks, prose)


def missing(impl: str, ref: str) -> list[Line]:
    return [Line([f"# {impl} has no {ref} (yet)"], impl, 0, [None], [[]], [False])]


def piece_lines(impl: str | None, spec: str) -> list[Line]:
    """The logical lines of one piece ('a + b' joins a and b with a blank line between)."""
    lines: list[Line] = []
    for ref in spec.split(" + "):
        try:
            obj = resolve(ref, impl)
        except (ImportError, AttributeError):
            lines += missing(impl or "", ref)
            continue
        physical, first = inspect.getsourcelines(obj)
        if lines:
            lines.append(Line([""], lines[-1].path, 0, [None], [[]], [False]))
        lines += logical_lines(physical, display_path(inspect.getsourcefile(obj)), first)
    return lines


def piece_title(impl: str | None, spec: str) -> str:
    """'flax_port/model.py:88 GPT + forward'."""
    refs = spec.split(" + ")
    try:
        obj = resolve(refs[0], impl)
        where = f"{display_path(inspect.getsourcefile(obj))}:{inspect.getsourcelines(obj)[1]}"
    except (ImportError, AttributeError):
        where = f"{impl}/{refs[0].split(':')[0].replace('.', '/')}.py"
    names = []
    for ref in refs:
        try:
            names.append(resolve(ref, impl).__qualname__)
        except (ImportError, AttributeError):
            names.append(ref.split(" | ")[0].split(":")[1])
    return f"{where} {' + '.join(names)}"

