"""Request bodies checked against the JSON Schemas that ``/openapi.json`` serves, so the
document and the checks cannot disagree. The validator is jsonschema's (Draft 2020-12); what
this module adds is the wording: the first thing wrong, named by its place in the body
(``recipients[3].email``) and said in the user's terms (``must be a string, not a number``).

Pure: no Flask."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

TIMESTAMP_EXAMPLE = "2026-12-01T09:00:00Z"
_formats = FormatChecker(formats=())


class InvalidInput(ValueError):
    """The body breaks its schema; the message says where and how."""


@_formats.checks("date-time", raises=ValueError)
def timestamp(text: object) -> bool:
    """An ISO 8601 date and time with a time zone (what ``parse_timestamp`` reads)."""
    if isinstance(text, str):
        parse_timestamp(text)
    return True


def parse_timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"must be an ISO 8601 date and time, e.g. {TIMESTAMP_EXAMPLE}, "
                         f"not {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"needs a time zone, e.g. {TIMESTAMP_EXAMPLE}")
    return moment


class Schemas:
    """The named schemas of one document (``components/schemas``), each ready to check with."""

    def __init__(self, schemas: Mapping[str, Any]) -> None:
        self._schemas = schemas
        self._validators: dict[str, Draft202012Validator] = {}

    def read(self, name: str, value: Any) -> Any:
        """``value`` once checked, with the defaults the schema gives its absent fields.

        :raises InvalidInput: with the first thing wrong in ``value``."""
        self.check(name, value)
        defaults = {field: spec["default"] for field, spec
                    in self._schemas[name].get("properties", {}).items() if "default" in spec}
        return {**defaults, **value} if isinstance(value, dict) else value

    def check(self, name: str, value: Any) -> None:
        """:raises InvalidInput: with the first thing wrong in ``value``."""
        validator = self._validators.get(name)
        if validator is None:
            root = {"components": {"schemas": self._schemas},
                    "$ref": f"#/components/schemas/{name}"}
            Draft202012Validator.check_schema(root)
            validator = self._validators[name] = Draft202012Validator(
                root, format_checker=_formats)
        errors = sorted(validator.iter_errors(value), key=_precedence)
        if errors:
            raise InvalidInput(message(errors[0]))


# Which error to report when several are found: the outermost first, and at one place the
# keyword that says most (an unknown or a missing field, the values allowed, a wrong type).
_KEYWORD_ORDER = {"additionalProperties": 0, "required": 1, "minProperties": 1,
                  "maxProperties": 1, "enum": 2, "const": 2, "type": 3}


def _precedence(error: ValidationError) -> tuple[int, int]:
    return len(error.absolute_path), _KEYWORD_ORDER.get(error.validator, 3)


def place(path: Any) -> str:
    """``["recipients", 3, "email"]`` → ``recipients[3].email``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value)


def _either(words: list[str], last: str = "or") -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _expected(types: str | list[str], schema: Mapping[str, Any]) -> str:
    words = {"string": "a string", "boolean": "true or false", "integer": "a whole number",
             "number": "a number", "array": "an array", "null": "null"}
    named = []
    for kind in [types] if isinstance(types, str) else types:
        if kind == "object":
            fields = list(schema.get("properties", {}))
            named.append(f"an object with {_either(fields, 'and')}" if 0 < len(fields) <= 3
                         else "an object")
        else:
            named.append(words[kind])
    return _either(named)


def message(error: ValidationError) -> str:
    """What is wrong, in the user's terms: ``recipients[0].name is required``."""
    where = place(error.absolute_path)
    field = f"{where} " if where else ""
    instance, schema, value = error.instance, error.schema, error.validator_value
    keyword = error.validator
    if "then" in error.relative_schema_path and schema.get("description"):
        return schema["description"]  # a rule that applies in one case says it in its words
    if keyword == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(instance) - set(allowed))[0]
        return (f"unknown field {unknown!r}{f' in {where}' if where else ''}; expected: "
                f"{', '.join(allowed)}")
    if keyword == "required":
        missing = next(name for name in value if name not in instance)
        return f"{place([*error.absolute_path, missing])} is required"
    if keyword in ("minProperties", "maxProperties"):
        return f"send either {_either(list(schema.get('properties', {})))}"
    if keyword == "type":
        return f"{field}must be {_expected(value, schema)}, not {json_type(instance)}"
    if keyword in ("enum", "const"):
        choices = [str(v) for v in (value if keyword == "enum" else [value])]
        allowed = "one of " + ", ".join(choices) if len(choices) > 3 else _either(choices)
        return f"{field}must be {allowed}, not {_shown(instance)}"
    if keyword == "maxLength":
        return f"{field}is longer than {value} characters"
    if keyword == "minLength" or (keyword == "pattern" and isinstance(instance, str)
                                  and "\x00" not in instance and not instance.strip()):
        return f"{field}must not be empty"
    if keyword == "pattern" and "\x00" in instance:
        return f"{field}contains a NUL character"
    if keyword == "maxItems":
        return f"{field}may hold at most {value} items, not {len(instance)}"
    if keyword == "format" and error.cause is not None:
        return f"{field}{error.cause}"
    if keyword in ("minimum", "maximum"):
        return f"{field}must be at {'least' if keyword == 'minimum' else 'most'} {value}"
    return f"{field}is not valid: {error.message}"
