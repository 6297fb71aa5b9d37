"""Where a bash script evaluates a template's value as code or as a name, found by
parsing the script as bash does (tree-sitter's bash grammar), not by patterns.

A script's `{{ }}` reach bash as environment variables (`${QLRF_ARG_n}`), so quotes
and `$(...)` in a value stay text wherever bash merely expands it. Bash evaluates a
variable's *content* in a few places, and those are what this finds, for the
template's own variable and for every variable assigned from it (a `for` over it, a
`read` from it, a function given it: the value is followed through the script):

- **arithmetic** (`shell-arith-template`): `$(( ))`, `$[ ]`, `(( ))`, `let`,
  `declare -i`, a `[[ ]]` or `test` comparison with -eq -ne -lt -le -gt -ge, an array
  subscript (of an array not declared associative), a substring offset or length,
  and a variable named bare inside arithmetic;
- **code** (`shell-eval-template`): the arguments of `eval`, `source` and `.`, a
  `trap`'s action, a shell's `-c` string, a script file given to a shell, a shell
  fed by a pipe, a here-document or a here-string, `xargs` running a shell, the
  remote command of `ssh`, `su -c`, `runuser -c`, `watch`, an interpreter's `-c` or
  `-e` (python, perl, ruby, node, php), `mapfile -C`, `${x@P}`, and a value in
  the place of the command itself (also after `env`, `exec`, `command`, `sudo`,
  `nohup`, `nice`, `timeout`, `time`, `xargs`, `stdbuf`, `setsid`, `chroot`,
  `ionice`, `find -exec`);
- **a name** (`shell-name-template`): a variable's name in `read`, `printf -v`,
  `declare`/`typeset`/`local`/`export`/`readonly` (and a `-n` reference's target),
  `unset`, `[[ -v ]]`, `test -v`, `[ -v ]`, and `${!x}`. Bash evaluates the subscript
  of a name such as `a[$(cmd)]`.

A value that can only be a number (a declared integer or number input, or an
expression ending in `| int`) is allowed everywhere: it cannot carry code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

from runner import templates

ARITH = "shell-arith-template"
EVAL = "shell-eval-template"
NAME = "shell-name-template"

SHELLS = {"bash", "sh", "zsh", "dash", "ksh", "mksh", "ash", "fish", "rbash", "busybox"}
INTERPRETERS = {"python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php"}
# Commands that run the command after their own options and arguments.
WRAPPERS: dict[str, set[str]] = {  # name -> its options that take a value
    "env": {"-u", "--unset", "-C", "--chdir", "-S", "--split-string"},
    "exec": {"-a"},
    "command": set(),
    "builtin": set(),
    "sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-T", "-U"},
    "doas": {"-u", "-C"},
    "nohup": set(),
    "nice": {"-n", "--adjustment"},
    "time": {"-f", "-o"},
    "timeout": {"-k", "--kill-after", "-s", "--signal"},
    "stdbuf": {"-i", "-o", "-e"},
    "setsid": set(),
    "chroot": set(),
    "ionice": {"-c", "-n", "-p", "-t"},
    "xargs": {"-I", "-i", "-a", "-d", "-E", "-e", "-L", "-l", "-n", "-P", "-s", "--arg-file"},
    "flock": {"-w", "-E", "--conflict-exit-code", "--timeout"},
}
# Wrappers whose first argument after the options is not yet the command.
WRAPPER_FIRST_ARG = {"timeout", "chroot", "flock"}
ARITH_OPERATORS = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge"}
READ_VALUE_OPTIONS = {"-d", "-i", "-n", "-N", "-p", "-t", "-u"}
SSH_VALUE_OPTIONS = set("bcDEeFIiJLlmOopQRSWw")
POSITIONAL = {"1", "2", "3", "4", "5", "6", "7", "8", "9", "@", "*"}


@dataclass(frozen=True)
class Finding:
    code: str
    arg: int  # the template it comes from: QLRF_ARG_<arg>
    what: str  # where bash evaluates it, in words
    via: str | None  # the variable it went through, when not the template's own
    offset: int  # in the script as bash sees it


@functools.cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bash.language()))


# Where a template sits: (start, end) in the script as bash sees it, in bytes, and
# (start, end) in the script as written, in characters.
Span = tuple[int, int, int, int]


def as_bash_sees_it(script: str) -> tuple[str, list[Span]]:
    """The script with each `{{ }}` as "${QLRF_ARG_n}", as the worker runs it
    (runner/engine/render.py render_script), and where each template sits."""
    parts: list[str] = []
    spans: list[Span] = []
    at = 0
    size = 0
    for n, (start, end, _) in enumerate(templates.expressions(script)):
        before = script[at:start]
        parts.append(before)
        size += len(before.encode())
        name = "${" + f"QLRF_ARG_{n}" + "}"
        spans.append((size, size + len(name), start, end))
        parts.append(name)
        size += len(name)
        at = end
    parts.append(script[at:])
    return "".join(parts), spans


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def _walk(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


class Analysis:
    """One script's parse, the variables its templates reach, and where bash
    evaluates them."""

    def __init__(self, text: str, numeric: list[bool]) -> None:
        self.tree = _parser().parse(text.encode())
        self.numeric = numeric
        self.text = text
        # Every variable the script assigns from a template: its name -> the templates.
        self.tainted: dict[str, set[int]] = {
            f"QLRF_ARG_{n}": {n} for n, is_number in enumerate(numeric) if not is_number
        }
        self.associative: set[str] = set()
        self.findings: list[Finding] = []
        self._seen: set[tuple[str, int, int]] = set()

    # -- which variables a node's expansions name --------------------------------

    def origins(self, node: Node) -> dict[int, str]:
        """The templates whose values `node` expands: {arg: the variable it came by}.

        What a command substitution prints is a new value, not the template's, unless
        the command passes its input through (echo, cat, sed, ...): `$(date -d "$x")`
        gives a date, `$(echo "$x")` gives x again."""
        found: dict[int, str] = {}
        stack = [node]
        while stack:
            inner = stack.pop()
            substitution = inner.type in ("command_substitution", "process_substitution")
            if substitution and not _passes_through(inner):
                continue
            name = _expanded(inner)
            if name is not None:
                for arg in self.tainted.get(name, ()):
                    found.setdefault(arg, name)
            stack.extend(inner.children)
        return found

    def _taint(self, name: str, args: set[int]) -> bool:
        known = self.tainted.setdefault(name, set())
        if args <= known:
            return False
        known |= args
        return True

    def propagate(self) -> None:
        """Follow the templates' values through assignments, loops, reads and calls,
        until nothing more is reached (bounded: a script has few variables)."""
        functions = {
            _text(n.children[0])
            for n in _walk(self.tree.root_node)
            if n.type == "function_definition" and n.children
        }
        for _ in range(20):
            changed = False
            for node in _walk(self.tree.root_node):
                for name, source in _assigned(node, functions):
                    args = set(self.origins(source)) if source is not None else set()
                    changed |= bool(args) and self._taint(name, args)
            if not changed:
                return

    # -- where the values are evaluated ------------------------------------------

    def find(self, code: str, node: Node, what: str) -> None:
        for arg, via in self.origins(node).items():
            key = (code, arg, node.start_byte)
            if key in self._seen:
                continue
            self._seen.add(key)
            shown = None if via == f"QLRF_ARG_{arg}" else via
            self.findings.append(Finding(code, arg, what, shown, node.start_byte))

    def run(self) -> list[Finding]:
        self.associative = {
            name for node in _walk(self.tree.root_node) for name in _associative(node)
        }
        self.propagate()
        for node in _walk(self.tree.root_node):
            kind = node.type
            if kind == "command":
                self._command(node)
            elif kind in ("declaration_command", "unset_command"):
                self._declaration(node)
            elif kind == "pipeline":
                self._pipeline(node)
            elif kind in ("arithmetic_expansion",) or (
                kind == "compound_statement" and node.children and node.children[0].type == "(("
            ):
                self._arithmetic(node, "$(( ))" if kind == "arithmetic_expansion" else "(( ))")
            elif kind == "subscript":
                self._subscript(node)
            elif kind == "expansion":
                self._expansion(node)
            elif kind in ("binary_expression", "unary_expression"):
                self._test(node)
            elif kind == "heredoc_redirect":
                self._heredoc(node)
        self._substrings()
        return self.findings

    def _arithmetic(self, node: Node, what: str) -> None:
        self.find(ARITH, node, what)
        # A variable named bare in arithmetic has its value evaluated as arithmetic too.
        for inner in _walk(node):
            bare = inner.parent is not None and inner.parent.type not in (
                "simple_expansion", "expansion", "subscript"
            )  # fmt: skip
            if inner.type == "variable_name" and bare:
                self._named_use(_text(inner), inner, what, code=ARITH)

    def _subscript(self, node: Node) -> None:
        name_node = node.child_by_field_name("name")
        index = node.child_by_field_name("index")
        if index is None or (name_node is not None and _text(name_node) in self.associative):
            return
        self.find(ARITH, index, "an array subscript")

    def _expansion(self, node: Node) -> None:
        children = node.children
        operators = [_text(c) for c in children if c.type not in ("${", "}")]
        if len(children) >= 3 and children[1].type == "!":
            target = children[2]
            if target.type in ("variable_name", "subscript") and not _lists_names(node):
                name = _text(target.child_by_field_name("name") or target)
                self._named_use(name, node, "`${!name}`")
        if "@" in operators and "P" in operators:
            variable = next((c for c in children if c.type == "variable_name"), None)
            if variable is not None:
                self._named_use(_text(variable), node, "${x@P}, prompt expansion", code=EVAL)

    def _named_use(self, name: str, node: Node, what: str, code: str = NAME) -> None:
        for arg in self.tainted.get(name, ()):
            key = (code, arg, node.start_byte)
            if key not in self._seen:
                self._seen.add(key)
                via = None if name == f"QLRF_ARG_{arg}" else name
                self.findings.append(Finding(code, arg, what, via, node.start_byte))

    def _test(self, node: Node) -> None:
        operator = node.child_by_field_name("operator")
        if operator is None:
            return
        op = _text(operator)
        if node.type == "unary_expression" and op in ("-v", "-R"):
            for child in node.children:
                if child is not operator:
                    self.find(NAME, child, f"`{op}` in a test")
        elif node.type == "binary_expression" and op in ARITH_OPERATORS:
            for field in ("left", "right"):
                side = node.child_by_field_name(field)
                if side is not None:
                    self.find(ARITH, side, f"an arithmetic comparison ({op})")

    def _heredoc(self, node: Node) -> None:
        body = next((c for c in node.children if c.type == "heredoc_body"), None)
        if body is None:
            return
        consumers = [c for c in _walk(node) if c.type == "command"]
        statement = node.parent
        if statement is not None and statement.type == "redirected_statement":
            inner = statement.child_by_field_name("body")
            if inner is not None and inner.type == "command":
                consumers.insert(0, inner)
        if any(_reads_code(*_effective(c)) for c in consumers):
            self.find(EVAL, body, "a here-document that a shell runs")

    def _pipeline(self, node: Node) -> None:
        stages = [c for c in node.children if c.type not in ("|", "|&")]
        for position, stage in enumerate(stages):
            commands = [stage] if stage.type == "command" else []
            if stage.type == "redirected_statement":
                inner = stage.child_by_field_name("body")
                commands = [inner] if inner is not None and inner.type == "command" else []
            if any(_reads_code(*_effective(c)) for c in commands):
                for earlier in stages[:position]:
                    self.find(EVAL, earlier, "what a pipe feeds into a shell")

    def _declaration(self, node: Node) -> None:
        keyword = _text(node.children[0]) if node.children else ""
        if keyword == "unset":
            for child in node.children[1:]:
                if not _text(child).startswith("-"):
                    self.find(NAME, child, "`unset`")
            return
        options = "".join(_text(c)[1:] for c in node.children[1:] if _text(c).startswith("-"))
        for child in node.children[1:]:
            if _text(child).startswith("-"):
                continue
            if child.type == "variable_assignment":
                name = child.child_by_field_name("name")
                value = child.child_by_field_name("value")
                if name is not None:
                    self.find(NAME, name, f"the name `{keyword}` declares")
                if value is not None and "n" in options:
                    self.find(NAME, value, f"`{keyword} -n`")
                if value is not None and "i" in options:
                    self.find(ARITH, value, f"`{keyword} -i`")
            else:
                self.find(NAME, child, f"the name `{keyword}` declares")

    def _command(self, node: Node) -> None:
        command, args, wrappers = _effective(node)
        if command is None:
            return
        self._command_word(command)
        name = _plain(command)
        texts = [_plain(a) for a in args]
        if name in ("eval", "source", "."):
            for arg in args:
                self.find(EVAL, arg, f"`{name}`")
        elif name == "trap":
            action = next((a for a, t in zip(args, texts, strict=True) if not _option(t)), None)
            if action is not None:
                self.find(EVAL, action, "a `trap` action")
        elif name in SHELLS:
            string, script = _shell_operands(args, texts)
            if string is not None:
                self.find(EVAL, string, f"`{name} -c`")
            elif script is not None:
                self.find(EVAL, script, f"the script file `{name}` runs")
        elif name in INTERPRETERS:
            for i, text in enumerate(texts[:-1]):
                if text in ("-c", "-e", "-E", "-r"):
                    self.find(EVAL, args[i + 1], f"`{name} {text}`")
        elif name in ("su", "runuser"):
            for i, text in enumerate(texts):
                if text in ("-c", "--command") and i + 1 < len(args):
                    self.find(EVAL, args[i + 1], f"`{name} -c`")
                elif text.startswith("--command="):
                    self.find(EVAL, args[i], f"`{name} --command`")
        elif name == "ssh":
            remote = _ssh_command(texts)
            for arg in args[remote:]:
                self.find(EVAL, arg, "the remote command of `ssh`")
        elif name == "watch":
            for arg, text in zip(args, texts, strict=True):
                if not _option(text):
                    self.find(EVAL, arg, "`watch`")
        elif name in ("mapfile", "readarray"):
            for i, text in enumerate(texts[:-1]):
                if text == "-C":
                    self.find(EVAL, args[i + 1], f"`{name} -C`")
        elif name == "printf":
            for i, text in enumerate(texts[:-1]):
                if text == "-v":
                    self.find(NAME, args[i + 1], "`printf -v`")
        elif name == "read":
            for arg in _read_names(args, texts):
                self.find(NAME, arg, "`read`")
        elif name == "unset":
            for arg, text in zip(args, texts, strict=True):
                if not _option(text):
                    self.find(NAME, arg, "`unset`")
        elif name == "let":
            for arg in args:
                self.find(ARITH, arg, "let")
        elif name in ("test", "["):
            for i, text in enumerate(texts):
                if text == "-v" and i + 1 < len(args):
                    self.find(NAME, args[i + 1], f"`{name} -v`")
                if text in ARITH_OPERATORS:
                    for side in (i - 1, i + 1):
                        if 0 <= side < len(args):
                            self.find(ARITH, args[side], f"an arithmetic comparison ({text})")
        elif name == "find":
            self._find_exec(args, texts)
        if _reads_code(command, args, wrappers):
            for redirect in node.children:
                if redirect.type == "herestring_redirect":
                    self.find(EVAL, redirect, f"a here-string that `{name}` runs")
        # `... sh -c STRING` anywhere among the arguments (`parallel`, `ssh-agent`...).
        for i, text in enumerate(texts[:-2]):
            if text in SHELLS and _has_c(texts[i + 1]) and name not in SHELLS:
                self.find(EVAL, args[i + 2], f"`{text} {texts[i + 1]}`")

    def _command_word(self, word: Node) -> None:
        """A value in the place of the command: as the whole word, quoted or not, or
        unquoted in it (split into a command and its arguments). A value quoted inside a
        longer word ("$bin/initdb") only names where a program lies, and passes."""
        if word.type == "command_name" and word.children:
            word = word.children[0]
        whole = word.type in ("simple_expansion", "expansion") or (
            word.type == "string"
            and [c.type for c in word.children if c.type != '"']
            in (["simple_expansion"], ["expansion"])
        )
        if whole:
            self.find(EVAL, word, "the place of the command itself")
        elif word.type == "concatenation":
            for part in word.children:
                if part.type in ("simple_expansion", "expansion"):
                    self.find(EVAL, part, "the place of the command itself, unquoted")

    def _find_exec(self, args: list[Node], texts: list[str]) -> None:
        for i, text in enumerate(texts):
            if text in ("-exec", "-execdir", "-ok", "-okdir") and i + 1 < len(args):
                self.find(EVAL, args[i + 1], f"the command of `find {text}`")

    def _substrings(self) -> None:
        """${name:offset:length}: the grammar splits a templated offset from its
        expansion, so the span is taken from the text (braces matched)."""
        text = self.text.encode()
        for match in _SUBSTRING.finditer(text):
            end = _closing(text, match.start() + 1)
            for node in _walk(self.tree.root_node):
                if match.end() <= node.start_byte < end and _expanded(node) is not None:
                    self.find(ARITH, node, "a substring offset")


_SUBSTRING = re.compile(rb"\$\{#?[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?:(?![-=?+])")


def _closing(text: bytes, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i : i + 1] == b"{":
            depth += 1
        elif text[i : i + 1] == b"}":
            depth -= 1
            if depth == 0:
                return i
    return len(text)


# Commands whose output is their input, more or less: what they print carries the value.
PASS_THROUGH = {
    "echo", "printf", "cat", "tr", "sed", "awk", "cut", "head", "tail", "sort", "uniq",
    "tee", "rev", "fold", "base64", "xxd", "jq", "grep", "xargs", "basename", "dirname",
}  # fmt: skip


def _passes_through(substitution: Node) -> bool:
    for inner in _walk(substitution):
        if inner.type == "command":
            command, _, _ = _effective(inner)
            if command is not None and _plain(command) in PASS_THROUGH:
                return True
            if command is not None and _plain(command) == "":
                return True  # a command we cannot name: assume the worst
    return any(c.type == "variable_assignment" for c in substitution.children)


def _expanded(node: Node) -> str | None:
    """The variable an expansion node reads (`$x`, `${x...}`), else None."""
    if node.type not in ("simple_expansion", "expansion"):
        return None
    for child in node.children:
        if child.type in ("variable_name", "special_variable_name"):
            return _text(child)
        if child.type == "subscript":
            name = child.child_by_field_name("name")
            return _text(name) if name is not None else None
    return None


def _lists_names(node: Node) -> bool:
    """`${!prefix*}`, `${!prefix@}` and `${!array[@]}` list names, they do not follow one."""
    text = _text(node)
    return text.endswith(("*}", "@}", "[@]}", "[*]}"))


def _assigned(node: Node, functions: set[str]) -> Iterator[tuple[str, Node | None]]:
    """The variables `node` assigns, each with the node its value comes from."""
    kind = node.type
    if kind == "variable_assignment":
        name = node.child_by_field_name("name")
        value = node.child_by_field_name("value")
        if name is not None and name.type == "subscript":
            name = name.child_by_field_name("name")
        if name is not None:
            yield _text(name), value
    elif kind == "for_statement":
        variable = node.child_by_field_name("variable")
        if variable is not None:
            for value in node.children_by_field_name("value"):
                yield _text(variable), value
    elif kind == "command":
        command, args, _ = _effective(node)
        word = _plain(command) if command is not None else ""
        texts = [_plain(a) for a in args]
        if word == "read":
            source = _read_source(node)
            for arg in _read_names(args, texts):
                yield _text(arg), source
        elif word == "printf":
            for i, text in enumerate(texts[:-1]):
                if text == "-v":
                    for rest in args[i + 2 :]:
                        yield texts[i + 1], rest
        elif word in functions or word == "set":
            for arg in args:
                for positional in POSITIONAL:
                    yield positional, arg


def _read_source(node: Node) -> Node | None:
    """What a `read` reads: its here-string or here-document, or the pipe's earlier stages."""
    for child in node.children:
        if child.type in ("herestring_redirect", "heredoc_redirect"):
            return child
    parent = node.parent
    while parent is not None and parent.type not in ("pipeline", "program"):
        if parent.type == "redirected_statement":
            for child in parent.children:
                if child.type in ("herestring_redirect", "heredoc_redirect"):
                    return child
        parent = parent.parent
    if parent is not None and parent.type == "pipeline":
        return parent.children[0] if parent.children else None
    return None


