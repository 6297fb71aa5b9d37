"""Budgets for every template render: no huge value, no endless loop, no runaway work.

Templates are rendered inside the Temporal workflow, where a render that builds a
gigabyte string or loops for minutes would stall the workflow task, take the
worker's memory, and leave the run stuck. So every render has a budget, and going
over it raises BudgetExceeded at once, before the work is done:

- no value made inside a render (a string, a list, a mapping) and no result is
  longer than VALUE_LIMIT (256 KiB of text, or as many items); repetition (`*`),
  powers (`**`), joins, padding and formatting widths are checked before they run;
- loops run at most LOOP_LIMIT iterations in all, per render;
- a render does at most OP_LIMIT operations (calls, operators, lookups, loop
  items) and makes at most MADE_LIMIT characters or items in all.

The last stands for the CPU limit. It is a count, not a clock: a clock would
make a render pass on one replay and fail on another, which Temporal reports as
non-determinism. An operation costs 1-2 us in the templates runbooks use, so
50,000 of them take about 100 ms on a 2-core machine (the costliest patterns
measured, such as joins inside a map, about 300 ms).

Jinja's compile-time constant folding cannot build a huge value either: the
intercepted operators are never folded, and the guarded filters raise instead.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.visitor import NodeTransformer

VALUE_LIMIT = 256 * 1024
LOOP_LIMIT = 10_000
OP_LIMIT = 50_000
MADE_LIMIT = 16 * VALUE_LIMIT
# Integers stay small: the cost of dividing two numbers grows with the square of their
# size (a million bits took a second a division), and no runbook needs more than this.
BIT_LIMIT = 4096  # about 1,233 decimal digits
JSON_INDENT_LIMIT = 64


class BudgetExceeded(Exception):
    """A render went over its budget; the message says which limit, and what to do."""


class Budget:
    """What one render has used so far."""

    __slots__ = ("loops", "made", "ops", "output")

    def __init__(self) -> None:
        self.ops = 0
        self.loops = 0
        self.made = 0
        self.output = 0

    def charge(self, ops: int = 1) -> None:
        self.ops += ops
        if self.ops > OP_LIMIT:
            raise BudgetExceeded(
                f"the template does more than {OP_LIMIT:,} operations; it must do less work "
                "(the budget stands for about 100 ms of CPU)"
            )

    def loop(self) -> None:
        self.loops += 1
        if self.loops > LOOP_LIMIT:
            raise BudgetExceeded(
                f"the template's loops run more than {LOOP_LIMIT:,} times in all; loop over less"
            )
        self.charge()

    def add_made(self, size: int) -> None:
        self.made += size
        if self.made > MADE_LIMIT:
            raise BudgetExceeded(
                f"the template makes more than {MADE_LIMIT:,} characters or items in all; "
                "it must build less"
            )

    def add_output(self, size: int) -> None:
        self.output += size
        if self.output > VALUE_LIMIT:
            raise BudgetExceeded(too_large(self.output))
        self.add_made(size)


# The budget of the render in progress. A context variable, not a thread-local: the
# workflow sandbox forbids thread-locals, and a render never awaits, so the render
# that set it is the one that reads it.
_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "qlrf_template_budget", default=None
)


@contextlib.contextmanager
def scope() -> Iterator[Budget]:
    """A fresh budget for one render."""
    budget = Budget()
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def _current() -> Budget | None:
    return _budget.get()


def too_large(size: int) -> str:
    return (
        f"the template would make a value of {size:,} characters or items, over the limit "
        f"of {VALUE_LIMIT:,}; make it smaller"
    )


def _size(value: Any) -> int | None:
    if isinstance(value, str | bytes | bytearray | list | tuple | dict | set | frozenset):
        return len(value)
    return None


def _refuse_size(size: int) -> None:
    if size > VALUE_LIMIT:
        raise BudgetExceeded(too_large(size))


def _made(value: Any) -> Any:
    """Check a value made inside a render, and count it against the render's budget."""
    size = _size(value)
    if size is not None:
        _refuse_size(size)
        budget = _current()
        if budget is not None:
            budget.add_made(size)
        return value
    if isinstance(value, types.GeneratorType | map | filter | zip):
        return _counted(value)
    return value


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    """An iterator whose every item is charged as an operation."""
    for item in items:
        budget = _current()
        if budget is not None:
            budget.charge()
        yield _made(item)


