"""The OpenAPI 3.1 description of the JSON API and the webhook endpoint, served at
``/openapi.json``. Its schemas are plain JSON Schema (2020-12); the tests check every API route is
here and that real responses validate against it."""
from __future__ import annotations

from typing import Any

from flask import Flask, jsonify

from .auth import public
from .causes import CAUSES
from .input_schema import Schemas
from .intake import MAX_EMAIL, MAX_NAME, MAX_TITLE, STATES, VERDICTS
from .queries import MAX_ID, MAX_PAGE
from .status import EVENT_TYPES, STATUSES

API = "/api/v1"
MAX_PER_PAGE = 200
MAX_BATCH_CHECKS = 1000


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], required: list[str] | None = None,
            additional: bool = False) -> dict[str, Any]:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required,
            "additionalProperties": additional}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    # One schema with two types rather than an anyOf: a wrong value is then reported against
    # the one schema ("must be a string or null") instead of against each alternative.
    return {**schema, "type": [schema["type"], "null"]}


TIMESTAMP = {"type": "string", "format": "date-time"}
NO_NUL = "^[^\\u0000]*$"  # PostgreSQL text cannot hold NUL


def _text(max_length: int, blank: bool = True) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length,
            "pattern": NO_NUL if blank else "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"}


STATUS_KEY = {"type": "string", "enum": list(STATUSES)}
CAUSE_KEY = {"type": "string", "enum": list(CAUSES)}
SCHEDULED_NEEDS_TIME = "a scheduled credential needs scheduled_at"
INCLUDE_ALL = {"type": "boolean", "default": False, "description":
               "also resend to those whose cause says resending unchanged cannot help"}

SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": {"type": "string"}}),
    "Tip": _object({"title": {"type": "string"}, "text": {"type": "string"},
                    "action": _nullable({"type": "string"})}),
    "Status": _object({
        "key": STATUS_KEY, "label": {"type": "string"},
        "icon": {"type": "string", "description": "id of a symbol in the icon sprite"},
        "colour": {"type": "string"}, "meaning": {"type": "string"},
        "tips": {"type": "array", "items": _ref("Tip")}}),
    "Cause": _object({
        "key": CAUSE_KEY, "label": {"type": "string"}, "explanation": {"type": "string"},
        "actions": {"type": "array", "items": _ref("Tip"),
                    "description": "what can help, the most useful first"},
        "resend_helps": {"type": "boolean", "description":
                         "whether sending the same email to the same address can succeed"}}),
    "Recipient": _object({
        "id": {"type": "integer"}, "credential_id": {"type": "integer"},
        "name": {"type": "string", "description": "as given: escape it where you show it"},
        "email": _nullable({"type": "string"}),
        "email_error": _nullable({"type": "string", "description":
                                  "why the address cannot be used; never sent to"}),
        "status": STATUS_KEY, "status_label": {"type": "string"},
        "cause": CAUSE_KEY, "cause_label": {"type": "string"},
        "evidence": _nullable({"type": "string", "description":
                               "the one line that decided the cause, often the server's reply"}),
        "updated_at": TIMESTAMP}),
    "DeliveryEvent": _object({
        "type": {"type": "string", "enum": list(EVENT_TYPES)},
        "occurred_at": TIMESTAMP,
        "reason": _nullable({"type": "string", "description":
                             "the provider's reason or the mail server's reply"})}),
    "Delivery": _object({
        "id": {"type": "integer"}, "email": {"type": "string"},
        "provider": {"type": "string"},
        "kind": {"type": "string", "enum": ["send", "resend", "nudge"]},
        "status": {"type": "string", "enum": ["sending", "not_sent", "not_opened", "bounced",
                                              "opened"]},
        "created_at": TIMESTAMP,
        "events": {"type": "array", "items": _ref("DeliveryEvent")}}),
}
SCHEMAS["RecipientDetail"] = _object({
    **SCHEMAS["Recipient"]["properties"],
    "deliveries": {"type": "array", "items": _ref("Delivery"), "description": "oldest first"}})