def _associative(node: Node) -> Iterator[str]:
    if node.type != "declaration_command":
        return
    options = "".join(_text(c)[1:] for c in node.children[1:] if _text(c).startswith("-"))
    if "A" not in options:
        return
    for child in node.children[1:]:
        if child.type == "variable_name":
            yield _text(child)
        elif child.type == "variable_assignment":
            name = child.child_by_field_name("name")
            if name is not None:
                yield _text(name)


def _is_word(node: Node) -> bool:
    return node.type in (
        "word", "string", "raw_string", "concatenation", "simple_expansion", "expansion",
        "command_substitution", "number", "ansi_c_string", "translated_string",
        "process_substitution", "arithmetic_expansion",
    )  # fmt: skip


def _plain(node: Node) -> str:
    """A word's literal text (quotes taken off); "" for anything expanded."""
    if node.type == "command_name" and node.children:
        node = node.children[0]
    if node.type in ("word", "number"):
        return _text(node)
    if node.type == "raw_string":
        return _text(node)[1:-1]
    if node.type == "concatenation":
        parts = [_plain(c) for c in node.children]
        return "".join(parts) if all(parts) else ""
    if node.type == "string" and all(c.type in ('"', "string_content") for c in node.children):
        return "".join(_text(c) for c in node.children if c.type == "string_content")
    return ""