def bounded_size(value: Any, limit: int = VALUE_LIMIT) -> int:
    """Items and characters in `value`, counting shared parts each time they appear (as
    JSON would); BudgetExceeded as soon as it passes `limit`, without walking the rest."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            stack.extend(item)
        else:
            total += 1
        if total > limit:
            raise BudgetExceeded(too_large(total))
    return total


# -- checks made before an operation that could build something huge ------------------

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\d+|\*)?(?:\.(\d+|\*))?")
_FORMAT_SPEC = re.compile(r"^(?:.?[<>=^])?[+\- ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?")


def _check_percent(fmt: str, args: Any) -> None:
    """`fmt % args`: no width or precision above the limit, written or passed as `*`."""
    starred = False
    for match in _PERCENT_SPEC.finditer(fmt):
        for number in match.groups():
            if number == "*":
                starred = True
            elif number and int(number) > VALUE_LIMIT:
                raise BudgetExceeded(too_large(int(number)))
    if starred:
        values = args if isinstance(args, tuple) else (args,)
        for value in values:
            if isinstance(value, int) and abs(value) > VALUE_LIMIT:
                raise BudgetExceeded(too_large(abs(value)))


def _check_format_spec(spec: str) -> None:
    match = _FORMAT_SPEC.match(spec)
    if match:
        for number in match.groups():
            if number and int(number) > VALUE_LIMIT:
                raise BudgetExceeded(too_large(int(number)))


def _big(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > BIT_LIMIT


def _refuse_big(*values: Any) -> None:
    for value in values:
        if _big(value):
            raise BudgetExceeded(
                f"the template computes with a number of {value.bit_length():,} bits, over "
                f"the limit of {BIT_LIMIT:,} (about 1,233 digits); use smaller numbers"
            )


def _check_binop(operator: str, left: Any, right: Any) -> None:
    # Every operation on integers is priced by their size: none may be over the limit,
    # whatever the operator (// and % of big numbers are the costliest of all).
    _refuse_big(left, right)
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            size = _size(seq)
            if size is not None and isinstance(times, int):
                _refuse_size(size * max(times, 0))
        both = isinstance(left, int) and isinstance(right, int)
        bits = left.bit_length() + right.bit_length() if both else 0
        if bits > BIT_LIMIT:
            raise BudgetExceeded(f"the template would make a number of {bits:,} bits")
    elif operator == "**":
        both = isinstance(left, int) and isinstance(right, int)
        bits = right * left.bit_length() if both and right > 0 and abs(left) > 1 else 0
        if bits > BIT_LIMIT:
            raise BudgetExceeded(
                f"the template computes {left} ** {right}, a number of about {bits:,} bits; "
                "use smaller numbers"
            )
    elif operator == "+":
        a, b = _size(left), _size(right)
        if a is not None and b is not None:
            _refuse_size(a + b)
    elif operator == "%" and isinstance(left, str):
        _check_percent(left, right)


def _replace_size(text: str, old: str, new: str, count: int) -> int:
    found = len(text) + 1 if old == "" else text.count(old)
    if count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _joined(separator: str, items: Iterable[Any]) -> tuple[list[Any], int]:
    """The items of a join, materialized under the budget, and the size of the result."""
    listed: list[Any] = []
    total = 0
    budget = _current()
    for item in items:
        if budget is not None:
            budget.charge()
        listed.append(item)
        total += len(item) if isinstance(item, str) else len(str(item))
        if listed[1:]:
            total += len(separator)
        _refuse_size(total)
        _refuse_size(len(listed))
    return listed, total


def _check_str_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A str method called from a template: checked before it runs. Returns the arguments
    to call it with (a join's iterable is materialized first)."""
    text = method.__self__
    name = method.__name__
    if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
        _refuse_size(args[0])
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            _refuse_size(len(text) + max(tabsize, 0) * text.count("\t"))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        _refuse_size(_replace_size(text, args[0], str(args[1]), count))
    elif name == "join" and args:
        listed, _ = _joined(text, args[0])
        return (listed, *args[1:])
    return args


