"""One derived model: what the templates, the MANIFEST facts and the README need of the specs
is computed once (generator/model.py) and then only read. Proven by changing values in the
model and finding each change both in the rendered scripts and in the facts the shipped suites
read; and by the plan and the bundle calling none of the functions that derive them."""

from __future__ import annotations

import ast
import dataclasses
import json

import pytest

from conftest import EXAMPLE_SPECS, REPO
from generator.bundle import build_bundle, bundle_of
from generator.model import derive
from generator.validate import load_and_validate

# what derives values from the specs: only generator/model.py may call these
DERIVING = {"paths_of", "restore_port", "drill_port", "drill_state_file",
            "configure_for_backup_host", "standby_settings", "recovery_settings", "wal_dir",
            "receiver_title", "pool_layout", "datasets_of", "vip_routes", "archive_dir",
            "derive_cluster"}


def _files(model) -> dict[str, bytes]:
    return {f.path: f.content for f in bundle_of(model)}


def test_scripts_and_manifest_facts_read_the_same_model():
    model = derive(load_and_validate(EXAMPLE_SPECS)[0])
    first = model.clusters[0]
    changed = dataclasses.replace(
        first, restore_port=43210,
        paths=dataclasses.replace(first.paths, archive="/elsewhere/arch"),
        configure_args=(*first.configure_args, "--with-model-test"),
        drill=dataclasses.replace(first.drill, port=43299))
    files = _files(dataclasses.replace(model, clusters=(changed, *model.clusters[1:])))
    name = first.name
    facts = json.loads(files["MANIFEST.json"])["facts"]
    cluster = next(c for c in facts["clusters"] if c["name"] == name)

    assert cluster["restore_port"] == 43210
    assert b"readonly DEFAULT_PORT=43210\n" in files[f"clusters/{name}/restore.sh"]
    assert cluster["drill"]["port"] == 43299
    assert b"readonly FIRST_PORT=43299\n" in files[f"clusters/{name}/drill.sh"]
    assert cluster["paths"]["archive"] == "/elsewhere/arch"
    assert b" /elsewhere/arch pitr- " in files["host/monitor.sh"]
    assert cluster["configure_args"][-1] == "--with-model-test"
    install = next(p for p in files if p.startswith(f"clusters/{name}/35-"))
    assert b"--with-model-test" in files[install]


def test_the_model_is_read_only():
    model = derive(load_and_validate(EXAMPLE_SPECS)[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.clusters[0].restore_port = 1  # type: ignore[misc]
    # and deriving twice gives the same bundle: nothing keeps state between builds
    host = load_and_validate(EXAMPLE_SPECS)[0]
    assert build_bundle(host) == bundle_of(model)


@pytest.mark.parametrize("module", ["plan", "bundle", "render", "ansible", "audit"])
def test_only_the_model_derives_values_from_the_specs(module):
    tree = ast.parse((REPO / "generator" / f"{module}.py").read_text())
    called = {node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
              for node in ast.walk(tree) if isinstance(node, ast.Call)
              and isinstance(node.func, (ast.Attribute, ast.Name))}
    assert not called & DERIVING, f"generator/{module}.py derives {called & DERIVING} itself"
