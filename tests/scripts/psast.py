"""PowerShell syntax trees for the script checks.

The trees come from the maintained tree-sitter grammar for PowerShell
(``tree-sitter-powershell`` with the ``tree-sitter`` Python binding, both
pinned in tests/emulation/requirements.txt). This module only adds the small
vocabulary the checks need on top of the tree: commands with their names and
arguments, literal values, conditions that guard a block, and where a syntax
error is.

Known gap of grammar 0.26.4: a command argument that is a comma list of
*bare words* (``Format-List Name, Id``) is a parse error; PowerShell accepts
it. The scripts quote such lists (``Format-List -Property 'Name', 'Id'``),
which means the same thing to PowerShell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

try:
    import tree_sitter_powershell
    from tree_sitter import Language, Node, Parser
except ImportError as exc:  # pragma: no cover - environment problem, not a check
    raise ImportError(
        "the script checks need tree-sitter and tree-sitter-powershell from "
        "tests/emulation/requirements.txt: run them with the venv that "
        "'bash tests/emulation/run.sh' creates (.venv-emu/bin/python -m pytest tests/scripts)"
    ) from exc

LANGUAGE = Language(tree_sitter_powershell.language())
_PARSER = Parser(LANGUAGE)

# Expression nodes that, with a single child, only carry operator precedence.
_WRAPPERS = {
    "pipeline", "pipeline_chain", "logical_expression", "bitwise_expression",
    "comparison_expression", "additive_expression", "multiplicative_expression",
    "format_expression", "range_expression", "array_literal_expression",
    "unary_expression", "argument_expression", "logical_argument_expression",
    "bitwise_argument_expression", "comparison_argument_expression",
    "additive_argument_expression", "multiplicative_argument_expression",
    "format_argument_expression", "range_argument_expression",
    "parenthesized_expression", "sub_expression",
}


def parse(text: str) -> Node:
    """The root ``program`` node of ``text``."""
    return _PARSER.parse(text.encode("utf-8")).root_node


def node_text(node: Node) -> str:
    return node.text.decode("utf-8") if node.text is not None else ""


def line(node: Node) -> int:
    """1-based line where ``node`` starts."""
    return node.start_point[0] + 1


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every node below it, in source order."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def syntax_errors(root: Node) -> list[str]:
    """One message per ERROR or MISSING node, with its line and column."""
    problems = []
    for n in walk(root):
        if n.is_missing:
            problems.append(f"line {line(n)}:{n.start_point[1] + 1}: missing '{n.type}'")
        elif n.is_error:
            snippet = node_text(n).split("\n", 1)[0][:60]
            problems.append(f"line {line(n)}:{n.start_point[1] + 1}: syntax error at {snippet!r}")
    return problems


def unwrap(node: Node) -> Node:
    """Descends through precedence wrappers and parentheses to the node that
    carries meaning: ``(($x))`` gives the variable node."""
    while True:
        named = node.named_children
        if node.type in _WRAPPERS and len(named) == 1:
            node = named[0]
        elif node.type == "parenthesized_expression" and len(named) == 1:
            node = named[0]
        else:
            return node


def string_value(node: Node) -> str | None:
    """The text of a string literal without its quotes (here-strings too);
    None if ``node`` is not one. Variables in expandable strings stay as
    written (``"file=$x"`` gives ``file=$x``)."""
    node = unwrap(node)
    if node.type != "string_literal":
        return None
    raw = node_text(node)
    if raw.startswith(("@'", '@"')):
        body = raw[2:-2]
        return body.strip("\r\n")
    if raw[:1] in ("'", '"') and raw[-1:] == raw[:1] and len(raw) >= 2:
        body = raw[1:-1]
        return body.replace("''", "'") if raw[0] == "'" else body
    return raw


def word_value(node: Node) -> str | None:
    """A command argument's literal text: a bare word, a parameter name or a
    string's contents; None for anything computed (variables, expressions)."""
    inner = unwrap(node)
    if inner.type in ("generic_token", "command_parameter"):
        return node_text(inner)
    return string_value(inner)


@dataclass
class Command:
    """One command invocation: ``& pnputil.exe /add-driver $inf /install``."""

    node: Node
    raw_name: str
    """The name as written: ``pnputil.exe``, ``$devcon``, ``.\\Install-Weir.ps1``."""
    args: list[Node]
    """The argument nodes after the name, separators dropped."""

    @property
    def name(self) -> str:
        """Lower-case name without a leading ``$`` or a trailing ``.exe``:
        ``pnputil``, ``devcon``, ``import-certificate``."""
        n = self.raw_name.lstrip("$").lower()
        return n[:-4] if n.endswith(".exe") else n

    @property
    def words(self) -> list[str | None]:
        """:func:`word_value` of each argument."""
        return [word_value(a) for a in self.args]

    @property
    def line(self) -> int:
        return line(self.node)

    def source(self) -> str:
        return node_text(self.node).split("\n", 1)[0].strip()