class _CheckedFormatter(SandboxedFormatter):
    """str.format from a template: no field wider or more precise than the limit."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_format_spec(format_spec)
        return _made(super().format_field(value, format_spec))


# -- filters, guarded ---------------------------------------------------------------------


def _check_filter(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Checks made before a filter runs; returns its (possibly materialized) arguments."""
    value = args[0] if args else None

    def arg(position: int, key: str, default: Any) -> Any:
        return args[position] if len(args) > position else kwargs.get(key, default)

    # The numeric arguments of these filters are widths, counts and lengths, which
    # they allocate before anything else (`indent(10**9)` builds a billion spaces):
    # none may be over the size of a value. The value of any filter may be no bigger
    # a number than arithmetic may use.
    _refuse_big(value)
    if name in _SIZED:
        for given in (*args[1:], *kwargs.values()):
            if isinstance(given, int) and not isinstance(given, bool):
                _refuse_size(abs(given))
    if name == "round":
        precision = arg(1, "precision", 0)
        if isinstance(precision, int) and abs(precision) > ROUND_LIMIT:
            # round(5, -n) computes 10 ** n
            raise BudgetExceeded(f"round() to {precision} places is over {ROUND_LIMIT}")

    if name == "center":
        width = arg(1, "width", 80)
        if isinstance(width, int):
            _refuse_size(width)
    elif name == "indent":
        text = value if isinstance(value, str) else str(value)  # indent writes str(value)
        width = arg(1, "width", 4)
        per_line = width if isinstance(width, int) else len(str(width))
        _refuse_size(len(text) + (text.count("\n") + 1) * max(per_line, 0))
    elif name == "format" and isinstance(value, str):
        _check_percent(value, kwargs or tuple(args[1:]))
    elif name == "replace" and isinstance(value, str):
        old, new = arg(1, "old", ""), arg(2, "new", "")
        count = arg(3, "count", None)
        _refuse_size(_replace_size(value, str(old), str(new), -1 if count is None else count))
    elif name == "join" and value is not None:
        # A string joins its characters, a mapping its keys: count them all the same.
        items = list(value) if isinstance(value, str | dict) else value
        listed, _ = _joined(str(arg(1, "d", "")), items)
        return (listed, *args[1:])
    elif name in ("slice", "batch"):
        count = arg(1, "slices" if name == "slice" else "linecount", 1)
        if isinstance(count, int):
            _refuse_size(count)
    elif name == "tojson":
        indent = arg(1, "indent", None)
        width = indent if isinstance(indent, int) else len(indent or "")
        if width > JSON_INDENT_LIMIT:
            raise BudgetExceeded(f"tojson indent {width} is over {JSON_INDENT_LIMIT}")
    elif name == "wordwrap" and isinstance(value, str):
        width = arg(1, "width", 79)
        wrap = arg(3, "wrapstring", None)
        if isinstance(width, int) and wrap is not None:
            lines = len(value) // max(width, 1) + 1
            _refuse_size(len(value) + lines * len(str(wrap)))
    elif name == "sum":
        start = arg(2, "start", 0)
        if not isinstance(start, int | float):
            raise BudgetExceeded("sum() of lists or strings is not allowed in templates")
    return args


# Filters whose numeric arguments are sizes of what they make.
_SIZED = {"center", "indent", "truncate", "wordwrap", "batch", "slice", "urlize", "tojson"}
ROUND_LIMIT = 1000

# Filters that go through every item of their input, in C as often as not: each
# item is charged as an operation before they start.
_ITERATING = {
    "sum", "join", "list", "sort", "unique", "min", "max", "reverse", "map", "select",
    "reject", "selectattr", "rejectattr", "groupby", "batch", "slice", "dictsort", "items",
    "tojson", "pprint", "string", "wordcount", "striptags", "urlize", "wordwrap", "indent",
}  # fmt: skip


def _work(value: Any) -> int:
    """Operations a pass over `value` counts as: one an item, one per 1,024 characters."""
    if isinstance(value, str | bytes):
        return len(value) // 1024 + 1
    if isinstance(value, range | list | tuple | dict | set | frozenset):
        return len(value) + 1
    return 1


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    passes = getattr(function, "jinja_pass_arg", None)

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        offset = 1 if passes is not None else 0  # the context or environment comes first
        budget = _current()
        if budget is not None:
            value = args[offset] if len(args) > offset else None
            budget.charge(_work(value) if name in _ITERATING else 1)
        checked = _check_filter(name, args[offset:], kwargs)
        return _made(function(*args[:offset], *checked, **kwargs))

    if passes is not None:
        guarded.jinja_pass_arg = passes  # type: ignore[attr-defined]
    return guarded


