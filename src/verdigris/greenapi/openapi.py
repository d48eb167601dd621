"""OpenAPI entries for the wire methods, generated from the registry."""

from __future__ import annotations

from typing import Any

from verdigris.greenapi.registry import REGISTRY

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "statusCode": {"type": "integer"},
        "timestamp": {"type": "string"},
        "path": {"type": "string"},
        "message": {"type": "string"},
    },
    "required": ["statusCode", "message"],
}


def error_doc(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for a wire error (the JSON error body)."""
    return {"description": description, "content": {"application/json": {"schema": ERROR_SCHEMA}}}


# Answers every wire and partner call may get before anything runs.
TOO_LARGE_DOC = error_doc("The JSON body is too large (nothing was executed)")
RATE_LIMITED_DOC = {
    **error_doc("Rate limited (nothing was executed); see Retry-After"),
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
}


# Query parameters are integers (Call.int_param: ASCII digits, 64-bit); their ranges are the
# handlers' (a value out of range is a documented 400).
_QUERY_INTEGER = {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1}
# Query parameters that are not integers.
_QUERY_TYPES: dict[str, dict[str, Any]] = {
    "group": {"type": "string", "enum": ["true", "false", "1", "0"]},
    "idMessage": {"type": "string", "minLength": 1},
}

# Methods that take a value as a path segment after the token.
PATH_EXTRA: dict[str, dict[str, Any]] = {
    "deleteNotification": {
        "name": "receiptId",
        "in": "path",
        "required": True,
        "description": "The receiptId of the notification (the async SDK may send it as a JSON body instead)",
        "schema": {"type": "integer", "minimum": 0, "format": "int64"},
    },
}

_FILE = {"type": "string", "format": "binary"}
# Upload bodies (files are read by the handlers as streams): a form with a ``file`` part, text
# fields as strings; or the raw bytes (uploadFile, which also takes the form).
_UPLOAD_BODIES: dict[str, dict[str, Any]] = {
    "multipart": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": _FILE},
                # Other fields are text by nature of a form (typingTime="3000"): not constrained.
            }
        }
    },
    "raw": {
        "application/octet-stream": {"schema": _FILE},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": _FILE}}},
    },
}


def wire_paths(components: dict[str, Any]) -> dict[str, Any]:
    """Paths of the implemented wire methods; nested body models are added to ``components``."""
    paths: dict[str, Any] = {}
    for spec in sorted(REGISTRY.values(), key=lambda s: (s.group, s.name.lower())):
        if not spec.done:
            continue
        path = f"/waInstance{{idInstance}}/{spec.name}/{{apiTokenInstance}}"
        extra = PATH_EXTRA.get(spec.name)
        if extra is not None:
            path += f"/{{{extra['name']}}}"
        params: list[dict[str, Any]] = [
            {
                "name": "idInstance",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
            {
                "name": "apiTokenInstance",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
            },
        ]
        if extra is not None:
            params.append(extra)
        for name in spec.query:
            schema = _QUERY_TYPES.get(name, _QUERY_INTEGER)
            params.append({"name": name, "in": "query", "required": False, "schema": schema})
        operation: dict[str, Any] = {
            "tags": [f"wire: {spec.group}"],
            "summary": spec.summary or spec.name,
            "operationId": f"wire_{spec.name}",
            "parameters": params,
            "responses": {
                # JSON for most methods; some answer an empty body, as GREEN-API documents.
                "200": {"description": "Success: a JSON body, or an empty one where GREEN-API sends none"},
                "404": {
                    "description": "Unknown method, wrong verb, or a chat/message that does not exist",
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                },
                "400": {
                    "description": "Bad request data",
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                },
                "401": {
                    "description": "Wrong apiTokenInstance",
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                },
                "403": {
                    "description": "Unknown idInstance",
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                },
                "413": TOO_LARGE_DOC,
                "429": RATE_LIMITED_DOC,
            },
        }
        if spec.body is not None:
            schema = spec.body.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        elif spec.body_kind in ("multipart", "raw"):
            operation["requestBody"] = {"required": True, "content": _UPLOAD_BODIES[spec.body_kind]}
            operation["responses"]["413"] = {
                "description": "The file is over the size limit (nothing was stored or sent)",
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
            }
        paths[path] = {spec.verb.lower(): operation}
    return paths
