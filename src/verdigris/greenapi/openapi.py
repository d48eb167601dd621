"""OpenAPI entries for the wire methods, generated from the registry."""

from __future__ import annotations

from typing import Any

from verdigris.greenapi.registry import REGISTRY

_ERROR = {
    "type": "object",
    "properties": {
        "statusCode": {"type": "integer"},
        "timestamp": {"type": "string"},
        "path": {"type": "string"},
        "message": {"type": "string"},
    },
    "required": ["statusCode", "message"],
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
                "additionalProperties": {"type": "string"},
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
        params: list[dict[str, Any]] = [
            {
                "name": "idInstance",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
            {"name": "apiTokenInstance", "in": "path", "required": True, "schema": {"type": "string"}},
        ]
        for name in spec.query:
            params.append({"name": name, "in": "query", "required": False, "schema": {"type": "integer"}})
        operation: dict[str, Any] = {
            "tags": [f"wire: {spec.group}"],
            "summary": spec.summary or spec.name,
            "operationId": f"wire_{spec.name}",
            "parameters": params,
            "responses": {
                "200": {"description": "Success", "content": {"application/json": {"schema": {}}}},
                "400": {
                    "description": "Bad request data",
                    "content": {"application/json": {"schema": _ERROR}},
                },
                "401": {
                    "description": "Wrong apiTokenInstance",
                    "content": {"application/json": {"schema": _ERROR}},
                },
                "403": {
                    "description": "Unknown idInstance",
                    "content": {"application/json": {"schema": _ERROR}},
                },
                "429": {
                    "description": "Rate limited (nothing was executed)",
                    "content": {"application/json": {"schema": _ERROR}},
                },
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
                "content": {"application/json": {"schema": _ERROR}},
            }
        paths[path] = {spec.verb.lower(): operation}
    return paths
