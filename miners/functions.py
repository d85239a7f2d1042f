"""Cutting Elixir and Erlang source into functions with tree-sitter (pure).

A function unit is every clause of one name/arity in one module, kept together: Elixir
clauses with the same name and arity even with @doc/@spec between them, Erlang clauses
joined by `;`. ExUnit `test "…"` blocks are units too, since flaky-test fixes live there.
Source the grammar cannot parse is reported as such and yields no units.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import cache

from tree_sitter import Node, Parser, Point, Tree
from tree_sitter_language_pack import get_parser

from miners.forms import Forms
from miners.records import Function, FunctionPair, ParseStatus
from miners.windows import Outline, Window, plan_windows

_ELIXIR_DEFS = {"def", "defp", "defmacro", "defmacrop", "defguard", "defguardp",
                "defdelegate", "defn", "defnp"}
_ELIXIR_MODULES = {"defmodule", "defprotocol", "defimpl"}
_ELIXIR_TESTS = {"test"}
_ELIXIR_GROUPS = {"describe"}


@cache
def _parser(language: str) -> Parser:
    # The grammars ship inside the tree-sitter-language-pack wheel (pinned): no download.
    return get_parser(language)  # type: ignore[arg-type]


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None and node.text else ""


def _named(node: Node) -> list[Node]:
    return [c for c in node.named_children if c.type != "comment"]


def _call_name(node: Node) -> str | None:
    target = node.child_by_field_name("target")
    if target is None and node.children:
        target = node.children[0]
    return _text(target) if target is not None and target.type == "identifier" else None


def _arguments(node: Node) -> Node | None:
    for child in node.children:
        if child.type == "arguments":
            return child
    return None


def _do_block(node: Node) -> Node | None:
    for child in node.children:
        if child.type == "do_block":
            return child
    return None


def _elixir_head(head: Node) -> tuple[str, int] | None:
    """name and arity of a definition head: f(a, b), f, f(a) when guard, a + b."""
    if head.type == "binary_operator":
        operator = head.child_by_field_name("operator")
        left = head.child_by_field_name("left")
        if _text(operator) == "when" and left is not None:
            return _elixir_head(left)
        return (_text(operator), 2) if operator is not None else None
    if head.type == "identifier":
        return _text(head), 0
    if head.type == "call":
        name = _call_name(head)
        args = _arguments(head)
        if name is None:  # unquote(name)(...) and other generated heads
            return _text(head.children[0]) if head.children else None, len(_named(args)) \
                if args is not None else 0
        return name, len(_named(args)) if args is not None else 0
    if head.type == "unary_operator":
        operator = head.child_by_field_name("operator")
        return (_text(operator), 1) if operator is not None else None
    return None


def _module_name(call: Node, keyword: str, outer: str) -> str:
    args = _arguments(call)
    names = [_text(a) for a in _named(args)] if args is not None else []
    first = names[0] if names else "?"
    if keyword == "defimpl":
        target = next((a for a in _named(args) if a.type == "keywords"), None) \
            if args is not None else None
        implemented = _text(target).split(":", 1)[-1].strip() if target is not None else ""
        first = f"{first}.{implemented}" if implemented else first
    return f"{outer}.{first}" if outer else first


# A definition found in a tree: module, name/arity, kind, its first and last lines
# (1-based) and its start and end bytes.
_Raw = tuple[str, str, str, int, int, int, int]


def _elixir_units(node: Node, module: str, group: str, out: list[_Raw]) -> None:
    for child in _named(node):
        if child.type == "call":
            keyword = _call_name(child)
            if keyword in _ELIXIR_MODULES:
                block = _do_block(child)
                if block is not None:
                    _elixir_units(block, _module_name(child, keyword, module), "", out)
                continue
            if keyword in _ELIXIR_DEFS:
                if child.has_error:
                    continue
                args = _arguments(child)
                heads = _named(args) if args is not None else []
                found = _elixir_head(heads[0]) if heads else None
                if found and found[0]:
                    out.append((module, f"{found[0]}/{found[1]}", keyword, *_place(child)))
                continue
            if keyword in _ELIXIR_TESTS or keyword in _ELIXIR_GROUPS:
                args = _arguments(child)
                title = next((a for a in _named(args) if a.type == "string"), None) \
                    if args is not None else None
                if keyword in _ELIXIR_GROUPS:
                    block = _do_block(child)
                    if block is not None:
                        _elixir_units(block, module, _text(title).strip('"') + " ", out)
                    continue
                if title is not None and not child.has_error:
                    out.append((module, f'test "{group}{_text(title).strip(chr(34))}"', "test",
                                *_place(child)))
                continue
            if keyword not in ("quote", "defmacro"):  # for/if/unless around definitions
                block = _do_block(child)
                if block is not None:
                    _elixir_units(block, module, group, out)
                continue
        if child.type in ("do_block", "block"):
            _elixir_units(child, module, group, out)


def _place(node: Node) -> tuple[int, int, int, int]:
    return node.start_point.row + 1, node.end_point.row + 1, node.start_byte, node.end_byte


def _clause_name(clause: Node) -> Node | None:
    return clause.child_by_field_name("name") or next(
        (a for a in _named(clause) if a.type == "atom"), None)


def _erlang_clause_name(fun_decl: Node) -> bytes | None:
    """The name of a fun_decl's first clause, as written."""
    clause = next((c for c in _named(fun_decl) if c.type == "function_clause"), None)
    name = _clause_name(clause) if clause is not None else None
    return name.text if name is not None else None


