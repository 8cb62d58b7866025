"""Load YAML specs keeping the line of every key, so errors can point at file:line:field."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.errors import SpecProblem

@dataclass
class SpecFile:
    """One YAML spec as read from disk: its data, where each key stands, and its hash."""

    path: Path  # as found on disk
    display: str  # how errors name it: the specs folder as the user gave it, plus the file
    name: str  # how provenance headers name it: relative to the specs folder (reproducible)
    kind: str  # "host" or "cluster"
    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)
    sha256: str = ""

    def line_of(self, key_path: tuple) -> int | None:
        """Line of the deepest known prefix of key_path (pydantic locations may go deeper)."""
        key_path = tuple(key_path)
        while key_path:
            if key_path in self.lines:
                return self.lines[key_path]
            key_path = key_path[:-1]
        return self.lines.get((), 1)

    def problem(self, key_path: tuple, message: str) -> SpecProblem:
        field_name = ".".join(str(k) for k in key_path)
        return SpecProblem(self.display, self.line_of(key_path), field_name, message)


PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


class _Loader(yaml.SafeLoader):
    """SafeLoader: no arbitrary Python objects, whatever tags a spec carries."""


def _to_python(node: yaml.Node, loader: _Loader, at: tuple, spec: SpecFile,
               problems: list[SpecProblem]) -> Any:
    spec.lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in PLAIN_TAGS:
        # a tag such as !!python/object/apply asks for code to run: never
        raise yaml.MarkedYAMLError(problem=f"tag {node.tag} is not allowed",
                                   problem_mark=node.start_mark)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int)):
                problems.append(SpecProblem(spec.display, key_node.start_mark.line + 1,
                                            ".".join(map(str, at)), "keys must be plain names"))
                continue
            key = str(key)
            if key in result:
                problems.append(SpecProblem(spec.display, key_node.start_mark.line + 1,
                                            ".".join(map(str, at + (key,))), "duplicate key"))
                continue
            spec.lines[at + (key,)] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, loader, at + (key,), spec, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, loader, at + (i,), spec, problems)
                for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_spec(path: Path, display: str, name: str, kind: str,
              problems: list[SpecProblem]) -> SpecFile | None:
    """Read one spec; on failure add a located problem and return None."""
    raw = path.read_bytes()
    spec = SpecFile(path=path, display=display, name=name, kind=kind, data=None,
                    sha256=hashlib.sha256(raw).hexdigest())
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(SpecProblem(display, None, "", f"not UTF-8 text ({exc.reason})"))
        return None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            problems.append(SpecProblem(display, 1, "", "the file is empty"))
            return None
        spec.data = _to_python(node, loader, (), spec, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problems.append(SpecProblem(display, line, "", f"invalid YAML: {exc.problem or exc}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(SpecProblem(display, None, "", f"invalid YAML: {exc}"))
        return None
    finally:
        loader.dispose()
    if not isinstance(spec.data, dict):
        problems.append(SpecProblem(display, 1, "", "a spec must be a mapping of keys to values"))
        return None
    return spec


SPEC_FOLDERS = {"hosts": "host", "clusters": "cluster"}


def find_spec_files(specs_dir: Path) -> list[tuple[Path, str, str]]:
    """(path, name relative to specs_dir, kind) of every spec in specs_dir/hosts and /clusters."""
    found = []
    for folder, kind in SPEC_FOLDERS.items():
        base = specs_dir / folder
        if not base.is_dir():
            continue
        for path in sorted(base.iterdir()):
            if path.suffix in (".yaml", ".yml") and path.is_file():
                found.append((path, f"{folder}/{path.name}", kind))
    return found


def load_specs(specs_dir: Path, problems: list[SpecProblem]) -> list[SpecFile]:
    specs = []
    for path, name, kind in find_spec_files(specs_dir):
        display = os.path.normpath(os.path.join(str(specs_dir), name))
        spec = load_spec(path, display, name, kind, problems)
        if spec is not None:
            specs.append(spec)
    return specs
