"""The API's OpenAPI 3.1 document, and the JSON Schemas that check request bodies.

One source of truth: the routes validate bodies against the very schemas the
document publishes, and the Schemathesis test fuzzes the running API against it.
"""

from __future__ import annotations

from typing import Any

from funnel.core.lifecycle import STATUSES
from funnel.models import API_SCOPES

MAX_IMPORT = 1000
MAX_PAGE = 200
DATETIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
NAME = {"type": ["string", "null"], "maxLength": 80}
ZONE = {"type": "string", "minLength": 1, "maxLength": 64,
        "description": "An IANA time zone name, e.g. Europe/London."}
PUBLIC_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}
TAG = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$",
       "description": "Letters, digits and single hyphens; stored in lowercase."}
TAG_LIST = {"type": "array", "items": TAG, "maxItems": 50, "uniqueItems": True}

SIGNUP = {
    "type": "object",
    "additionalProperties": False,
    "required": ["email"],
    "properties": {
        "email": {"type": "string", "maxLength": 254},
        "first_name": NAME,
        "time_zone": ZONE,
        "source": {"type": "string", "maxLength": 500,
                   "description": "Where the person signed up, e.g. the page's URL; kept "
                                  "in their consent record."},
        "utm": {
            "type": "object", "additionalProperties": False,
            "properties": {k: {"type": "string", "maxLength": 100}
                           for k in ("source", "medium", "campaign", "term", "content")},
        },
    },
}
IMPORT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["consent_source", "subscribers"],
    "properties": {
        "consent_source": {
            "type": "string", "minLength": 10, "maxLength": 500,
            "description": "Your statement of where and how these people consented, kept in "
                           "each one's consent record, e.g. 'Paper sign-up sheet, Leeds 10k "
                           "expo, 2026-10-04'.",
        },
        "confirmed": {
            "type": "boolean", "default": False,
            "description": "true states that they consented to these emails: they become "
                           "confirmed and the sequence starts. false: pending, sent nothing.",
        },
        "subscribers": {
            "type": "array", "minItems": 1, "maxItems": MAX_IMPORT,
            "items": {
                "type": "object", "additionalProperties": False, "required": ["email"],
                "properties": {"email": {"type": "string", "maxLength": 254},
                               "first_name": NAME},
            },
        },
    },
}
UPDATE = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "first_name": NAME,
        "time_zone": ZONE,
        "paused_until": {
            "description": "Hold all email until this time; \"indefinite\" until resumed; "
                           "null resumes now. Only for confirmed subscribers.",
            "anyOf": [{"type": "string", "format": "date-time"},
                      {"type": "string", "enum": ["indefinite"]},
                      {"type": "null"}],
        },
        "topics": {
            "description": "Turn the plan (the drip sequence) or the newsletter on or off. "
                           "Only for confirmed subscribers; turning off the last topic left "
                           "unsubscribes, as on the preference page.",
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {"plan": {"type": "boolean"}, "newsletter": {"type": "boolean"}},
        },
        "add_tags": {**TAG_LIST, "description": "Tags to add (a tag already there keeps its "
                                                "first date)."},
        "remove_tags": {**TAG_LIST, "description": "Tags to take off."},
        "tag_reason": {"type": "string", "maxLength": 200,
                       "description": "Why the tags were added, kept with each."},
    },
}

SUBSCRIBER = {
    "type": "object",
    "required": ["id", "email", "first_name", "status", "time_zone", "created_at",
                 "confirmed_at", "unsubscribed_at", "paused_until", "topics", "tags"],
    "properties": {
        "id": PUBLIC_ID,
        "email": {"type": "string"},
        "first_name": NAME,
        "status": {"type": "string", "enum": list(STATUSES)},
        "time_zone": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "confirmed_at": DATETIME_OR_NULL,
        "unsubscribed_at": DATETIME_OR_NULL,
        "paused_until": {"type": ["string", "null"],
                         "description": "A date-time, \"indefinite\", or null."},
        "topics": {
            "type": "object",
            "description": "What the subscriber receives once confirmed.",
            "required": ["plan", "newsletter"],
            "properties": {"plan": {"type": "boolean"}, "newsletter": {"type": "boolean"}},
        },
        "source": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"},
                 "description": "The subscriber's tags, by name."},
    },
}
PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {"type": "object", "required": ["pointer", "detail"],
                      "properties": {"pointer": {"type": "string"},
                                     "detail": {"type": "string"}}},
        },
    },
}
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


COMMON = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "429": {"$ref": "#/components/responses/TooMany"},
}
BODY_ERRORS = {
    "400": _problem("The body is not JSON."),
    "413": _problem("The body is too large."),
    "415": _problem("The body is not application/json."),
    "422": _problem("The body does not fit the schema, or a value cannot be used."),
}
ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": PUBLIC_ID,
            "description": "The subscriber's id (from the API or a webhook)."}
NOT_FOUND = {"404": _problem("No subscriber with this id.")}