def _erlang_units(root: Node, out: list[_Raw]) -> None:
    module = ""
    for child in _named(root):
        if child.type == "module_attribute":
            atom = next((a for a in _named(child) if a.type == "atom"), None)
            module = _text(atom)
        elif child.type == "fun_decl" and not child.has_error:
            for clause in _named(child):
                if clause.type != "function_clause":
                    continue
                name = _clause_name(clause)
                args = clause.child_by_field_name("args") or next(
                    (a for a in _named(clause) if a.type == "expr_args"), None)
                arity = len(_named(args)) if args is not None else 0
                out.append((module, f"{_text(name)}/{arity}", "function", *_place(child)))


def _common_prefix(a: bytes, b: bytes) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # binary search over C-speed slice comparisons
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:] == b[len(b) - mid:]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _point(data: bytes, offset: int) -> Point:
    return Point(data.count(b"\n", 0, offset), offset - (data.rfind(b"\n", 0, offset) + 1))


def _parse(data: bytes, language: str, previous: tuple[bytes, Tree] | None) -> Tree:
    """Parse data; given the previous version's text and tree, reparse only what changed."""
    parser = _parser(language)
    if previous is None:
        return parser.parse(data)
    old, tree = previous
    start = _common_prefix(old, data)
    tail = _common_suffix(old, data, min(len(old), len(data)) - start)
    old_end, new_end = len(old) - tail, len(data) - tail
    tree = tree.copy()
    tree.edit(start_byte=start, old_end_byte=old_end, new_end_byte=new_end,
              start_point=_point(old, start), old_end_point=_point(old, old_end),
              new_end_point=_point(data, new_end))
    return parser.parse(data, tree)


def _error_lines(root: Node) -> list[int]:
    """1-based lines of error and missing nodes, visiting only subtrees that hold one."""
    lines, stack = [], [root]
    while stack:
        node = stack.pop()
        if node.is_missing:  # a missing `end` makes its whole enclosing block suspect
            anchor = node.parent or node
            lines.append(anchor.start_point.row + 1)
            continue
        if node.is_error:
            lines.append(node.start_point.row + 1)
            continue
        stack.extend(c for c in node.children if c.has_error or c.is_missing)
    return lines