def _option(text: str) -> bool:
    return text.startswith("-") and text != "-"


def _has_c(text: str) -> bool:
    return text.startswith("-") and not text.startswith("--") and "c" in text[1:]


def _effective(node: Node) -> tuple[Node | None, list[Node], list[str]]:
    """The command a command node runs (past env, sudo, nice, timeout...), its arguments,
    and the wrappers it was found behind."""
    name = node.child_by_field_name("name")
    if name is None:
        return None, [], []
    rest = [c for c in node.children if c.id != name.id and _is_word(c)]
    current: Node = name
    wrappers: list[str] = []
    for _ in range(8):  # wrappers of wrappers, bounded
        word = _plain(current)
        if word not in WRAPPERS:
            break
        takes_value = WRAPPERS[word]
        i = 0
        while i < len(rest):
            text = _plain(rest[i])
            if word == "env" and "=" in text and not text.startswith("-"):
                i += 1
                continue
            if not _option(text):
                break
            i += 2 if text in takes_value else 1
        if word in WRAPPER_FIRST_ARG:
            i += 1
        wrappers.append(word)
        if i >= len(rest):
            return current, [], wrappers
        current, rest = rest[i], rest[i + 1 :]
    return current, rest, wrappers


def _reads_code(command: Node | None, args: list[Node], wrappers: list[str]) -> bool:
    """Whether what the command reads becomes code: a shell that reads its script from
    its input, a shell run by xargs (the input becomes its arguments, or its -c string),
    `source /dev/stdin`."""
    if command is None:
        return False
    name = _plain(command)
    texts = [_plain(a) for a in args]
    if name in SHELLS:
        if "xargs" in wrappers:
            return True
        string, script = _shell_operands(args, texts)
        return (string is None and script is None) or "-s" in texts
    return name in ("source", ".") and any("stdin" in t or "/fd/0" in t for t in texts)


