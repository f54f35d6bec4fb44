"""IAM conditions on Cloud Storage grants, evaluated as IAM evaluates them.

The subset of CEL bucket conditions use: `resource.name` / `resource.type` with `startsWith`,
`endsWith` and `==`, `api.getAttribute("storage.googleapis.com/objectListPrefix", "")`, `!`,
`&&`, `||` and parentheses. Which resource IAM checks is what matters: reading an object checks
`projects/_/buckets/B/objects/NAME` (type `storage.googleapis.com/Object`); listing checks the
bucket `projects/_/buckets/B` (type `storage.googleapis.com/Bucket`) with the listed prefix as the
`objectListPrefix` attribute (cloud.google.com/iam/docs/conditions-attribute-reference, resource
name and list prefix attributes; certain). So a condition on object names never holds for a
listing: the grant reads objects but cannot list them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

LIST_PREFIX = "storage.googleapis.com/objectListPrefix"
OBJECT = "storage.googleapis.com/Object"
BUCKET = "storage.googleapis.com/Bucket"
# Roles that include storage.objects.get and storage.objects.list.
READ_ROLES = frozenset(
    {"roles/storage.objectViewer", "roles/storage.objectUser", "roles/storage.objectAdmin",
     "roles/storage.admin"}
)  # fmt: skip


class Unsupported(ValueError):
    """An expression outside the evaluated subset."""


@dataclass(frozen=True)
class Request:
    """What IAM evaluates a condition against."""

    type: str
    name: str
    attributes: dict[str, str]

    @classmethod
    def read(cls, bucket: str, object_name: str) -> Request:
        return cls(OBJECT, f"projects/_/buckets/{bucket}/objects/{object_name}", {})

    @classmethod
    def listing(cls, bucket: str, prefix: str) -> Request:
        return cls(BUCKET, f"projects/_/buckets/{bucket}", {LIST_PREFIX: prefix})


_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>&&|\|\||==|!=|[!().,])|(?P<id>[A-Za-z_][\w]*))'
)


def _tokens(expression: str) -> list[str]:
    tokens, pos = [], 0
    expression = expression.strip()
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if not match or match.end() == pos:
            raise Unsupported(f"cannot read {expression[pos : pos + 20]!r}")
        tokens.append(match.group().strip())
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, expression: str, request: Request):
        self.tokens, self.i, self.request = _tokens(expression), 0, request

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise Unsupported(f"expected {expected or 'more'}, got {token!r}")
        self.i += 1
        return token

    def parse(self) -> bool:
        value = self.disjunction()
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()!r}")
        return value

    def disjunction(self) -> bool:
        return self._chain("||", self.conjunction, any)

    def conjunction(self) -> bool:
        return self._chain("&&", self.unary, all)

    def _chain(self, operator: str, operand: Callable[[], bool], combine: Callable) -> bool:
        """`operand (operator operand)*`, every operand read (the whole expression is parsed)."""
        values = [operand()]
        while self.peek() == operator:
            self.take()
            values.append(operand())
        return combine(values)

    def unary(self) -> bool:
        if self.peek() == "!":
            self.take()
            return not self.unary()
        if self.peek() == "(":
            self.take()
            value = self.disjunction()
            self.take(")")
            return value
        return self.predicate()

    def predicate(self) -> bool:
        left = self.term()
        op = self.take()
        if op in ("==", "!="):
            right = self.literal()
            return (left == right) if op == "==" else (left != right)
        if op == ".":
            method = self.take()
            self.take("(")
            argument = self.literal()
            self.take(")")
            if method == "startsWith":
                return left.startswith(argument)
            if method == "endsWith":
                return left.endswith(argument)
            raise Unsupported(f"method {method}")
        raise Unsupported(f"operator {op}")

    def term(self) -> str:
        head = self.take()
        self.take(".")
        field = self.take()
        if head == "resource" and field in ("name", "type"):
            return self.request.name if field == "name" else self.request.type
        if head == "api" and field == "getAttribute":
            self.take("(")
            key = self.literal()
            self.take(",")
            default = self.literal()
            self.take(")")
            return self.request.attributes.get(key, default)
        raise Unsupported(f"{head}.{field}")

    def literal(self) -> str:
        token = self.take()
        if not token.startswith('"'):
            raise Unsupported(f"expected a string, got {token!r}")
        return token[1:-1].replace('\\"', '"')


def holds(expression: str, request: Request) -> bool:
    """Whether the condition grants for this request (Unsupported outside the subset)."""
    return _Parser(expression, request).parse()


def literals(expression: str) -> list[str]:
    return [token[1:-1] for token in _tokens(expression) if token.startswith('"')]


def dead_operations(expression: str, bucket: str) -> list[str]:
    """The operations ('read objects', 'list objects') a conditional read grant can never do.

    Requests are tried on the object names and list prefixes the condition's own literals imply
    (plus the bucket's root): if none holds, that part of the grant is dead.
    """
    root = f"projects/_/buckets/{bucket}/objects/"
    prefixes = {""} | {text[len(root) :] for text in literals(expression) if text.startswith(root)}
    prefixes |= {text for text in literals(expression) if "/" in text and "buckets" not in text}
    dead = []
    if not any(holds(expression, Request.read(bucket, p + "x")) for p in prefixes):
        dead.append("read objects")
    if not any(holds(expression, Request.listing(bucket, p)) for p in prefixes):
        dead.append("list objects")
    return dead