def _units(tree: Tree, language: str, data: bytes) -> tuple[ParseStatus, list[Function]]:
    raw: list[_Raw] = []
    if language == "elixir":
        _elixir_units(tree.root_node, "", "", raw)
    else:
        _erlang_units(tree.root_node, raw)
    status = ParseStatus.PARSED
    if tree.root_node.has_error:
        # Recovery can stretch a unit over its neighbours without flagging it (a missing
        # `end` lands after the unit it swallowed), so only units that end before the
        # first error are trusted.
        first_error = min(_error_lines(tree.root_node), default=0)
        raw = [u for u in raw if u[4] < first_error]
        status = ParseStatus.PARTIAL if raw else ParseStatus.SYNTAX_ERROR
    return status, _merge(raw, data)


def parse_functions(source: str, language: str) -> tuple[ParseStatus, list[Function]]:
    """The function units of source, clauses of one name/arity merged, in source order."""
    data = source.encode("utf-8")
    return _units(_parse(data, language, None), language, data)


def leaf_tokens(source: str, language: str) -> list[bytes]:
    """The text of every leaf of the parse tree but comments, in order: the code's tokens
    with whitespace and comments gone (string contents are leaves, so kept)."""
    tree = _parse(source.encode("utf-8"), language, None)
    tokens: list[bytes] = []
    cursor = tree.walk()
    while True:
        node = cursor.node
        if node is not None and node.type == "comment":
            pass
        elif node is not None and node.child_count == 0:
            if node.text and (text := node.text.strip()):
                tokens.append(text)  # a keyword leaf (`do: `) holds its trailing space
        elif cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return tokens


def _merge(raw: list[_Raw], data: bytes) -> list[Function]:
    """One Function per (module, name): the lines from its first to its last clause."""
    merged: dict[tuple[str, str], tuple[str, int, int, int, int]] = {}
    for module, name, kind, start, end, first, last in raw:
        if (seen := merged.get((module, name))) is not None:
            kind, start, end = seen[0], min(seen[1], start), max(seen[2], end)
            first, last = min(seen[3], first), max(seen[4], last)
        merged[(module, name)] = (kind, start, end, first, last)
    return [Function(module, name, kind, start, end, _whole_lines(data, first, last))
            for (module, name), (kind, start, end, first, last) in merged.items()]


def _whole_lines(data: bytes, start: int, end: int) -> str:
    """The text of the lines holding bytes start to end, without the last line's newline."""
    stop = data.find(b"\n", end)
    return data[data.rfind(b"\n", 0, start) + 1:stop if stop >= 0 else len(data)
                ].decode("utf-8")


Sides = tuple[list[ParseStatus], list[dict[tuple[str, str], Function]]]


def _whole_sides(before: str | None, after: str | None, language: str) -> Sides:
    """Units of both versions, each parsed whole (the second reusing the first's tree)."""
    statuses: list[ParseStatus] = []
    sides: list[dict[tuple[str, str], Function]] = []
    previous: tuple[bytes, Tree] | None = None
    for text in (before, after):
        if text is None:
            statuses.append(ParseStatus.PARSED)
            sides.append({})
            continue
        data = text.encode("utf-8")
        tree = _parse(data, language, previous)
        previous = (data, tree)
        side_status, functions = _units(tree, language, data)
        statuses.append(side_status)
        sides.append({(f.module, f.name): f for f in functions})
    return statuses, sides


def _windowed_sides(before: str, after: str, language: str, diff: str) -> Sides | None:
    """Units of both versions from only the lines the change can reach, or None when the
    file has no such window or a window does not parse cleanly."""
    data = (before.encode("utf-8"), after.encode("utf-8"))
    windows = plan_windows(data[0], data[1], diff, Forms if language == "erlang" else Outline)
    if windows is None:
        return None
    sides = []
    for source, window in zip(data, windows, strict=True):
        if not window.ranges:  # no ranges would mean the whole text to tree-sitter
            sides.append({})
            continue
        tree = _parse_window(source, language, window)
        if not _sound(tree, window):
            return None
        _, functions = _units(tree, language, source)
        sides.append({(f.module, f.name): f for f in functions})
    return [ParseStatus.PARSED, ParseStatus.PARSED], sides