def _shell_operand(texts: list[str]) -> tuple[int | None, bool]:
    """Where a shell's first operand is among its arguments, and whether it is the `-c`
    string (else the script file it runs)."""
    with_c = False
    i = 0
    while i < len(texts):
        text = texts[i]
        if text in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if text == "--":
            i += 1
            break
        if text.startswith(("-", "+")) and text not in ("-", "+"):
            with_c = with_c or _has_c(text)
            i += 1
            continue
        break
    return (i if i < len(texts) else None), with_c


def _shell_operands(args: list[Node], texts: list[str]) -> tuple[Node | None, Node | None]:
    """A shell's `-c` string, or the script file it runs (the first operand)."""
    index, with_c = _shell_operand(texts)
    if index is None:
        return None, None
    return (args[index], None) if with_c else (None, args[index])


def _ssh_command(texts: list[str]) -> int:
    """Where the remote command starts among ssh's arguments (past options and host)."""
    i = 0
    while i < len(texts):
        text = texts[i]
        if _option(text):
            flag = text[1:2]
            i += 2 if len(text) == 2 and flag in SSH_VALUE_OPTIONS else 1
            continue
        return i + 1  # the host; what follows runs on it
    return len(texts)


def _read_names(args: list[Node], texts: list[str]) -> list[Node]:
    names: list[Node] = []
    i = 0
    while i < len(texts):
        text = texts[i]
        if text == "-a" and i + 1 < len(args):
            names.append(args[i + 1])
            i += 2
        elif text in READ_VALUE_OPTIONS:
            i += 2
        elif _option(text):
            i += 1
        else:
            names.append(args[i])
            i += 1
    return names