# -- the environment ----------------------------------------------------------------------


class BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with every growing operation checked and counted."""

    intercepted_binops = frozenset({"*", "**", "+", "-", "/", "//", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters = {name: _guarded_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _current()
        if budget is not None:
            budget.charge()
        _check_binop(operator, left, right)
        return _made(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _current()
        if budget is not None:
            # `s.count(x)`, `l.index(x)`: a method goes through its receiver.
            budget.charge(_work(getattr(__obj, "__self__", None)))
        if isinstance(getattr(__obj, "__self__", None), str) and hasattr(__obj, "__name__"):
            args = _check_str_method(__obj, args, kwargs)
        return _made(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget = _current()
        if budget is not None:
            budget.charge()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        budget = _current()
        if budget is not None:
            budget.charge()
        found = super().getitem(obj, argument)
        return _made(found) if isinstance(argument, slice) else found

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        method = isinstance(value, types.MethodType | types.BuiltinMethodType)
        if not method or value.__name__ not in ("format", "format_map"):
            return None
        text = value.__self__
        if not isinstance(text, str):
            return None
        formatter = _CheckedFormatter(self)
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one mapping")
                kwargs, args = args[0], ()
            return str(_made(formatter.vformat(text, args, kwargs)))

        return wrapper


# -- what the compiled template calls ------------------------------------------------------


def loop_items(items: Iterable[Any]) -> Iterator[Any]:
    """A `{% for %}` loop's iterable, each iteration counted."""
    for item in items:
        budget = _current()
        if budget is not None:
            budget.loop()
        yield item


def output(value: Any) -> Any:
    """What a template writes out, counted against the size of its result."""
    budget = _current()
    if budget is not None:
        budget.add_output(len(value) if isinstance(value, str) else len(str(value)))
    return value


def concat(*parts: Any) -> str:
    """`a ~ b`, with the size of the result checked before it is built."""
    texts = [str(part) for part in parts]
    _refuse_size(sum(len(t) for t in texts))
    joined = "".join(texts)
    budget = _current()
    if budget is not None:
        budget.add_made(len(joined))
    return joined


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: bool(a == b),
    "ne": lambda a, b: bool(a != b),
    "lt": lambda a, b: bool(a < b),
    "lteq": lambda a, b: bool(a <= b),
    "gt": lambda a, b: bool(a > b),
    "gteq": lambda a, b: bool(a >= b),
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}


def compare(first: Any, *rest: Any) -> bool:
    """A chain of comparisons (`a < b < c`, `x in items`), each charged by the size of
    what it goes through. `rest` is operator, operand, operator, operand..."""
    budget = _current()
    left = first
    for op, right in zip(rest[::2], rest[1::2], strict=True):
        if budget is not None:
            budget.charge(max(_work(left), _work(right)))
        if not _COMPARE[op](left, right):
            return False
        left = right
    return True


def _imported(name: str) -> nodes.ImportedName:
    # An imported name cannot be shadowed by a template's own variables.
    return nodes.ImportedName(f"{__name__}.{name}")


class _Guard(NodeTransformer):
    """Route loops, `~` and output through the budget (see loop_items, concat, output)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(
            _imported("loop_items"), [node.iter], [], None, None, lineno=node.lineno
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(_imported("concat"), list(node.nodes), [], None, None, lineno=node.lineno)

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        args: list[nodes.Expr] = [node.expr]
        for operand in node.ops:
            args += [nodes.Const(operand.op, lineno=node.lineno), operand.expr]
        return nodes.Call(_imported("compare"), args, [], None, None, lineno=node.lineno)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        wrapped: list[nodes.Expr] = []
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                child = nodes.Const(child.data, lineno=child.lineno)
            wrapped.append(
                nodes.Call(_imported("output"), [child], [], None, None, lineno=child.lineno)
            )
        node.nodes = wrapped
        return node


def guard(tree: nodes.Template) -> nodes.Template:
    """The template with its loops, concatenations and output under the budget."""
    guarded = _Guard().visit(tree)
    assert isinstance(guarded, nodes.Template)
    return guarded
