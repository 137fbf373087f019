"""Error-injection operators for Python code answers (RISE), built on ``ast``.

Each operator is a pure function ``(task, completion, rng) -> Injection | None``
that plants one typical bug in a verified-correct program by editing a few
tokens of the original text in place (positions come from the ``ast``; the rest
of the text, comments and fences included, is kept byte for byte). An edit that
would not parse is never returned. When the code does not parse at all, the
first three operators fall back to careful regular expressions.

    from selfimprove.agents.code_errors import CODE_OPERATORS
    injection = CODE_OPERATORS["off_by_one"](task, solution, random.Random(0))
    injection.description  # "range(n) -> range(n + 1)"

Operators: ``off_by_one`` (range stop ±1, ``<``↔``<=``, ``>``↔``>=``, index ±1),
``flip_comparison`` (``<``↔``>``, ``==``↔``!=``, ``in``↔``not in`` ...),
``wrong_operator`` (``+``↔``-``, ``*``→``+``, ``//``→``/`` ...), ``wrong_variable``
(a name swapped for another variable in scope), ``drop_branch`` (an ``if``
statement, ``elif``, comprehension filter, ``and``/``or`` operand or conditional
expression branch removed), ``wrong_return`` (another variable or a constant is
returned) and ``wrong_constant`` (an integer literal ±1, a one-character string
the next letter).
"""

from __future__ import annotations

import ast
import random
import re

from selfimprove.agents.code_view import COMPREHENSIONS, CodeView, scoped, view_code
from selfimprove.agents.injection import Edit, Injection, Operator, splice
from selfimprove.types import Task

_TOKEN = re.compile(r"\w+|\S")

_BOUNDARY = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_FLIPPED = {
    ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip
_COMPARE = {
    ast.Lt: ("<", r"<"), ast.LtE: ("<=", r"<="), ast.Gt: (">", r">"), ast.GtE: (">=", r">="),
    ast.Eq: ("==", r"=="), ast.NotEq: ("!=", r"!="), ast.In: ("in", r"\bin\b"),
    ast.NotIn: ("not in", r"\bnot\s+in\b"), ast.Is: ("is", r"\bis\b"),
    ast.IsNot: ("is not", r"\bis\s+not\b"),
}  # fmt: skip
_ARITHMETIC = {
    ast.Add: ("+", r"\+"), ast.Sub: ("-", r"-"), ast.Mult: ("*", r"(?<!\*)\*(?!\*)"),
    ast.Div: ("/", r"(?<!/)/(?!/)"), ast.FloorDiv: ("//", r"//"), ast.Mod: ("%", r"%"),
    ast.Pow: ("**", r"\*\*"),
}  # fmt: skip
_WRONG_OP = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
}  # fmt: skip

Site = tuple[list[Edit], str]  # the edits and their description


def _pick(
    code: CodeView, sites: list[Site], rng: random.Random, name: str, max_tokens: int = 8
) -> Injection | None:
    """Apply one randomly chosen site that touches at most ``max_tokens`` and still parses."""
    rng.shuffle(sites)
    for edits, description in sites:
        touched = sum(_tokens(code.text[start:end]) + _tokens(new) for start, end, new in edits)
        text = code.parses_after(edits) if touched <= max_tokens else None
        if text is not None and text != code.text:
            return Injection(text=text, operator=name, description=description)
    return None


def _op_span(code: CodeView, left: ast.AST, right: ast.AST, pattern: str) -> tuple[int, int] | None:
    """Where an operator token sits between two operands."""
    lo, hi = code.span(left)[1], code.span(right)[0]
    found = re.search(pattern, code.text[lo:hi])
    return (lo + found.start(), lo + found.end()) if found else None


def _compare_sites(code: CodeView, mapping: dict[type, type]) -> list[Site]:
    sites: list[Site] = []
    for node in code.nodes():
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            new = mapping.get(type(op))
            span = new and _op_span(code, operands[i], operands[i + 1], _COMPARE[type(op)][1])
            if span:
                old_sym, new_sym = _COMPARE[type(op)][0], _COMPARE[new][0]
                sites.append(([(*span, new_sym)], f"comparison {old_sym} -> {new_sym}"))
    return sites


def _range_sites(code: CodeView) -> list[Site]:
    sites: list[Site] = []
    for node in code.nodes():
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "range"
            and 1 <= len(node.args) <= 3
        ):
            continue
        stop = node.args[0] if len(node.args) == 1 else node.args[1]
        src, span = code.source(stop), code.span(stop)
        is_one = isinstance(stop, ast.BinOp) and _is_int(stop.right, 1)
        if is_one and isinstance(stop.op, (ast.Add, ast.Sub)):
            options = [code.source(stop.left)]  # range(n + 1) -> range(n)
        else:
            simple = isinstance(stop, (ast.Name, ast.Constant, ast.Call, ast.Attribute))
            inner = src if simple else f"({src})"
            options = [f"{inner} + 1", f"{inner} - 1"]
        sites += [([(*span, new)], f"range stop {src} -> {new}") for new in options]
    return sites