def findings(script: str, numeric: list[bool]) -> tuple[list[Finding], list[Span]]:
    """Where `script` (as written, with its `{{ }}`) lets bash evaluate a template's
    value; `numeric[n]` says whether template n can only be a number. Also each
    template's place (see as_bash_sees_it), for the caller's line numbers."""
    text, spans = as_bash_sees_it(script)
    return Analysis(text, numeric).run(), spans


def has_syntax_error(script: str) -> int | None:
    """The line of the first place bash's grammar cannot read, or None."""
    text, _ = as_bash_sees_it(script)
    root = _parser().parse(text.encode()).root_node
    if not root.has_error:
        return None
    broken = [n for n in _walk(root) if n.type == "ERROR" or n.is_missing]
    if not broken:
        return 1
    # The smallest of them is where the grammar lost its way, and it gives up at its
    # end (its start is often the start of the statement around it).
    smallest = min(broken, key=lambda n: (n.end_byte - n.start_byte, n.start_byte))
    return int(smallest.end_point[0]) + 1


def single_quoted(script: str) -> list[str]:
    """The single-quoted strings of `script` that hold a `{{ }}`: bash leaves them
    literal, so the template's value would never show."""
    text, spans = as_bash_sees_it(script)
    root = _parser().parse(text.encode()).root_node
    found: list[str] = []
    for node in _walk(root):
        if node.type == "raw_string" and "${QLRF_ARG_" in _text(node):
            found.append(_original(script, spans, node.start_byte, node.end_byte))
    return found