def _sound(tree: Tree, window: Window) -> bool:
    """Whether the windowed parse has the shape the outline assumed: no error; each module
    parsed in part is one node from its opening to its closing line; every other node at
    the top and in those modules is an expression inside one range. (A stray `end`, `do` or
    `after` in the text would otherwise join or split items unseen.)"""
    root = tree.root_node
    if root.has_error:
        return False
    starts = [r.start_byte for r in window.ranges]

    def inside_one_range(node: Node) -> bool:
        i = bisect_right(starts, node.start_byte) - 1
        return i >= 0 and node.end_byte <= window.ranges[i].end_byte

    modules = set(window.modules)
    nodes = []
    for child in root.named_children:
        if (child.start_point.row, child.end_point.row) in modules:
            modules.discard((child.start_point.row, child.end_point.row))
            block = _do_block(child)
            nodes += block.named_children if block is not None else []
        else:
            nodes.append(child)
    # A stray `after`/`else`/`rescue` in a module body opens a clause of the module's own
    # do-block that would run on over the items left out.
    if modules or not all(inside_one_range(n) and not n.type.endswith("_block")
                          for n in nodes):
        return False
    # An Erlang clause the outline did not see (read out of code it took for something
    # else) may belong to a function whose other clauses are outside the window.
    heads = window.heads
    return heads is None or all(
        heads.get(n.start_point.row) == _erlang_clause_name(n) for n in nodes
        if n.type == "fun_decl")


def _parse_window(data: bytes, language: str, window: Window) -> Tree:
    parser = _parser(language)
    parser.included_ranges = window.ranges
    try:
        return parser.parse(data)
    finally:
        parser.included_ranges = []


def build_function_pairs(before: str | None, after: str | None, language: str,
                         diff: str | None = None) -> tuple[ParseStatus, list[FunctionPair]]:
    """Functions added, removed or changed between two versions of one file.

    Given the file's diff, a long file is parsed only where the change can reach
    (miners.windows for Elixir, miners.forms for Erlang). Where both versions parse whole,
    the answer is the same as from parsing them whole; where the grammar fails outside the
    window, the window's units are still found (and the status, which describes what was
    parsed, says parsed).
    Where a version parsed only partly, a unit missing from it is not reported as added or
    removed: the grammar, not the commit, may have lost it.
    """
    found = None
    if before is not None and after is not None and diff:
        found = _windowed_sides(before, after, language, diff)
    statuses, sides = found or _whole_sides(before, after, language)
    if ParseStatus.SYNTAX_ERROR in statuses:
        return ParseStatus.SYNTAX_ERROR, []
    status = ParseStatus.PARTIAL if ParseStatus.PARTIAL in statuses else ParseStatus.PARSED
    old, new = sides
    pairs = []
    for key in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(key), new.get(key)
        if a is not None and b is not None and a.text == b.text:
            continue
        if (a is None and statuses[0] == ParseStatus.PARTIAL) or (
                b is None and statuses[1] == ParseStatus.PARTIAL):
            continue
        change = "modified" if a and b else "removed" if a else "added"
        unit = a or b
        assert unit is not None
        pairs.append(FunctionPair(key[0], key[1], unit.kind, change, a, b))
    return status, pairs


# One file pair's work: before, after, language, diff.
PairsJob = tuple[str | None, str | None, str, str | None]


def function_pairs_jobs(jobs: list[PairsJob]) -> list[tuple[ParseStatus, list[FunctionPair]]]:
    """build_function_pairs of several file pairs, for a process pool: one picklable
    argument and one task for all the files of a commit (each task costs the pool a round
    trip of its own)."""
    return [build_function_pairs(*job) for job in jobs]