def _index_sites(code: CodeView) -> list[Site]:
    sites: list[Site] = []
    for node in code.nodes():
        if isinstance(node, ast.Subscript):
            for inner in ast.walk(node.slice):
                if _is_int(inner):
                    for new in {inner.value + 1, max(0, inner.value - 1)} - {inner.value}:
                        edit = (*code.span(inner), str(new))
                        sites.append(([edit], f"index {inner.value} -> {new}"))
    return sites


def off_by_one(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """A boundary moves by one: range stop ±1, ``<``↔``<=``, ``>``↔``>=``, an index ±1."""
    code = view_code(completion)
    if code is None:
        return _regex_fallback(completion, rng, "off_by_one", _RE_BOUNDARY)
    sites = _range_sites(code) + _compare_sites(code, _BOUNDARY) + _index_sites(code)
    return _pick(code, sites, rng, "off_by_one")


def flip_comparison(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """A comparison points the other way: ``<``↔``>``, ``==``↔``!=``, ``in``↔``not in``."""
    code = view_code(completion)
    if code is None:
        return _regex_fallback(completion, rng, "flip_comparison", _RE_FLIP)
    return _pick(code, _compare_sites(code, _FLIPPED), rng, "flip_comparison")


def wrong_operator(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """An arithmetic operator is swapped: ``+``↔``-``, ``*``→``+``, ``//``→``/``, ``%``→``//``."""
    code = view_code(completion)
    if code is None:
        return _regex_fallback(completion, rng, "wrong_operator", _RE_ARITHMETIC)
    sites: list[Site] = []
    for node in code.nodes():
        if isinstance(node, ast.BinOp) and type(node.op) in _WRONG_OP:
            left, right, pattern = node.left, node.right, _ARITHMETIC[type(node.op)][1]
        elif isinstance(node, ast.AugAssign) and type(node.op) in _WRONG_OP:
            left, right, pattern = node.target, node.value, _ARITHMETIC[type(node.op)][1] + "="
        else:
            continue
        old, new = _ARITHMETIC[type(node.op)][0], _ARITHMETIC[_WRONG_OP[type(node.op)]][0]
        span = _op_span(code, left, right, pattern)
        if span:
            suffix = "=" if isinstance(node, ast.AugAssign) else ""
            sites.append(([(*span, new + suffix)], f"operator {old}{suffix} -> {new}{suffix}"))
    return _pick(code, sites, rng, "wrong_operator")


def wrong_variable(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """One use of a variable reads another variable that is in scope there."""
    code = view_code(completion)
    if code is None:
        return None
    names, _ = scoped(code)
    sites = [
        ([(*code.span(node), other)], f"variable {node.id} -> {other}")
        for node, visible in names
        for other in sorted(visible - {node.id})
    ]
    return _pick(code, sites, rng, "wrong_variable")


def drop_branch(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """A case is forgotten: an ``if`` statement, ``elif``, filter, condition operand or branch."""
    code = view_code(completion)
    if code is None:
        return None
    sites: list[Site] = []
    for node in code.nodes():
        if isinstance(node, COMPREHENSIONS):
            for gen in node.generators:
                for before, cond in zip([gen.iter, *gen.ifs], gen.ifs, strict=False):
                    edit = (code.span(before)[1], code.span(cond)[1], "")
                    sites.append(([edit], f"dropped filter `if {code.source(cond)}`"))
        elif isinstance(node, ast.BoolOp):
            for i, value in enumerate(node.values):
                lo = code.span(node.values[i - 1])[1] if i else code.span(value)[0]
                hi = code.span(value)[1] if i else code.span(node.values[1])[0]
                sites.append(([(lo, hi, "")], f"dropped condition `{code.source(value)}`"))
        elif isinstance(node, ast.IfExp):
            for kept in (node.body, node.orelse):
                sites.append(
                    ([(*code.span(node), code.source(kept))], "dropped conditional branch")
                )
        elif isinstance(node, ast.If):
            sites += _if_sites(code, node)
    return _pick(code, sites, rng, "drop_branch", max_tokens=24)


def _if_sites(code: CodeView, node: ast.If) -> list[Site]:
    """Delete a whole ``if`` statement (without else) or one ``elif`` clause, by lines."""
    sites: list[Site] = []
    if _line_starts(code, node.lineno, "if") and not node.orelse:
        span = code.lines_span(node.lineno, node.end_lineno)
        sites.append(([(*span, "")], f"dropped `if {code.source(node.test)}` branch"))
    if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
        elif_ = node.orelse[0]
        if _line_starts(code, elif_.lineno, "elif"):
            span = code.lines_span(elif_.lineno, elif_.body[-1].end_lineno)
            sites.append(([(*span, "")], f"dropped `elif {code.source(elif_.test)}` branch"))
    return sites


def _line_starts(code: CodeView, lineno: int, keyword: str) -> bool:
    start, end = code.lines_span(lineno, lineno)
    return re.match(rf"\s*{keyword}\b", code.text[start:end]) is not None


def wrong_return(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """A ``return`` gives another variable in scope, or a plausible constant."""
    code = view_code(completion)
    if code is None:
        return None
    _, returns = scoped(code)
    sites: list[Site] = []
    for node, visible in returns:
        used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
        src = code.source(node.value)
        for new in [*sorted(visible - used), _neutral(node.value)]:
            if new != src:
                sites.append(([(*code.span(node.value), new)], f"return {src} -> return {new}"))
    return _pick(code, sites, rng, "wrong_return")


def wrong_constant(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """An integer literal outside indexing is off by one, or a one-letter string is the next letter."""
    code = view_code(completion)
    if code is None:
        return None
    indexed = {
        id(inner)
        for node in code.nodes()
        if isinstance(node, ast.Subscript)
        for inner in ast.walk(node.slice)
    }
    sites: list[Site] = []
    for node in code.nodes():
        if _is_int(node) and id(node) not in indexed:
            for new in {node.value + 1, max(0, node.value - 1)} - {node.value}:
                sites.append(([(*code.span(node), str(new))], f"constant {node.value} -> {new}"))
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) == 1
        ):
            new = _next_char(node.value)
            sites.append(([(*code.span(node), repr(new))], f"constant {node.value!r} -> {new!r}"))
    return _pick(code, sites, rng, "wrong_constant")


def _next_char(char: str) -> str:
    """The next letter or digit, wrapping (z -> a); other characters become '_' (or '.')."""
    for alphabet in ("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"):
        if char in alphabet:
            return alphabet[(alphabet.index(char) + 1) % len(alphabet)]
    return "." if char == "_" else "_"


CODE_OPERATORS: dict[str, Operator] = {
    "off_by_one": off_by_one,
    "flip_comparison": flip_comparison,
    "wrong_operator": wrong_operator,
    "wrong_variable": wrong_variable,
    "drop_branch": drop_branch,
    "wrong_return": wrong_return,
    "wrong_constant": wrong_constant,
}


def _neutral(value: ast.expr) -> str:
    """A constant of the same shape as a return value: [] for lists, '' for strings, else 0."""
    if isinstance(value, (ast.List, ast.ListComp)):
        return "[]"
    if isinstance(value, ast.JoinedStr) or (
        isinstance(value, ast.Constant) and isinstance(value.value, str)
    ):
        return "''"
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "str":
        return "''"
    if isinstance(value, ast.Compare | ast.BoolOp):
        return "False"
    return "0"


def _tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _is_int(node: ast.AST, value: int | None = None) -> bool:
    return (
        isinstance(node, ast.Constant)
        and type(node.value) is int
        and (value is None or node.value == value)
    )


# --- fallback for code that does not parse -----------------------------------------------

_RE_BOUNDARY = (
    re.compile(r"(?<![<>=!])(<=|>=|<|>)(?![<>=])"),
    {"<": "<=", "<=": "<", ">": ">=", ">=": ">"},
)
_RE_FLIP = (
    re.compile(r"(?<![<>=!])(<=|>=|==|!=|<|>)(?![<>=])"),
    {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "!=", "!=": "=="},
)
_RE_ARITHMETIC = (re.compile(r"(?<=\s)([-+*])(?=\s)"), {"+": "-", "-": "+", "*": "+"})


def _regex_fallback(
    completion: str, rng: random.Random, name: str, rule: tuple[re.Pattern[str], dict[str, str]]
) -> Injection | None:
    """Swap one operator token found by a regular expression (code that does not parse)."""
    pattern, mapping = rule
    found = list(pattern.finditer(completion))
    if not found:
        return None
    match = rng.choice(found)
    old = match.group(1)
    new = mapping[old]
    text = splice(completion, [(match.start(1), match.end(1), new)])
    return Injection(text=text, operator=name, description=f"{old} -> {new} (text edit)")