def _op(op_id: str, summary: str, scope: str, responses: dict[str, Any], **extra: Any
        ) -> dict[str, Any]:
    return {"operationId": op_id, "summary": summary,
            "description": f"Needs the `{scope}` scope.", "security": [{"apiKey": []}],
            "responses": {**responses, **COMMON}, **extra}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def document(server_url: str = "/api/v1") -> dict[str, Any]:
    list_params = [
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES)}},
        {"name": "email_contains", "in": "query", "schema": {"type": "string", "maxLength": 254}},
        {"name": "created_after", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "created_before", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "tag", "in": "query", "schema": TAG, "description": "Only subscribers with this tag."},
        {"name": "limit", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}},
        {"name": "cursor", "in": "query", "schema": {"type": "string", "maxLength": 200},
         "description": "The next_cursor of the previous page."},
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Run Stronger funnel API",
            "version": "1.0.0",
            "description": (
                "Manage the list from other tools. Authenticate with "
                "`Authorization: Bearer <key>`; keys are made with "
                "`flask --app funnel api-key create NAME --scope ...`. Each key has its "
                "own rate limit. Errors are RFC 9457 problem details. Suppressed "
                "addresses are refused without saying why."),
        },
        "servers": [{"url": server_url}],
        "paths": {
            "/subscribers": {
                "get": _op("listSubscribers", "List subscribers, oldest first, a page at a time.",
                           "subscribers:read",
                           {"200": _json(_ref("SubscriberPage"), "A page of subscribers."),
                            "400": _problem("A filter or the cursor cannot be used.")},
                           parameters=list_params),
                "post": _op("signUp", "Sign someone up (double opt-in: a confirmation email "
                            "goes out; nothing else until they confirm). The sign-up is "
                            "queued like the site's form: the worker takes it in within "
                            "seconds, so the subscriber is listed shortly after the answer, "
                            "not at once.", "subscribers:write",
                            {"202": _json(_ref("Accepted"), "Accepted for the worker. The "
                                          "answer, and the time it takes, are the same whether "
                                          "or not the address was already known."),
                             **BODY_ERRORS},
                            requestBody=_body("SignUp")),
            },
            "/subscribers/import": {
                "post": _op("importSubscribers", "Add up to 1000 people with a stated source "
                            "of consent. Addresses already listed are left untouched.",
                            "subscribers:import",
                            {"200": _json(_ref("ImportResult"), "What went in."), **BODY_ERRORS},
                            requestBody=_body("Import")),
            },
            "/subscribers/{id}": {
                "parameters": [ID_PARAM],
                "get": _op("getSubscriber", "Read one subscriber.", "subscribers:read",
                           {"200": _json(_ref("Subscriber"), "The subscriber."), **NOT_FOUND}),
                "patch": _op("updateSubscriber", "Change name, time zone, topics, pause or tags.",
                             "subscribers:write",
                             {"200": _json(_ref("Subscriber"), "The subscriber as now stored."),
                              "409": _problem("The change does not apply to this subscriber "
                                              "(e.g. pausing one who is not confirmed)."),
                              **NOT_FOUND, **BODY_ERRORS},
                             requestBody=_body("Update")),
                "delete": _op("eraseSubscriber", "Erase everything about the subscriber; the "
                              "address goes on the suppression list.", "subscribers:erase",
                              {"204": {"description": "Erased."}, **NOT_FOUND}),
            },
            "/subscribers/{id}/unsubscribe": {
                "parameters": [ID_PARAM],
                "post": _op("unsubscribe", "Stop all email to the subscriber.",
                            "subscribers:write",
                            {"200": _json(_ref("Subscriber"), "The subscriber as now stored."),
                             **NOT_FOUND}),
            },
            "/stats": {
                "get": _op("stats", "Subscribers by status, and the last 30 days.", "stats:read",
                           {"200": _json(_ref("Stats"), "The figures.")}),
            },
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "Scopes: " + ", ".join(API_SCOPES)}},
            "responses": {
                "Unauthorized": _problem("No key, or not a live key."),
                "Forbidden": _problem("The key lacks the scope this needs."),
                "TooMany": _problem("This key's rate limit is used up; see Retry-After."),
            },
            "schemas": {
                "SignUp": SIGNUP,
                "Import": IMPORT,
                "Update": UPDATE,
                "Subscriber": SUBSCRIBER,
                "SubscriberPage": {
                    "type": "object", "required": ["data", "next_cursor"],
                    "properties": {"data": {"type": "array", "items": _ref("Subscriber")},
                                   "next_cursor": {"type": ["string", "null"]}},
                },
                "Accepted": {"type": "object", "required": ["status", "message"],
                             "properties": {"status": {"const": "accepted"},
                                            "message": {"type": "string"}}},
                "ImportResult": {
                    "type": "object",
                    "required": ["received", "added", "already_listed", "repeated", "refused",
                                 "bad"],
                    "properties": {
                        "received": {"type": "integer"}, "added": {"type": "integer"},
                        "already_listed": {"type": "integer"}, "repeated": {"type": "integer"},
                        "refused": {"type": "integer", "description": "Not added, no reason given."},
                        "bad": {"type": "array", "items": {
                            "type": "object", "required": ["index", "problem"],
                            "properties": {"index": {"type": "integer"},
                                           "problem": {"type": "string"}}}},
                    },
                },
                "Stats": {
                    "type": "object", "required": ["subscribers", "last_30_days"],
                    "properties": {"subscribers": COUNTS, "last_30_days": COUNTS},
                },
                "Problem": PROBLEM,
            },
        },
    }