def _original(script: str, spans: list[Span], start: int, end: int) -> str:
    return script[to_script(spans, start, script) : to_script(spans, end, script)]


def to_script(spans: list[Span], offset: int, script: str) -> int:
    """A byte offset in the script as bash sees it, as a character index in `script`."""
    bash_at, script_at = 0, 0
    for bash_start, bash_end, script_start, script_end in spans:
        if offset < bash_start:
            break
        if offset < bash_end:
            return script_start  # inside a template's placeholder: the template
        bash_at, script_at = bash_end, script_end
    rest = script[script_at:].encode()[: offset - bash_at]
    return script_at + len(rest.decode("utf-8", "ignore"))


def line_of(script: str, spans: list[Span], offset: int) -> int:
    """The script line (from 1) of a byte offset in the script as bash sees it."""
    return script.count("\n", 0, to_script(spans, offset, script)) + 1


def argv_code(words: list[str]) -> list[tuple[int, str]]:
    """The words of a `command:` argv that a program runs as code: a shell's `-c`
    string, an interpreter's `-c`/`-e`, `su -c`, ssh's remote command, past wrappers
    (env, sudo, timeout, ...): (index, what runs it)."""
    found: list[tuple[int, str]] = []
    i = 0
    for _ in range(8):
        word = words[i].rsplit("/", 1)[-1] if i < len(words) else ""
        if word not in WRAPPERS:
            break
        j = i + 1
        while j < len(words):
            text = words[j]
            if word == "env" and "=" in text and not text.startswith("-"):
                j += 1
                continue
            if not _option(text):
                break
            j += 2 if text in WRAPPERS[word] else 1
        i = j + (1 if word in WRAPPER_FIRST_ARG else 0)
    if i >= len(words):
        return found
    name, rest = words[i].rsplit("/", 1)[-1], words[i + 1 :]
    base = i + 1
    if name in SHELLS:
        index, with_c = _shell_operand(rest)
        if index is not None and with_c:
            flag = next(t for t in reversed(rest[:index]) if _has_c(t))
            found.append((base + index, f"`{words[i]} {flag}`"))
    elif name in INTERPRETERS:
        found += [
            (base + k + 1, f"`{name} {t}`") for k, t in enumerate(rest[:-1]) if t in ("-c", "-e")
        ]
    elif name in ("su", "runuser"):
        found += [(base + k + 1, f"`{name} -c`") for k, t in enumerate(rest[:-1]) if t == "-c"]
    elif name == "ssh":
        found += [
            (base + k, "the remote command of `ssh`") for k in range(_ssh_command(rest), len(rest))
        ]
    elif name == "watch":
        found += [(base + k, "`watch`") for k, t in enumerate(rest) if not _option(t)]
    for k, text in enumerate(words[:-2]):
        if text.rsplit("/", 1)[-1] in SHELLS and _has_c(words[k + 1]) and k != i:
            found.append((k + 2, f"`{text} {words[k + 1]}`"))
    return found
