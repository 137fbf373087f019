"""Reading a YAML configuration file, and saying exactly what is wrong with a bad one.

``read_yaml_file`` refuses, naming the file, the line and what to do: a missing
file or a folder, over 1 MiB, UTF-16, binary or non-UTF-8 bytes, YAML syntax
errors (line and column) and a key given twice (YAML would keep the last one
silently). ``format_validation_error`` turns a pydantic ``ValidationError`` into
one line per problem with the dotted field, the value and a hint ("did you mean
'student'?"). ``selfimprove.config.load_config`` uses both.
"""

from __future__ import annotations

import codecs
import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the value."""


# Values of these keys are never echoed in an error (a URL may hold a password).
_SECRET = re.compile(r"url|password|secret|token|key$", re.IGNORECASE)
_MAX_CONFIG_BYTES = 1 << 20  # a run configuration is a short YAML file
_MERGE_TAG = "tag:yaml.org,2002:merge"  # YAML's "<<" key
_YAML_HINT = (
    "check the indentation (spaces, not tabs), the ': ' after each key, "
    "and that brackets and quotes are closed"
)


def format_validation_error(
    exc: ValidationError, source: str, model: type[BaseModel] | None = None
) -> str:
    """One line per problem: the dotted field, the offending value and what to do.

    With ``model``, the class that was validated, an unknown key gets the known
    key closest to it as a suggestion.
    """
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        loc = err["loc"]
        where = ".".join(str(p) for p in loc) or "(top level)"
        value = err.get("input")
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        if loc and _SECRET.search(str(loc[-1])):
            shown = "(not shown: it may hold a secret)"
        if err["type"] == "extra_forbidden":
            hint = _unknown_key_hint(model, loc)
            lines.append(f"  {where}: unknown key (value {shown}); {hint}")
        elif err["type"] == "model_type" and loc:
            lines.append(
                f"  {where} = {shown}: should be a section of 'key: value' lines indented "
                f"under '{loc[-1]}:'; indent them, or remove the section for its defaults"
            )
        else:
            lines.append(f"  {where} = {shown}: {err['msg']}")
    return "\n".join(lines)


def _unknown_key_hint(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> str:
    known = _section_keys(model, loc[:-1]) if model is not None else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    if 0 < len(known) <= 12:
        return "remove it or use one of: " + ", ".join(known)
    return "remove it or check its spelling"


def _section_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the section at ``loc`` accepts ([] when ``loc`` is not a section)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        section = field.annotation if field else None
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            return []
        model = section
    return list(model.model_fields)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, first: int, line: int) -> None:
        super().__init__(key)
        self.key, self.first, self.line = key, first, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error, not
    silently the last one (two ``loop:`` sections would drop the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[str, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                line = key_node.start_mark.line + 1
                if key_node.value in lines:
                    raise _DuplicateKey(key_node.value, lines[key_node.value], line)
                lines[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml_file(path: Path, shown: str) -> Any:
    """The parsed YAML of ``path`` (``shown`` is how messages name it).

    Raises:
        ConfigError: the file cannot be read as UTF-8 YAML; the message says why.
    """
    return _parse_yaml(_read_config_text(path, shown), shown)


def _read_config_text(path: Path, shown: str) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        where = "" if path.is_absolute() else f" (relative to {os.getcwd()!r})"
        raise ConfigError(f"config file {shown} does not exist; check the path{where}") from None
    except IsADirectoryError:
        raise ConfigError(
            f"config file {shown} is a folder; give the path of a YAML file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {shown}: {exc.strerror}") from None
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {shown} is over {_MAX_CONFIG_BYTES >> 20} MiB; a run configuration "
            "is a short YAML file: is it the right file?"
        )
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError(f"config file {shown} is UTF-16 text; re-save it as UTF-8")
    if b"\x00" in raw:
        line = raw[: raw.index(0)].count(b"\n") + 1
        raise ConfigError(
            f"config file {shown} holds binary data (a NUL byte on line {line}), "
            "not YAML text: is it the right file?"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"config file {shown} is not UTF-8 text (byte {raw[exc.start]:#04x} on line {line}); "
            "re-save it as UTF-8"
        ) from None


def _parse_yaml(text: str, shown: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except _DuplicateKey as exc:
        raise ConfigError(
            f"config file {shown} gives {exc.key!r} twice, on lines {exc.first} and {exc.line}; "
            "keep one (YAML would silently use the last)"
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(
            f"config file {shown} has a control character {chr(exc.character)!r} on line "
            f"{line}; remove it"
        ) from None
    except yaml.MarkedYAMLError as exc:
        where = ""
        if mark := exc.problem_mark:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        context = ""
        if exc.context and exc.context_mark:
            context = f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise ConfigError(
            f"config file {shown} is not valid YAML{where}: {exc.problem}{context}; {_YAML_HINT}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {shown} is not valid YAML: {exc}; {_YAML_HINT}") from None
