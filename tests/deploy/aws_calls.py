"""Which AWS API operations a body of Python code calls, found by reading it (AST, no imports).

A call counts when its receiver is known to be a boto3 client of a service:

- a name or `self.<attr>` annotated with a boto3-stubs client class (`KinesisClient`,
  `SSMClient | Callable[[], SSMClient] | None`, ...), or assigned from something that is;
- `boto3.client("s3", ...)`, `session.client(...)`, or a project factory whose first argument
  names the service (`client("ssm", settings)`);
- the result of a function (anywhere in the scanned code) whose return annotation is a client
  class (`kinesis_client(settings)`), or of calling a client-typed factory (`self._factory(o)`).

For those receivers every attribute that is an operation of the service counts, called or passed
on (`partial(self.client.list_shards, ...)`), and `get_paginator("op")`/`get_waiter` count as op.
Attributes named like an operation of a known service on a receiver that is *not* known are
returned as `unresolved`, so a new client the scanner cannot type fails the test that uses it
instead of slipping through.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

# boto3-stubs client classes -> service name.
STUB_SERVICES = {
    "KinesisClient": "kinesis",
    "DynamoDBClient": "dynamodb",
    "CloudWatchClient": "cloudwatch",
    "CloudWatchLogsClient": "logs",
    "SSMClient": "ssm",
    "S3Client": "s3",
    "GlueClient": "glue",
    "EMRServerlessClient": "emr-serverless",
    "STSClient": "sts",
    # Not a stub: `producer.kinesis_wire`, the lean PutRecords/GetRecords beside a boto3 client.
    # Its methods are named after the operations they call, so they count like a client's.
    "KinesisWire": "kinesis",
}
SERVICES = tuple(sorted(set(STUB_SERVICES.values())))
# Names of functions that make a client from a service name given as first argument.
CLIENT_FACTORIES = {"client", "aws_client"}
NOT_OPERATIONS = {"exceptions", "meta", "close", "can_paginate", "get_paginator", "get_waiter"}


@cache
def operations(service: str) -> frozenset[str]:
    """The service's operations as boto3 method names (`put_records`)."""
    model = botocore.session.get_session().get_service_model(service)
    return frozenset(xform_name(name) for name in model.operation_names)


@cache
def operation_name(service: str, method: str) -> str:
    """`put_records` -> `PutRecords` (the API's own spelling, as in IAM actions)."""
    model = botocore.session.get_session().get_service_model(service)
    for name in model.operation_names:
        if xform_name(name) == method:
            return name
    raise KeyError(f"{service} has no operation {method}")


@dataclass(frozen=True)
class Call:
    service: str
    operation: str  # API spelling, e.g. PutRecords
    path: str
    line: int


@dataclass(frozen=True)
class Unresolved:
    method: str
    receiver: str
    path: str
    line: int


@dataclass
class ScanResult:
    calls: list[Call] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)

    def operations(self) -> set[tuple[str, str]]:
        return {(call.service, call.operation) for call in self.calls}


