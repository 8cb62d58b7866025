"""Every field of the published JSON Schemas has a description, so that editors show the operator
what a key does (its unit, its default) as a tooltip: the top-level keys, the fields of every
nested model in $defs, and any object schema inside an anyOf, items or map value."""

from __future__ import annotations

import json

import pytest

from conftest import REPO

# where a JSON Schema holds further schemas: one, a list of them, or a map of names to them
ONE = ("items", "additionalProperties", "not")
MANY = ("anyOf", "allOf", "oneOf", "prefixItems")
NAMED = ("$defs", "patternProperties")


def undescribed(schema, path: str = "#") -> list[str]:
    """JSON pointers of the properties without a non-empty description, anywhere in schema."""
    if not isinstance(schema, dict):
        return []
    found = []
    for name, sub in schema.get("properties", {}).items():
        where = f"{path}/properties/{name}"
        if not str(sub.get("description", "")).strip():
            found.append(where)
        found += undescribed(sub, where)
    for key in ONE:
        found += undescribed(schema.get(key), f"{path}/{key}")
    for key in MANY:
        for i, sub in enumerate(schema.get(key, [])):
            found += undescribed(sub, f"{path}/{key}/{i}")
    for key in NAMED:
        for name, sub in schema.get(key, {}).items():
            found += undescribed(sub, f"{path}/{key}/{name}")
    return found


@pytest.mark.parametrize("kind", ["host", "cluster"])
def test_every_field_of_the_published_schema_has_a_description(kind):
    schema = json.loads((REPO / f"schema/{kind}.schema.json").read_text())
    assert len(schema["$defs"]) >= 5, "the walk must reach the nested models"
    missing = undescribed(schema)
    assert not missing, f"schema/{kind}.schema.json: fields without a description: {missing}"


def test_the_walk_finds_a_missing_description_at_any_depth():
    """The check itself: an undescribed field at the top, in $defs, inside anyOf and in a map's
    values is found; a property named `properties` is a field, not a schema keyword."""
    described = {"type": "integer", "description": "a port"}
    schema = {
        "properties": {"name": {"type": "string"}, "port": described,
                       "properties": {"type": "object", "description": "ZFS properties",
                                      "additionalProperties": {"type": "string"}}},
        "$defs": {"Pool": {"properties": {"ashift": {"type": "integer", "description": " "}}},
                  "Vip": {"anyOf": [{"properties": {"prefix": {"type": "integer"}}}]},
                  "Map": {"additionalProperties": {"properties": {"x": {}}}}},
    }
    assert undescribed(schema) == ["#/properties/name", "#/$defs/Pool/properties/ashift",
                                   "#/$defs/Vip/anyOf/0/properties/prefix",
                                   "#/$defs/Map/additionalProperties/properties/x"]
