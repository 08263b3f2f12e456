"""YAML with line numbers for manifests: the tree as plain values plus the 1-based line of every field.

:class:`ManifestDocument` composes the text with ``yaml.compose`` and the safe loader only (never ``yaml.load``),
walks the nodes (merge keys ``<<:`` included; duplicate keys refused) and records where each field
(``pairs[2].split``) starts, so that :mod:`fmstf_data.manifest.load` can raise a
:class:`~fmstf_data.errors.ManifestError` naming the file, the line and the field.

Limits (a manifest is a list of video pairs, not a data file): at most :data:`MAX_MANIFEST_BYTES` characters of text, nesting at
most :data:`MAX_DEPTH` deep, and anchors/aliases expanding to at most :data:`MAX_ALIAS_EXPANSION` times the
document's own nodes (plus :data:`ALIAS_ALLOWANCE`), so a "billion laughs" document is refused in milliseconds. A
value that YAML's own constructors refuse (``!!int abc``, an integer of more than 4,300 digits) is a
:class:`~fmstf_data.errors.ManifestError` with its line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from fmstf_data.errors import ManifestError
from fmstf_data.manifest.schema import type_name as _type_name

#: the largest manifest text accepted (a 100,000-pair manifest is about 15 MB)
MAX_MANIFEST_BYTES = 64 << 20
#: the deepest nesting accepted (a manifest needs 4)
MAX_DEPTH = 64
#: aliases may expand the document to this many times its own nodes, plus ALIAS_ALLOWANCE
MAX_ALIAS_EXPANSION = 20
ALIAS_ALLOWANCE = 100_000


def _distinct_nodes(root: yaml.Node) -> int:
    """Nodes of the composed document, each counted once however many aliases point at it (iterative)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                stack += (key_node, value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return len(seen)


class ManifestDocument:
    """The YAML tree as plain values, plus the line of every field (``pairs[2].split`` -> 14)."""

    def __init__(self, text: str, path: Path | None):
        self.path = path
        self.lines: dict[str, int] = {}
        self.raw: dict[str, str] = {}  # plain (unquoted) scalars as written, for string fields
        self._loader = yaml.SafeLoader("")
        if len(text) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"the manifest is {len(text):,} characters; at most {MAX_MANIFEST_BYTES:,} are "
                                f"accepted (split it into several manifests)", path=self._path_text())
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            if root is not None:
                self._budget = MAX_ALIAS_EXPANSION * _distinct_nodes(root) + ALIAS_ALLOWANCE
            self.root = None if root is None else self._value(root, "")
        except RecursionError:
            raise ManifestError(f"the YAML nests too deeply (a manifest needs 4 levels; at most {MAX_DEPTH} are "
                                f"accepted)", path=self._path_text()) from None
        except yaml.reader.ReaderError as error:  # a character YAML does not allow, e.g. NUL: say where
            line = text.count("\n", 0, error.position) + 1
            column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
            code = error.character if isinstance(error.character, int) else ord(error.character[:1] or "\0")
            raise ManifestError(f"character #x{code:04x} at column {column} is not allowed in YAML "
                                f"(remove it)", path=self._path_text(), line=line) from None
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + 1 if mark is not None else None
            problem = " ".join(part for part in (error.context, error.problem) if part)
            raise ManifestError(f"invalid YAML: {problem}", path=self._path_text(), line=line) from None
        except yaml.YAMLError as error:
            raise ManifestError(f"invalid YAML: {error}", path=self._path_text()) from None

    def _path_text(self) -> str | None:
        return None if self.path is None else str(self.path)

    def _value(self, node: yaml.Node, where: str, depth: int = 0) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise self.error(f"anchors and aliases expand this document to more than {MAX_ALIAS_EXPANSION} times "
                             f"its size; refused (a YAML alias bomb?)", where, line=node.start_mark.line + 1)
        if depth > MAX_DEPTH:
            raise self.error(f"the YAML nests more than {MAX_DEPTH} levels deep (a manifest needs 4)", where,
                             line=node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            explicit = {id(key_node) for key_node, _ in node.value}
            self._loader.flatten_mapping(node)  # YAML merge keys (<<: *base): merged entries come first
            result: dict[str, Any] = {}
            merged_keys: set[str] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.error("keys must be strings, got a " + ("mapping" if isinstance(
                        key_node, yaml.MappingNode) else "list"), where, line=key_node.start_mark.line + 1)
                key = self._scalar(key_node, where)
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
                result[key] = self._value(value_node, child, depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                child = f"{where}[{index}]"
                self.lines[child] = item.start_mark.line + 1
                items.append(self._value(item, child, depth + 1))
            return items
        if node.style is None:
            self.raw[where] = node.value
        return self._scalar(node, where)

    def _scalar(self, node: yaml.Node, where: str) -> Any:
        """A scalar through the safe loader's constructors; a value they refuse is our error, with its line."""
        try:
            return self._loader.construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError, IndexError) as error:  # !!int abc or empty, 5,001 digits, ...
            tag = node.tag.rsplit(":", 1)[-1]
            raise self.error(f"cannot read {node.value[:40]!r}{'...' if len(node.value) > 40 else ''} as {tag}: "
                             f"{str(error).split(';')[0][:160]}", where, line=node.start_mark.line + 1) from None

    def line_of(self, where: str) -> int | None:
        """Line of ``where`` or of its nearest enclosing field (1 when none of them is in the document, e.g. a
        missing top-level key)."""
        while where:
            if where in self.lines:
                return self.lines[where]
            enclosing = re.sub(r"(\.[^.\[\]]+|\[\d+\]|^[^.\[\]]+)$", "", where)
            if enclosing == where:  # nothing left to strip: never loop
                break
            where = enclosing
        return 1

    def error(self, message: str, where: str, *, line: int | None = None) -> ManifestError:
        return ManifestError(message, path=self._path_text(), line=line if line is not None else self.line_of(where),
                             field=where or None)