def annotation_service(node: ast.expr | None) -> str | None:
    """The client service an annotation mentions (`X | None`, `Callable[[], X]`, "X")."""
    if node is None:
        return None
    found = set()
    for child in ast.walk(node):
        name = None
        if isinstance(child, ast.Name):
            name = child.id
        elif isinstance(child, ast.Attribute):
            name = child.attr
        elif isinstance(child, ast.Constant) and isinstance(child.value, str):
            with contextlib.suppress(SyntaxError):
                found.add(annotation_service(ast.parse(child.value, mode="eval").body))
            continue
        if name in STUB_SERVICES:
            found.add(STUB_SERVICES[name])
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ModuleScanner:
    def __init__(self, path: str, tree: ast.Module, factories: dict[str, str]) -> None:
        self.path = path
        self.tree = tree
        self.factories = factories  # function name -> service of the client it returns
        self.result = ScanResult()

    # -- types --------------------------------------------------------------------------------

    def resolve(self, node: ast.expr, scope: dict[str, str], attrs: dict[str, str]) -> str | None:
        if isinstance(node, ast.Name):
            return scope.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return attrs.get(node.attr)
            return None
        if isinstance(node, ast.IfExp):
            return self.resolve(node.body, scope, attrs) or self.resolve(node.orelse, scope, attrs)
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                service = self.resolve(value, scope, attrs)
                if service:
                    return service
            return None
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else None
            attr = func.attr if isinstance(func, ast.Attribute) else None
            first = node.args[0] if node.args else None
            if (name in CLIENT_FACTORIES or attr == "client") and (
                isinstance(first, ast.Constant) and isinstance(first.value, str)
            ):
                return first.value
            if name in self.factories:
                return self.factories[name]
            if attr in self.factories:
                return self.factories[attr]
            return self.resolve(func, scope, attrs)  # a client-typed factory being called
        return None

    def _bind(
        self, target: ast.expr, service: str | None, scope: dict[str, str], attrs: dict[str, str]
    ) -> None:
        if service is None:
            return
        if isinstance(target, ast.Name):
            scope[target.id] = service
        elif (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
        ):
            attrs[target.attr] = service

    def _collect(
        self, body: Iterable[ast.AST], scope: dict[str, str], attrs: dict[str, str]
    ) -> None:
        """Bindings made in `body` (flow-insensitive; nested functions and classes excluded)."""
        stack = list(body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                continue
            if isinstance(node, ast.AnnAssign):
                self._bind(node.target, annotation_service(node.annotation), scope, attrs)
                if node.value is not None:
                    self._bind(node.target, self.resolve(node.value, scope, attrs), scope, attrs)
            elif isinstance(node, ast.Assign):
                service = self.resolve(node.value, scope, attrs)
                for target in node.targets:
                    self._bind(target, service, scope, attrs)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                self._bind(
                    node.optional_vars, self.resolve(node.context_expr, scope, attrs), scope, attrs
                )
            stack.extend(ast.iter_child_nodes(node))

    # -- walk ---------------------------------------------------------------------------------

    def scan(self) -> ScanResult:
        scope: dict[str, str] = {}
        self._collect(self.tree.body, scope, {})
        self._visit_body(self.tree.body, scope, {})
        return self.result

    def _class_attrs(self, cls: ast.ClassDef, scope: dict[str, str]) -> dict[str, str]:
        attrs: dict[str, str] = {}
        for statement in cls.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                self._bind(statement.target, annotation_service(statement.annotation), attrs, attrs)
        for _ in range(2):  # attributes assigned from other attributes settle in two rounds
            for method in cls.body:
                if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                    local = {**scope, **self._params(method)}
                    self._collect(method.body, local, attrs)
        return attrs

    @staticmethod
    def _params(func: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> dict[str, str]:
        params: dict[str, str] = {}
        args = func.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            service = annotation_service(arg.annotation)
            if service:
                params[arg.arg] = service
        return params

    def _visit_body(
        self, body: Iterable[ast.AST], scope: dict[str, str], attrs: dict[str, str]
    ) -> None:
        for node in body:
            self._visit(node, scope, attrs)

    def _visit(self, node: ast.AST, scope: dict[str, str], attrs: dict[str, str]) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.ClassDef):
            class_attrs = self._class_attrs(node, scope)
            self._visit_body(node.body, scope, class_attrs)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            local = {**scope, **self._params(node)}
            self._collect(node.body, local, attrs)
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self._visit(default, scope, attrs)
            self._visit_body(node.body, local, attrs)
            return
        if isinstance(node, ast.Attribute):
            self._attribute(node, scope, attrs)
        elif isinstance(node, ast.Call):
            self._paginator(node, scope, attrs)
        for child in ast.iter_child_nodes(node):
            self._visit(child, scope, attrs)

    def _record(self, service: str, method: str, line: int) -> None:
        try:
            known = operations(service)
        except Exception as exc:  # an unknown service name in client("...")
            raise AssertionError(f"{self.path}:{line}: unknown service {service!r}") from exc
        if method not in known:
            raise AssertionError(f"{self.path}:{line}: {service} has no operation {method!r}")
        self.result.calls.append(Call(service, operation_name(service, method), self.path, line))

    def _attribute(self, node: ast.Attribute, scope: dict[str, str], attrs: dict[str, str]) -> None:
        method = node.attr
        if method in NOT_OPERATIONS:
            return
        service = self.resolve(node.value, scope, attrs)
        if service is not None:
            if method in operations(service):
                self._record(service, method, node.lineno)
            return
        if any(method in operations(known) for known in SERVICES):
            self.result.unresolved.append(
                Unresolved(method, ast.unparse(node.value), self.path, node.lineno)
            )

    def _paginator(self, node: ast.Call, scope: dict[str, str], attrs: dict[str, str]) -> None:
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr in ("get_paginator", "get_waiter")):
            return
        first = node.args[0] if node.args else None
        service = self.resolve(func.value, scope, attrs)
        # (A waiter polls an operation named in its waiter model; the code uses none today.)
        if (
            service
            and func.attr == "get_paginator"
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
        ):
            self._record(service, first.value, node.lineno)


def python_files(root: Path, packages: Iterable[str]) -> list[Path]:
    return sorted(
        path
        for package in packages
        for path in (root / package).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def scan(root: Path, packages: Iterable[str]) -> ScanResult:
    """Every AWS operation the code under `root/<package>` calls."""
    files = python_files(root, packages)
    trees = {path: ast.parse(path.read_text(), filename=str(path)) for path in files}
    factories: dict[str, str] = {}
    for tree in trees.values():
        for func in _functions(tree):
            service = annotation_service(func.returns)
            if service:
                factories[func.name] = service
    result = ScanResult()
    for path, tree in trees.items():
        module = _ModuleScanner(path.relative_to(root).as_posix(), tree, factories).scan()
        result.calls.extend(module.calls)
        result.unresolved.extend(module.unresolved)
    return result
