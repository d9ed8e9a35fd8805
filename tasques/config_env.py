"""`TASQUES_*` environment overrides, converted by the type of the setting they name (never parsed as YAML).

A `str` (or secret) setting takes the value verbatim; an enumeration (such as a role) its value without
surrounding blanks; numbers and booleans are parsed strictly; durations are Go-style strings (`30m`, `1h30m`);
lists of strings are a JSON list or comma-separated values; anything else (a list of models such as
`server.basic_auth`) is JSON. An empty value clears an optional setting.
"""

from __future__ import annotations

import json
import math
import re
import types
from datetime import timedelta
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

_INT = re.compile(r"[+-]?\d{1,30}")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class OverrideError(ValueError):
    """An environment value that cannot be converted to its setting's type."""


def resolve_field(model: type[BaseModel], tokens: list[str]) -> tuple[list[str], FieldInfo] | None:
    """Match underscore-split tokens to a field path; field names may themselves hold underscores."""
    for k in range(len(tokens), 0, -1):
        name = "_".join(tokens[:k])
        field = model.model_fields.get(name)
        if field is None:
            continue
        rest = tokens[k:]
        if not rest:
            return [name], field
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            found = resolve_field(sub, rest)
            if found is not None:
                return [name, *found[0]], found[1]
    return None


def convert(field: FieldInfo, value: str) -> Any:
    """The environment string `value` as the Python value the setting's type expects."""
    return _convert(field.annotation, value)


def describe(field: FieldInfo) -> str:
    return _describe(field.annotation)


def _convert(annotation: Any, value: str) -> Any:
    inner, optional = _strip_none(annotation)
    if optional and value == "":
        return None
    if inner is str or inner is SecretStr:
        return value
    if inner is bool:
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise OverrideError("expected a boolean: true or false")
    if inner is int:
        text = value.strip()
        if not _INT.fullmatch(text):
            raise OverrideError("expected an integer such as 10")
        return int(text)
    if inner is float:
        try:
            number = float(value.strip())
        except ValueError:
            raise OverrideError("expected a number such as 2.5") from None
        if not math.isfinite(number):
            raise OverrideError("expected a finite number")
        return number
    if inner is timedelta:
        return value.strip()  # the Duration validator parses Go-style durations and names the setting on error
    if get_origin(inner) is Literal or (isinstance(inner, type) and issubclass(inner, Enum)):
        return value.strip()
    if get_origin(inner) is list and get_args(inner) == (str,):
        return _string_list(value)
    try:
        return json.loads(value)
    except ValueError as e:
        raise OverrideError(f"expected JSON ({e})") from None


def _string_list(value: str) -> list[str]:
    text = value.strip()
    if text.startswith("["):
        try:
            loaded = json.loads(text)
        except ValueError:
            # `[a, b]`: the bracketed comma list older deployments wrote (unquoted, as YAML allowed).
            if not text.endswith("]"):
                raise OverrideError("expected a JSON list or comma-separated values") from None
            text = text[1:-1]
        else:
            if not isinstance(loaded, list) or not all(isinstance(item, str) for item in loaded):
                raise OverrideError("expected a JSON list of strings")
            return loaded
    return [item.strip() for item in text.split(",") if item.strip()]


def _strip_none(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(annotation)):
            return args[0], True
    return annotation, False


def _describe(annotation: Any) -> str:
    inner, optional = _strip_none(annotation)
    names = {str: "string", bool: "boolean", int: "integer", float: "number", timedelta: "duration"}
    if inner in names:
        text = names[inner]
    elif inner is SecretStr:
        text = "secret string"
    elif get_origin(inner) is Literal:
        text = " | ".join(str(a) for a in get_args(inner))
    elif isinstance(inner, type) and issubclass(inner, Enum):
        text = " | ".join(str(m.value) for m in inner)
    elif get_origin(inner) is list and get_args(inner) == (str,):
        text = "list of strings"
    else:
        text = "JSON"
    return f"optional {text}" if optional else text