SCHEMAS |= {
    "RecipientPage": _object({
        "items": {"type": "array", "items": _ref("Recipient")},
        "total": {"type": "integer", "minimum": 0},
        "counts": {"type": "object", "description": "recipients in each status for the same "
                   "filters, without the status one",
                   "properties": {key: {"type": "integer", "minimum": 0} for key in STATUSES},
                   "required": list(STATUSES), "additionalProperties": False},
        "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}}),
    "RecipientInput": _object({
        "name": _text(MAX_NAME),
        "email": _nullable(_text(MAX_EMAIL))}, required=["name"]),
    "CredentialInput": _object({
        "title": _text(MAX_TITLE, blank=False),
        "state": {"type": "string", "enum": list(STATES),
                  "default": "draft"},
        "scheduled_at": _nullable({**TIMESTAMP, "description":
                                   "required when scheduled; with a time zone"}),
        "send_email": {"type": "boolean", "default": True,
                       "description": "false publishes without sending any email"},
        "recipients": {"type": "array", "items": _ref("RecipientInput"), "default": []},
        "allow_typos": {"type": "boolean", "default": False, "description":
                        "reviewed: keep the addresses that look mistyped as given and leave "
                        "repeated addresses out (listed under left_out)"}}, required=["title"])
    | {"if": {"properties": {"state": {"const": "scheduled"}}, "required": ["state"]},
       "then": {"required": ["scheduled_at"], "description": SCHEDULED_NEEDS_TIME,
                "properties": {"scheduled_at": {"type": "string",
                                                "description": SCHEDULED_NEEDS_TIME}}}},
    "Credential": _object({
        "id": {"type": "integer"}, "title": {"type": "string"},
        "state": {"type": "string", "enum": list(STATES)},
        "scheduled_at": _nullable(TIMESTAMP), "send_email": {"type": "boolean"},
        "recipients": {"type": "array", "items": _ref("Recipient")}}),
    "Verdict": _object({
        "index": {"type": "integer", "description": "position in recipients"},
        "verdict": {"type": "string", "enum": list(VERDICTS)},
        "email": _nullable({"type": "string"}), "reason": _nullable({"type": "string"}),
        "suggestion": _nullable({"type": "string"})}),
    "CreatedCredential": _object({
        "id": {"type": "integer"}, "title": {"type": "string"},
        "state": {"type": "string", "enum": list(STATES)},
        "scheduled_at": _nullable(TIMESTAMP), "send_email": {"type": "boolean"},
        "recipients": {"type": "array", "items": _ref("Recipient")},
        "left_out": {"type": "array", "items": _ref("Verdict"),
                     "description": "recipients not created (a repeated address)"}}),
    "TypoError": _object({
        "error": {"type": "string"},
        "typos": {"type": "array", "items": _object({
            "index": {"type": "integer", "description": "position in recipients"},
            "email": {"type": "string"}, "suggestion": {"type": "string"}})},
        "rows": {"type": "array", "items": _ref("Verdict"),
                 "description": "every recipient to review: likely typos and repeats"}}),
    "ResendInput": _object({"email": {**_text(MAX_EMAIL, blank=False), "description":
                                      "a corrected address; it becomes the recipient's"},
                            "confirm": {"type": "boolean", "default": False, "description":
                                        "send even when the recipient's cause says resending "
                                        "unchanged cannot help (else 409)"}},
                           required=[]),
    "ResendStatusInput": _object({"status": STATUS_KEY, "include_all": INCLUDE_ALL},
                                 required=["status"]),
    "BulkResendInput": _object({"include_all": INCLUDE_ALL}, required=[]),
    "Queued": _object({"queued": {"type": "integer", "minimum": 0},
                       "skipped": {"type": "object", "propertyNames": CAUSE_KEY,
                                   "additionalProperties": {"type": "integer", "minimum": 1},
                                   "description": "recipients skipped, by cause: resending "
                                                  "them unchanged cannot help"}}),
    "NeedsConfirmation": _object({"error": {"type": "string"}, "cause": CAUSE_KEY}),
    "EmailCheckInput": _object({
        "email": {**_text(MAX_EMAIL), "description": "one address: one check back"},
        "emails": {"type": "array", "items": _text(MAX_EMAIL), "maxItems": MAX_BATCH_CHECKS,
                   "description": "several addresses: a list of checks back"}},
        required=[]) | {"minProperties": 1, "maxProperties": 1},
    "EmailCheck": _object({
        "input": {"type": "string"}, "valid": {"type": "boolean"},
        "normalized": _nullable({"type": "string"}), "error": _nullable({"type": "string"}),
        "suggestion": _nullable({"type": "string", "description": "a whole address"}),
        "confidence": _nullable({"type": "number", "minimum": 0, "maximum": 1})}),
    "WebhookResult": _object({
        "received": {"type": "integer"}, "stored": {"type": "integer"},
        "duplicates": {"type": "integer"}, "unmatched": {"type": "integer"},
        "status_changes": {"type": "integer"}}),
}

# Every request body is checked against these (``helpdesk.api``): one source for the document
# and the checks.
BODIES = Schemas(SCHEMAS)

ERRORS = {
    400: "Bad input: wrong types, unknown fields, an invalid value",
    401: "No token, or a token that is not valid",
    404: "No such object",
    413: "The body is too large",
    415: "The body is not JSON",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(summary: str, responses: dict[int, dict[str, Any]], *, body: str | None = None,
               body_required: bool = True, errors: tuple[int, ...] = (401,),
               parameters: list[dict[str, Any]] | None = None,
               public: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {
        str(code): response for code, response in responses.items()}}
    for code in errors:
        operation["responses"][str(code)] = _json(_ref("Error"), ERRORS[code])
    if body:
        operation["requestBody"] = {"required": body_required,
                                    "content": {"application/json": {"schema": _ref(body)}}}
    if parameters:
        operation["parameters"] = parameters
    if public:
        operation["security"] = []
    return operation


def _path_id(name: str, what: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": f"the {what}'s id",
            "schema": {"type": "integer", "minimum": 1}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


BODY_ERRORS = (400, 401, 413, 415)


def openapi_spec() -> dict[str, Any]:
    """The whole document, as a mapping ready for ``jsonify``."""
    credential_id = _path_id("credential_id", "credential")
    recipient_id = _path_id("recipient_id", "recipient")
    paths = {
        f"{API}/statuses": {"get": _operation(
            "The six email statuses, their meaning and quick tips",
            {200: _json({"type": "array", "items": _ref("Status")}, "Every status")},
            errors=(), public=True)},
        f"{API}/causes": {"get": _operation(
            "Why an email can fail: each cause, its explanation and its actions",
            {200: _json({"type": "array", "items": _ref("Cause")}, "Every cause")},
            errors=(), public=True)},
        f"{API}/credentials": {"post": _operation(
            "Create a credential with its recipients; published ones are sent at once",
            {201: _json(_ref("CreatedCredential"), "Created"),
             422: _json(_ref("TypoError"), "Some addresses look mistyped or repeat an earlier "
                                          "one; nothing was created")},
            body="CredentialInput", errors=BODY_ERRORS)},
        f"{API}/credentials/{{credential_id}}": {"get": _operation(
            "A credential with its recipients", {200: _json(_ref("Credential"), "The credential")},
            errors=(401, 404), parameters=[credential_id])},
        f"{API}/credentials/{{credential_id}}/publish": {"post": _operation(
            "Publish a credential now; when it sends email, the emails are queued",
            {202: _json(_ref("Credential"), "Published")},
            errors=(401, 404), parameters=[credential_id])},
        f"{API}/credentials/{{credential_id}}/resend": {"post": _operation(
            "Resend to every recipient of a credential in one status",
            {202: _json(_ref("Queued"), "How many emails were queued")},
            body="ResendStatusInput", errors=(*BODY_ERRORS, 404), parameters=[credential_id])},
        f"{API}/domains/{{domain}}/resend": {"post": _operation(
            "Resend to every bounced recipient at a domain (after its IT allowlisted us)",
            {202: _json(_ref("Queued"), "How many emails were queued")},
            body="BulkResendInput", body_required=False, errors=(*BODY_ERRORS,),
            parameters=[{"name": "domain", "in": "path", "required": True,
                         "schema": {"type": "string"}, "description": "e.g. example.com"}])},
        f"{API}/recipients": {"get": _operation(
            "Find recipients: a page, the total and the count in each status",
            {200: _json(_ref("RecipientPage"), "A page of recipients, ordered by id")},
            errors=(400, 401), parameters=[
                _query("status", STATUS_KEY, "only recipients in this status"),
                _query("domain", {"type": "string"}, "only addresses at this domain"),
                _query("q", _text(MAX_EMAIL),
                       "an email that starts with it, or a name that contains it"),
                _query("credential_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                       "only this credential's recipients"),
                _query("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                                "default": 1}, "1-based"),
                _query("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
                                    "default": 50}, "page size")])},
        f"{API}/recipients/{{recipient_id}}": {"get": _operation(
            "A recipient with its deliveries and their events",
            {200: _json(_ref("RecipientDetail"), "The recipient")},
            errors=(401, 404), parameters=[recipient_id])},
        f"{API}/recipients/{{recipient_id}}/resend": {"post": _operation(
            "Send again, optionally to a corrected address; earlier deliveries stay",
            {202: _json(_ref("Recipient"), "Queued"),
             409: _json(_ref("NeedsConfirmation"), "Not sent: the recipient's cause says it "
                        "would fail again; send confirm to send anyway")},
            body="ResendInput", body_required=False, errors=(*BODY_ERRORS, 404),
            parameters=[recipient_id])},
        f"{API}/email/check": {"post": _operation(
            "Check addresses: validity, normal form and a suggestion for a likely typo",
            {200: _json({"oneOf": [_ref("EmailCheck"),
                                   {"type": "array", "items": _ref("EmailCheck")}]},
                        "One check, or a list for emails")},
            body="EmailCheckInput", errors=BODY_ERRORS)},
        "/webhooks/{provider}": {"post": _operation(
            "Delivery events from an email provider, signed by it",
            {200: _json(_ref("WebhookResult"), "Stored; replays are counted as duplicates"),
             403: _json(_ref("Error"), "No verification key configured, or a bad signature"),
             406: _json(_ref("Error"), "A signed one-time token seen before")},
            errors=(400, 401, 404, 413), public=True,
            parameters=[{"name": "provider", "in": "path", "required": True,
                         "schema": {"type": "string"},
                         "description": "a provider's name (see `helpdesk providers`)"}])
            | {"requestBody": {"required": True, "description": "the provider's own format",
                               "content": {"*/*": {"schema": {}}}}}},
    }
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "helpdesk", "version": "1",
                 "description": "See whether every credential email arrived, and fix it when it "
                                "did not. Errors are {\"error\": \"...\"}."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "a token from `helpdesk tokens create EMAIL`"}},
        },
    }


@public
def openapi_document():
    return jsonify(openapi_spec())


def init_app(app: Flask) -> None:
    # The spec lives at the top, beside the API it describes rather than under its prefix.
    app.add_url_rule("/openapi.json", "openapi", openapi_document)