def as_command(node: Node) -> Command | None:
    if node.type != "command":
        return None
    name_node = node.child_by_field_name("command_name")
    if name_node is None:
        return None
    if name_node.type == "command_name_expr":
        inner = name_node.named_children[0] if name_node.named_children else name_node
        if inner.type == "path_command_name" and inner.named_children:
            inner = inner.named_children[0]
        raw = node_text(inner)
    else:
        raw = node_text(name_node)
    elements = node.child_by_field_name("command_elements")
    args = []
    if elements is not None:
        args = [c for c in elements.named_children if c.type != "command_argument_sep"]
    return Command(node=node, raw_name=raw, args=args)


def commands(root: Node) -> list[Command]:
    """Every command in the tree, in source order (commands inside script
    blocks and sub-expressions included; text in strings and comments is
    never a command)."""
    return [c for c in (as_command(n) for n in walk(root)) if c is not None]


def top_level_statements(root: Node) -> list[Node]:
    """The statements of the script body (outside any block)."""
    body = next((c for c in root.named_children if c.type == "statement_list"), None)
    return list(body.named_children) if body is not None else []


def top_level_command(statement: Node) -> Command | None:
    """The command a top-level statement consists of, if it is one plain
    command (no pipe, no assignment)."""
    if statement.type != "pipeline":
        return None
    inner = unwrap(statement)
    return as_command(inner)


def assignment(statement: Node) -> tuple[str, Node] | None:
    """(variable name as written, value node) for ``$name = value``."""
    if statement.type != "pipeline":
        return None
    assign = next((c for c in statement.named_children if c.type == "assignment_expression"), None)
    if assign is None:
        return None
    left = assign.child_by_field_name("left") or assign.named_children[0]
    value = assign.child_by_field_name("value")
    target = unwrap(left if left.type != "left_assignment_expression" else left.named_children[0])
    if target.type != "variable" or value is None:
        return None
    op = next((c for c in assign.named_children if c.type == "assignement_operator"), None)
    if op is not None and node_text(op).strip() != "=":
        return None
    return node_text(target), value


def param_block(root: Node) -> Node | None:
    return next((c for c in root.named_children if c.type == "param_block"), None)


def parameters(block: Node | None) -> list[str]:
    """Names (without ``$``) of the parameters declared in a param block."""
    if block is None:
        return []
    plist = next((c for c in block.named_children if c.type == "parameter_list"), None)
    if plist is None:
        return []
    names = []
    for p in plist.named_children:
        if p.type != "script_parameter":
            continue
        var = next((c for c in p.named_children if c.type == "variable"), None)
        if var is not None:
            names.append(node_text(var).lstrip("$"))
    return names


def attributes(block: Node | None) -> list[tuple[str, Node]]:
    """(type name, attribute node) of the attributes before ``param``."""
    if block is None:
        return []
    out = []
    for alist in (c for c in block.named_children if c.type == "attribute_list"):
        for attr in alist.named_children:
            name = next((c for c in attr.named_children if c.type == "attribute_name"), None)
            if name is not None:
                out.append((node_text(name), attr))
    return out


def functions(root: Node) -> dict[str, Node]:
    """Function name -> function_statement node, anywhere in the tree."""
    out = {}
    for n in walk(root):
        if n.type == "function_statement":
            name = next((c for c in n.named_children if c.type == "function_name"), None)
            if name is not None:
                out[node_text(name)] = n
    return out


def member_calls(root: Node, receiver: str, member: str) -> list[Node]:
    """``receiver.member(...)`` invocations (case-insensitive), e.g.
    ``$PSCmdlet.ShouldProcess(...)``."""
    out = []
    for n in walk(root):
        if n.type != "invokation_expression":
            continue
        named = n.named_children
        if len(named) < 2:
            continue
        recv, name = named[0], next((c for c in named if c.type == "member_name"), None)
        if name is None:
            continue
        if node_text(recv).lower() == receiver.lower() and node_text(name).lower() == member.lower():
            out.append(n)
    return out


def flow_keyword(node: Node) -> str | None:
    """``throw``, ``exit``, ``return``, ``break``... for a flow_control_statement."""
    if node.type != "flow_control_statement" or not node.children:
        return None
    return node_text(node.children[0]).lower()


def guarding_conditions(node: Node) -> list[Node]:
    """The conditions of the ``if``/``elseif`` statements whose *then* block
    encloses ``node`` (innermost first). ``else`` blocks and loop bodies are
    not guarded by anything."""
    out = []
    child = node
    parent = node.parent
    while parent is not None:
        if child.type == "statement_block" and parent.type in ("if_statement", "elseif_clause"):
            cond = parent.child_by_field_name("condition")
            if cond is not None:
                out.append(cond)
        child, parent = parent, parent.parent
    return out


def implies(condition: Node, target: Node) -> bool:
    """True when ``condition`` can only be true if ``target`` (a node inside
    it) is true: every node between them is a precedence wrapper, a
    parenthesis or an ``-and``. A ``-not``/``!``, an ``-or``/``-xor``, a
    comparison or anything else breaks it."""
    n = target
    while n is not None and n.id != condition.id:
        parent = n.parent
        if parent is None:
            return False
        if parent.type == "logical_expression" and parent.named_child_count > 1:
            ops = [node_text(c).lower() for c in parent.children if not c.is_named]
            if any(op != "-and" for op in ops):
                return False
        elif parent.type in _WRAPPERS or parent.type == "parenthesized_expression":
            if parent.named_child_count != 1:
                return False
        else:
            return False
        n = parent
    return n is not None
