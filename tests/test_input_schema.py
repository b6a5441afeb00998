"""Request bodies checked against the schemas ``/openapi.json`` serves: the wording of what is
wrong (pure, no app), and that every documented body is the one enforced."""
from __future__ import annotations

import pytest

from helpdesk.input_schema import InvalidInput, Schemas, place
from helpdesk.openapi import BODIES, openapi_spec

SCHEMAS = Schemas({
    "Item": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 5},
        "email": {"type": ["string", "null"], "pattern": "^[^\\u0000]*$"}},
        "required": ["name"], "additionalProperties": False},
    "Order": {"type": "object", "properties": {
        "kind": {"type": "string", "enum": ["a", "b", "c", "d"], "default": "a"},
        "when": {"type": "string", "format": "date-time"},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"},
                  "maxItems": 2}},
        "additionalProperties": False},
})


@pytest.mark.parametrize("body, message", [
    ({"items": [{"name": "ok"}, {"name": 3}]}, "items[1].name must be a string, not a number"),
    ({"items": [{"name": "ok", "email": []}]},
     "items[0].email must be a string or null, not an array"),
    ({"items": [{"name": "ok", "email": "a\x00b"}]}, "items[0].email contains a NUL character"),
    ({"items": [{"name": "toolong"}]}, "items[0].name is longer than 5 characters"),
    ({"items": [{}]}, "items[0].name is required"),
    ({"items": [{"name": "a", "mail": "x"}]},
     "unknown field 'mail' in items[0]; expected: email, name"),
    ({"item": []}, "unknown field 'item'; expected: items, kind, when"),
    ({"items": [{"name": "a"}] * 3}, "items may hold at most 2 items, not 3"),
    ({"kind": "e"}, "kind must be one of a, b, c, d, not 'e'"),
    ({"kind": None}, "kind must be one of a, b, c, d, not null"),
    ({"when": "soon"}, "when must be an ISO 8601 date and time, e.g. 2026-12-01T09:00:00Z, "
                       "not 'soon'"),
    ({"when": "2030-01-02T10:00:00"}, "when needs a time zone"),
    # The outermost mistake comes first, whatever else is wrong deeper down.
    ({"items": [{"name": 3}], "extra": 1}, "unknown field 'extra'"),
])
def test_the_first_mistake_is_named_by_its_place_and_said_plainly(body, message):
    with pytest.raises(InvalidInput) as refused:
        SCHEMAS.check("Order", body)
    assert message in str(refused.value)


def test_a_good_body_comes_back_with_the_schemas_defaults():
    assert SCHEMAS.read("Order", {"when": "2030-01-02T10:00:00Z"}) == {
        "kind": "a", "when": "2030-01-02T10:00:00Z"}
    assert SCHEMAS.read("Order", {"kind": "d"})["kind"] == "d"


def test_places_read_like_the_body():
    assert place(["recipients", 3, "email"]) == "recipients[3].email"
    assert place([2]) == "[2]" and place([]) == ""


def _body_schemas():
    for path, operations in openapi_spec()["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref")
            if ref:
                yield method, path, ref.rsplit("/", 1)[1]


def test_the_documented_bodies_are_the_ones_checked():
    documented = list(_body_schemas())
    assert len(documented) >= 5
    for _, _, name in documented:
        with pytest.raises(InvalidInput, match="unknown field 'surely_not_a_field'"):
            BODIES.check(name, {"surely_not_a_field": 1})


def test_every_documented_body_refuses_an_unknown_field_over_http(api, app):
    adapter = app.url_map.bind("localhost")
    for method, path, name in _body_schemas():
        if not path.startswith("/api/"):
            continue
        url = path.replace("{credential_id}", "1").replace("{recipient_id}", "1") \
            .replace("{domain}", "valley.example")
        adapter.match(url, method=method.upper())  # the documented path is a real route
        response = api.open(url, method=method.upper(), json={"surely_not_a_field": 1})
        assert response.status_code == 400, (method, path)
        assert "unknown field 'surely_not_a_field'" in response.get_json()["error"], name
