"""A parsed view of the Python code inside a model's reply, for editing it in place.

``view_code(completion)`` finds the code (the first fenced block that parses, else
the whole text, else the text from its first ``def`` line on; an indented function
body without its header parses too) and
returns a ``CodeView`` that maps ``ast`` positions to offsets in the original
text, so an edit replaces exactly the tokens of one node and keeps everything
else (comments, fences, prose) byte for byte. ``scoped`` lists variable reads and
returns with the variables visible at each.

    code = view_code("```python\ndef f(xs):\n    return [x for x in xs]\n```")
    start, end = code.span(node)            # where an ast node sits in the text
    code.parses_after([(start, end, "0")])  # the edited text, or None if it breaks
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

from selfimprove.agents.injection import Edit, splice

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_START = re.compile(r"^(?:async\s+def|def|class|import|from)\b", re.MULTILINE)
_WRAPPER = "def __injected__():\n"  # lets an indented function body (HumanEval style) parse
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, *COMPREHENSIONS)

Visible = frozenset[str]  # variable names in scope at a point of the code


@dataclass(frozen=True)
class CodeView:
    """The code inside a completion, parsed, with a map from ast positions to text offsets."""

    text: str
    start: int  # where the code begins in ``text``
    code: str
    tree: ast.Module
    wrapped: bool

    def offset(self, lineno: int, col: int) -> int:
        """Text offset of an ast position (``col`` counts UTF-8 bytes)."""
        line_no = lineno - 1 - self.wrapped
        lines = self.code.splitlines(keepends=True)
        before = sum(len(line) for line in lines[:line_no])
        prefix = lines[line_no].encode("utf-8")[:col].decode("utf-8", errors="ignore")
        return self.start + before + len(prefix)

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),
            self.offset(node.end_lineno, node.end_col_offset),
        )

    def source(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]

    def lines_span(self, first: int, last: int) -> tuple[int, int]:
        """Text span of whole source lines ``first..last`` (ast numbering), newline included."""
        lines = self.code.splitlines(keepends=True)
        lo, hi = first - 1 - self.wrapped, last - self.wrapped
        return self.start + sum(map(len, lines[:lo])), self.start + sum(map(len, lines[:hi]))

    def nodes(self) -> Iterator[ast.AST]:
        """Every node of the code itself (not the wrapper line)."""
        for node in ast.walk(self.tree):
            if getattr(node, "lineno", 0) > self.wrapped:
                yield node

    def parses_after(self, edits: list[Edit]) -> str | None:
        """The completion with ``edits`` applied, or None if its code no longer parses."""
        text = splice(self.text, edits)
        end = self.start + len(self.code) + len(text) - len(self.text)
        return text if parse_code(text[self.start : end], self.wrapped) is not None else None


def parse_code(code: str, wrapped: bool = False) -> ast.Module | None:
    """The module ``code`` parses to (inside a wrapper function if ``wrapped``), or None."""
    try:
        return ast.parse(_WRAPPER + code if wrapped else code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def view_code(completion: str) -> CodeView | None:
    """The Python code in a reply, parsed, or None when no part of it parses.

    Tried in order: each fenced block, the whole text, and the text from its first
    ``def``/``class``/``import`` line on (prose first, then unfenced code).
    """
    regions = [(m.start(1), m.group(1)) for m in _FENCE.finditer(completion)]
    regions.append((0, completion))
    found = _CODE_START.search(completion)
    if found is not None and found.start():
        regions.append((found.start(), completion[found.start() :]))
    for start, code in regions:
        if not code.strip():
            continue
        for wrapped in (False, True):
            tree = parse_code(code, wrapped)
            if tree is not None:
                return CodeView(completion, start, code, tree, wrapped)
    return None


def scoped(
    code: CodeView,
) -> tuple[list[tuple[ast.Name, Visible]], list[tuple[ast.Return, Visible]]]:
    """Variable reads and returns inside functions, each with the variables visible there."""
    called = {id(n.func) for n in code.nodes() if isinstance(n, ast.Call)}
    names: list[tuple[ast.Name, Visible]] = []
    returns: list[tuple[ast.Return, Visible]] = []

    def visit(node: ast.AST, visible: Visible) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            local = {a.arg for a in params if a is not None} | _assigned(node.body)
            for child in node.body:
                visit(child, frozenset(local))
            return
        if isinstance(node, COMPREHENSIONS):
            targets = {
                n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)
            }
            inner = visible | targets
            visit(node.generators[0].iter, visible)  # evaluated outside the comprehension
            for i, gen in enumerate(node.generators):
                for part in ([gen.iter] if i else []) + gen.ifs:
                    visit(part, inner)
            for part in (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,):
                visit(part, inner)
            return
        if isinstance(node, ast.Return) and node.value is not None and visible:
            returns.append((node, visible))
        if (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id in visible
            and id(node) not in called
            and node.lineno > code.wrapped
        ):
            names.append((node, visible))
        for child in ast.iter_child_nodes(node):
            visit(child, visible)

    visit(code.tree, frozenset())
    return names, returns


def _assigned(body: list[ast.stmt]) -> set[str]:
    """Names a function body assigns, not counting nested scopes."""
    out: set[str] = set()
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        if not isinstance(node, _SCOPES):
            stack.extend(ast.iter_child_nodes(node))
    return out
