#!/usr/bin/env python3
"""Offline consistency checks of terraform/ that `terraform validate` would do with providers.

`terraform validate` needs the google provider, which cannot be downloaded here, so this
covers the mistakes it would catch that do not need the provider's schema:
  - every .tf file parses (python-hcl2);
  - every reference resolves: var.X to a variable, local.X to a local, data.T.N to a data
    source, google_T.N to a resource; a moved block moves to a declared resource, and from
    one that is no longer declared;
  - every variable has a description and a type, and is used;
  - dev.tfvars.example and prod.tfvars.example only set declared variables, and set every
    variable that has no default.
Only the standard library and python-hcl2 are used.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover
    sys.exit("check_terraform: python-hcl2 is missing (pip install python-hcl2); .ci/iac-check installs it")

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM = ROOT / "terraform"
EXAMPLES = ["dev.tfvars.example", "prod.tfvars.example"]

REF = re.compile(r"(?<![\w.])(var|local|data|google_[a-z0-9_]+)\.([A-Za-z0-9_]+)(?:\.([A-Za-z0-9_]+))?")


def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def blocks(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def strings(node):
    """Every string in a parsed document (values and keys)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def expressions(text: str):
    """The expression parts of an HCL string as python-hcl2 renders it."""
    if text.startswith("${") and text.endswith("}") and not text.startswith('"'):
        yield text[2:-1]
        return
    # Interpolations inside a quoted template: ${...} with nested braces.
    depth, start = 0, None
    i = 0
    while i < len(text):
        if text.startswith("${", i) or text.startswith("%{", i):
            if depth == 0:
                start = i + 2
            depth += 1
            i += 2
            continue
        if text[i] == "{" and depth:
            depth += 1
        elif text[i] == "}" and depth:
            depth -= 1
            if depth == 0 and start is not None:
                yield text[start:i]
                start = None
        i += 1


def resource_address(value) -> str:
    """google_T.N of a moved block's from/to ("${google_T.N[\"key\"]}" -> google_T.N)."""
    text = unquote(value) if isinstance(value, str) else ""
    match = re.fullmatch(r"\$\{(google_[a-z0-9_]+\.[A-Za-z0-9_]+)(?:\[.*\])?\}", text)
    return match.group(1) if match else text


def main() -> int:
    errors: list[str] = []
    docs = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        try:
            with path.open() as handle:
                docs[path.name] = hcl2.load(handle)
        except Exception as exc:  # noqa: BLE001 - any parse error is the finding
            errors.append(f"{path.name}: does not parse: {exc}")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1

    variables: dict[str, dict] = {}
    local_names: set[str] = set()
    resources: set[str] = set()
    data_sources: set[str] = set()
    for name, doc in docs.items():
        for block in blocks(doc.get("variable")):
            for var_name, body in block.items():
                if var_name.startswith("__"):
                    continue
                var_name = unquote(var_name)
                if var_name in variables:
                    errors.append(f"{name}: variable {var_name} declared twice")
                variables[var_name] = body
        for block in blocks(doc.get("locals")):
            for local_name in block:
                if not local_name.startswith("__"):
                    if local_name in local_names:
                        errors.append(f"{name}: local {local_name} declared twice")
                    local_names.add(local_name)
        for kind, into in (("resource", resources), ("data", data_sources)):
            for block in blocks(doc.get(kind)):
                for rtype, instances in block.items():
                    for rname in instances:
                        if rname.startswith("__"):
                            continue
                        address = f"{unquote(rtype)}.{unquote(rname)}"
                        if address in into:
                            errors.append(f"{name}: {kind} {address} declared twice")
                        into.add(address)

    used_vars: set[str] = set()
    for name, doc in docs.items():
        # A moved block's `from` names an address that no longer exists, by design.
        checked = {key: value for key, value in doc.items() if key != "moved"}
        for block in blocks(doc.get("moved")):
            if f"{resource_address(block.get('to'))}" not in resources:
                errors.append(f"{name}: moved to {unquote(block.get('to'))}, which is not declared")
            # (Moving a single instance to an instance of the same resource, now with for_each,
            # is the one move whose `from` address stays declared.)
            same_resource = resource_address(block.get("from")) == resource_address(block.get("to"))
            if resource_address(block.get("from")) in resources and "[" not in str(block.get("from")) \
                    and not same_resource:
                errors.append(f"{name}: moved from {unquote(block.get('from'))}, which is still declared")
        for text in strings(checked):
            for expression in expressions(text):
                for kind, first, second in REF.findall(expression):
                    if kind == "var":
                        used_vars.add(first)
                        if first not in variables:
                            errors.append(f"{name}: var.{first} is not declared")
                    elif kind == "local":
                        if first not in local_names:
                            errors.append(f"{name}: local.{first} is not declared")
                    elif kind == "data":
                        if f"{first}.{second}" not in data_sources:
                            errors.append(f"{name}: data.{first}.{second} is not declared")
                    elif f"{kind}.{first}" not in resources:
                        errors.append(f"{name}: {kind}.{first} is not declared")

    for var_name, body in sorted(variables.items()):
        if not unquote(body.get("description", "")).strip():
            errors.append(f"variable {var_name} has no description")
        if "type" not in body:
            errors.append(f"variable {var_name} has no type")
        if var_name not in used_vars:
            errors.append(f"variable {var_name} is declared but never used")

    required = {n for n, body in variables.items() if "default" not in body}
    for example in EXAMPLES:
        path = TERRAFORM / example
        if not path.exists():
            errors.append(f"{example} is missing")
            continue
        with path.open() as handle:
            values = {unquote(k) for k in hcl2.load(handle) if not k.startswith("__")}
        for key in sorted(values - set(variables)):
            errors.append(f"{example}: sets {key}, which is not a declared variable")
        for key in sorted(required - values):
            errors.append(f"{example}: does not set {key}, which has no default")

    print(
        f"terraform/: {len(docs)} files, {len(resources)} resources, {len(data_sources)} data sources, "
        f"{len(variables)} variables, {len(local_names)} locals; references, variables and tfvars examples checked"
    )
    errors = list(dict.fromkeys(errors))
    if errors:
        print(f"FAILED: {len(errors)} problem(s)", file=sys.stderr)
        for error in errors:
            print(f"  - {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
