"""docs/spec-reference.md: every spec field with its type, default and description, generated
from the schema (`pitr-bundle schema --markdown`), so the reference cannot drift from what
validate accepts (tests/test_build.py checks the published file is current)."""

from __future__ import annotations

import json

from generator.schema import MODELS

HEADER = """# Spec reference

Every field of the two spec kinds, generated from the JSON Schemas in `schema/` (the
descriptions editors show as tooltips): `pitr-bundle schema --markdown > docs/spec-reference.md`.
Do not edit by hand. A host spec lives in `specs/hosts/<name>.yaml`, a cluster spec in
`specs/clusters/<name>.yaml`; `pitr-bundle validate specs/` names any problem as
`file:line: field: message`.
"""


def _type_of(node: dict) -> str:
    if "$ref" in node:
        return node["$ref"].rsplit("/", 1)[1]
    if "anyOf" in node:
        kinds = [_type_of(n) for n in node["anyOf"] if n.get("type") != "null"]
        return " or ".join(kinds) + (" (or null)" if any(n.get("type") == "null" for n in node["anyOf"]) else "")
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    if "const" in node:
        return json.dumps(node["const"])
    if node.get("type") == "array":
        return f"list of {_type_of(node.get('items', {}))}"
    if node.get("type") == "object" and "additionalProperties" in node:
        return f"map of {_type_of(node['additionalProperties']) if isinstance(node['additionalProperties'], dict) else 'values'}"
    return node.get("type", "any")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(props: dict, required: list, prefix: str, defs: dict) -> list[str]:
    rows = []
    for name, node in props.items():
        path = f"{prefix}{name}"
        default = "required" if name in required else (
            f"`{json.dumps(node['default'])}`" if "default" in node else "none")
        description = node.get("description", "")
        rows.append(f"| `{path}` | {_cell(_type_of(node))} | {_cell(default)} | {_cell(description)} |")
        target = node.get("$ref") or next((n["$ref"] for n in node.get("anyOf", []) if "$ref" in n), None)
        if node.get("type") == "array" and "$ref" in node.get("items", {}):
            target, path = node["items"]["$ref"], path + "[]"
        if target:
            sub = defs[target.rsplit("/", 1)[1]]
            rows += _rows(sub.get("properties", {}), sub.get("required", []), f"{path}.", defs)
    return rows


def markdown() -> str:
    parts = [HEADER]
    for kind, title in (("host", "Host spec (`specs/hosts/<name>.yaml`)"),
                        ("cluster", "Cluster spec (`specs/clusters/<name>.yaml`)")):
        schema = MODELS[kind].model_json_schema()
        defs = schema.get("$defs", {})
        parts.append(f"\n## {title}\n\n| field | type | default | what it does |\n|---|---|---|---|")
        parts += _rows(schema["properties"], schema.get("required", []), "", defs)
    return "\n".join(parts) + "\n"
