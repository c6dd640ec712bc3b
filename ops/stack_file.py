"""Edits one value of a stack file (`Pulumi.<stack>.yaml`) in its text: every other byte stays as it was.

`pulumi config set` parses the whole file and writes it out again: comments stay, but every other line may change
(`80` becomes `"80"`, a comment's alignment goes). Here the file is parsed only to find where a value's text lies
(PyYAML's node marks); the edit replaces that text, or inserts or removes whole lines of one entry. A value inside a
flow collection (`{mode: off}`) or a list is not reached in place: the nearest enclosing entry of a block mapping is
written again, its other values (ciphertexts included) as they were.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from ops.errors import OpsError

REMOVE = object()   # the value that removes a key


class Dumper(yaml.SafeDumper):
    """Values as Pulumi reads them back; a string with a line break double-quoted on one line (`"a\\nb"`), so that
    it never spans lines whose indentation would then matter."""


Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style='"' if "\n" in text else None))


def dumped(value: Any) -> str:
    return yaml.dump(value, Dumper=Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True,
                     width=math.inf)


def entry_text(key: str, value: Any, indent: int) -> str:
    """`key: value` as block YAML lines, indented to sit in a mapping whose keys start at column `indent`."""
    return "".join(" " * indent + line if line.strip() else line
                   for line in dumped({key: value}).splitlines(keepends=True))


def is_secure(node: yaml.Node) -> bool:
    return isinstance(node, yaml.MappingNode) and [key.value for key, _ in node.value] == ["secure"]


def is_block_mapping(node: yaml.Node) -> bool:
    """A mapping whose entries are lines of their own; a `secure:` value is one value, not a mapping to edit."""
    return isinstance(node, yaml.MappingNode) and not node.flow_style and bool(node.value) and not is_secure(node)


def entry(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    return next(((k, v) for k, v in mapping.value if k.value == key), None)


def last_character(text: str, node: yaml.Node) -> int:
    """Where the value's own text ends. A block collection's end mark lies beyond the comment lines that follow
    it (they belong to the next entry): its last value's text ends it."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style:
        return last_character(text, node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style:
        return last_character(text, node.value[-1])
    return len(text[:node.end_mark.index].rstrip()) - 1   # a block scalar's (`|`) end takes in blank lines


def line_end(text: str, index: int) -> int:
    """The index just past the line that holds `index` (its newline included)."""
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def line_start(text: str, node: yaml.Node) -> int:
    return node.start_mark.index - node.start_mark.column


def wrapped(path: tuple[str, ...], value: Any) -> Any:
    """`value` under the keys of `path`: {"a": {"b": value}} for ("a", "b")."""
    for part in reversed(path):
        value = {part: value}
    return value


def with_change(document: Any, path: tuple[str, ...], value: Any) -> Any:
    """The parsed document with `value` at `path` (or the key removed): what the edited text must parse to."""
    if not path:
        return value
    holds = isinstance(document, dict) and set(document) != {"secure"}   # a secret is one value
    if value is REMOVE and not (holds and path[0] in document):
        return document
    mapping = dict(document) if holds else {}
    if value is REMOVE and len(path) == 1:
        del mapping[path[0]]
    else:
        mapping[path[0]] = with_change(mapping.get(path[0]), path[1:], value)
    return mapping


def edited(text: str, path: tuple[str, ...], value: Any = REMOVE) -> str:
    """The stack file's text with `value` at `path` (("config", "webstack:images", "pinned")), or that key
    removed. Refuses, changing nothing, when the result would not parse to exactly that."""
    new = edit(text, path, value)
    expected = with_change(yaml.safe_load(text) or {}, path, value)
    if parses_to(new) != expected:
        raise OpsError(f"could not edit {'.'.join(path)} in the stack file in place (a YAML form this edit does not "
                       "handle, such as an anchor or a `? key`): nothing was changed")
    return new


def parses_to(text: str) -> Any:
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError:   # an alias whose anchor the edit wrote again, say
        return None


def edit(text: str, path: tuple[str, ...], value: Any) -> str:
    root = yaml.compose(text)
    if root is None:   # an empty file, or only comments
        return text if value is REMOVE else text + ("\n" if text and not text.endswith("\n") else "") + \
            entry_text(path[0], wrapped(path[1:], value), 0)
    if not is_block_mapping(root):
        raise OpsError("the stack file is not a block mapping of `config:` and the like: edit it by hand")
    holder, node = None, root
    for depth, part in enumerate(path):
        found = entry(node, part) if is_block_mapping(node) else None
        if found is None:
            return missing(text, holder, node, path[depth:], value)
        holder, node = found, found[1]
    return replaced(text, holder, value)


def missing(text: str, holder: tuple[yaml.Node, yaml.Node], node: yaml.Node, rest: tuple[str, ...],
            value: Any) -> str:
    """`rest` is not there under `node` (the value of the entry `holder`): a new entry in a block mapping; else
    the entry that holds `node` written again with the change."""
    if is_block_mapping(node):
        if value is REMOVE:
            return text
        at = line_end(text, last_character(text, node))
        gap = "" if text[:at].endswith("\n") else "\n"
        indent = node.value[0][0].start_mark.column
        return text[:at] + gap + entry_text(rest[0], wrapped(rest[1:], value), indent) + text[at:]
    flow_mapping = isinstance(node, yaml.MappingNode) and node.flow_style and not is_secure(node)
    current = yaml.safe_load(text[node.start_mark.index:node.end_mark.index]) if flow_mapping else None
    changed = with_change(current, rest, value)
    if value is REMOVE and changed == current:   # nothing there to remove
        return text
    return replaced(text, holder, changed)


def replaced(text: str, found: tuple[yaml.Node, yaml.Node], value: Any) -> str:
    """The entry `found` (key and value nodes) with `value` instead, or gone. A plain or quoted scalar is replaced
    where it stands, so the comment after it stays; anything else is the entry's lines written again."""
    key, node = found
    scalar = not isinstance(value, (dict, list)) and value is not REMOVE
    in_place = isinstance(node, yaml.ScalarNode) and node.style not in ("|", ">") and \
        node.start_mark.index < node.end_mark.index   # not a block scalar, nor an empty value (`key:`)
    if scalar and in_place:
        return text[:node.start_mark.index] + dumped(value).removesuffix("\n...\n").rstrip("\n") + \
            text[node.end_mark.index:]
    start, end = line_start(text, key), line_end(text, last_character(text, node))
    new = "" if value is REMOVE else entry_text(key.value, value, key.start_mark.column)
    return text[:start] + new + text[end:]
