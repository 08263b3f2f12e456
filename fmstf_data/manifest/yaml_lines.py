"""YAML with line numbers for manifests: the tree as plain values plus the 1-based line of every field.

:class:`ManifestDocument` composes the text with ``yaml.compose`` and the safe loader only (never ``yaml.load``),
walks the nodes (merge keys ``<<:`` included; duplicate keys refused) and records where each field
(``pairs[2].split``) starts, so that :mod:`fmstf_data.manifest.load` can raise a
:class:`~fmstf_data.errors.ManifestError` naming the file, the line and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from fmstf_data.errors import ManifestError
from fmstf_data.manifest.schema import type_name as _type_name


class ManifestDocument:
    """The YAML tree as plain values, plus the line of every field (``pairs[2].split`` -> 14)."""

    def __init__(self, text: str, path: Path | None):
        self.path = path
        self.lines: dict[str, int] = {}
        self.raw: dict[str, str] = {}  # plain (unquoted) scalars as written, for string fields
        self._loader = yaml.SafeLoader("")
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            self.root = None if root is None else self._value(root, "")
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + 1 if mark is not None else None
            problem = " ".join(part for part in (error.context, error.problem) if part)
            raise ManifestError(f"invalid YAML: {problem}", path=self._path_text(), line=line) from None
        except yaml.YAMLError as error:
            raise ManifestError(f"invalid YAML: {error}", path=self._path_text()) from None

    def _path_text(self) -> str | None:
        return None if self.path is None else str(self.path)

    def _value(self, node: yaml.Node, where: str) -> Any:
        if isinstance(node, yaml.MappingNode):
            explicit = {id(key_node) for key_node, _ in node.value}
            self._loader.flatten_mapping(node)  # YAML merge keys (<<: *base): merged entries come first
            result: dict[str, Any] = {}
            merged_keys: set[str] = set()
            for key_node, value_node in node.value:
                key = self._loader.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    raise self.error(f"keys must be strings, got {_type_name(key)} {key!r}", where,
                                     line=key_node.start_mark.line + 1)
                child = f"{where}.{key}" if where else key
                if id(key_node) not in explicit:
                    merged_keys.add(key)
                elif key in result and key not in merged_keys:
                    raise self.error(f"duplicate key {key!r} (first at line {self.lines[child]})", child,
                                     line=key_node.start_mark.line + 1)
                else:
                    merged_keys.discard(key)  # an explicit key overrides a merged one
                self.lines[child] = key_node.start_mark.line + 1
                result[key] = self._value(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                child = f"{where}[{index}]"
                self.lines[child] = item.start_mark.line + 1
                items.append(self._value(item, child))
            return items
        if node.style is None:
            self.raw[where] = node.value
        return self._loader.construct_object(node, deep=True)

    def line_of(self, where: str) -> int | None:
        """Line of ``where`` or of its nearest enclosing field."""
        while where:
            if where in self.lines:
                return self.lines[where]
            where = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", where)
        return 1

    def error(self, message: str, where: str, *, line: int | None = None) -> ManifestError:
        return ManifestError(message, path=self._path_text(), line=line if line is not None else self.line_of(where),
                             field=where or None)
