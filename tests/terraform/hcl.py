"""Read terraform/ with python-hcl2 and resolve the simple ``local.*`` references back to
fraudops/core/platform.yaml, so tests can compare the names Terraform will use with the YAML."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import hcl2

from fraudops.core.platform import PLATFORM_FILE, platform
from tests.paths import REPO

TERRAFORM_DIR = REPO / "terraform"
PLATFORM_LOCAL = '${yamldecode(file("${path.module}/../fraudops/core/platform.yaml"))}'
_LOCAL_REF = re.compile(r"\$\{local\.([A-Za-z_][\w.]*)\}")
_OPTIONAL_ATTRIBUTE = re.compile(r'"(\w+)": "\$\{optional\((\w+), ("[^"]*"|[^)]*)\)\}"')


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    body: dict[str, Any]
    file: str

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"


@cache
def parsed_files() -> dict[str, dict[str, Any]]:
    files = {}
    for path in sorted(TERRAFORM_DIR.glob("*.tf")):
        with path.open() as handle:
            files[path.name] = hcl2.load(handle)
    return files


def blocks(kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(file name, block)`` for every top-level block of one kind (variable, output, ...)."""
    for file_name, document in parsed_files().items():
        for block in document.get(kind, []):
            yield file_name, block


def resources() -> list[Resource]:
    found = []
    for file_name, block in blocks("resource"):
        for resource_type, instances in block.items():
            for name, body in instances.items():
                found.append(Resource(resource_type, name, body, file_name))
    return found


def resource(address: str) -> Resource:
    matches = [r for r in resources() if r.address == address]
    assert len(matches) == 1, f"expected one {address}, found {len(matches)}"
    return matches[0]


def variables() -> dict[str, dict[str, Any]]:
    return {name: body for _, block in blocks("variable") for name, body in block.items()}


def outputs() -> dict[str, dict[str, Any]]:
    return {name: body for _, block in blocks("output") for name, body in block.items()}


def locals_() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for _, block in blocks("locals"):
        duplicated = merged.keys() & block.keys()
        assert not duplicated, f"locals defined twice: {duplicated}"
        merged.update(block)
    return merged


def object_defaults(variable: str) -> dict[str, Any]:
    """Defaults of an ``object({name = optional(type, default)})`` variable type."""
    defaults: dict[str, Any] = {}
    for name, kind, default in _OPTIONAL_ATTRIBUTE.findall(variables()[variable]["type"]):
        defaults[name] = default.strip('"') if kind == "string" else float(default)
    return defaults


def one(block_list: list[dict[str, Any]]) -> dict[str, Any]:
    """The single nested block hcl2 returns as a one-element list."""
    assert isinstance(block_list, list) and len(block_list) == 1, block_list
    return block_list[0]


def _lookup(path: str) -> Any:
    head, *rest = path.split(".")
    defined = locals_()
    assert head in defined, f"local.{head} is not defined"
    if head == "platform":
        assert defined[head] == PLATFORM_LOCAL, "local.platform must yamldecode platform.yaml"
        assert (TERRAFORM_DIR / "../fraudops/core/platform.yaml").resolve() == PLATFORM_FILE
        value: Any = platform()
    else:
        value = resolve(defined[head])
    for part in rest:
        assert isinstance(value, dict) and part in value, f"local.{path} does not resolve"
        value = value[part]
    return value


def resolve(value: Any) -> Any:
    """The value with every ``${local.a.b}`` reference replaced by what it resolves to.

    A string that is exactly one reference becomes the referenced value (a dict, a list, a
    string); references inside a longer string are substituted as text. Anything else that is
    not a local reference (var.*, resource attributes, functions) is left as written.
    """
    if isinstance(value, dict):
        return {resolve(key): resolve(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item) for item in value]
    if not isinstance(value, str):
        return value
    whole = _LOCAL_REF.fullmatch(value.replace("${(", "${").replace(")}", "}"))
    if whole:
        return _lookup(whole.group(1))
    return _LOCAL_REF.sub(lambda match: str(_lookup(match.group(1))), value)


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(attribute path, string)`` for every string literal or expression under ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value
