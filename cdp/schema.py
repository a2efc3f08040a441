"""OpenAPI description of our authentication scheme (drf-spectacular extension)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "cdp.auth.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Personal API token: `Authorization: Token <key>`",
        }


# ---- errors: one shape, every code documented -------------------------------------------------

_ERROR_STATUSES = {
    "400": "Bad input: `validation_failed` with the bad paths, or `parse_error`.",
    "401": "Not signed in (no session and no valid `Authorization: Token`).",
    "403": "Your role does not allow this in the workspace (`forbidden`, or a specific code).",
    "404": "No such object in this workspace (`not_found`, or a specific code).",
}
_UNSAFE = {"post", "put", "patch", "delete"}


def _error_schemas(codes: dict[str, Any]) -> dict[str, Any]:
    rows = "\n".join(
        f"| `{d.code}` | {d.status} | {d.when} | {d.detail or '—'} |"
        for d in sorted(codes.values(), key=lambda d: (d.status, d.code))
    )
    return {
        "Error": {
            "type": "object",
            "description": 'Every error answer: `{"error": {code, message, detail}}`.\n\n'
            "| code | status | when | detail |\n| --- | --- | --- | --- |\n" + rows,
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "detail"],
                    "properties": {
                        "code": {"type": "string", "enum": sorted(codes)},
                        "message": {"type": "string"},
                        "detail": {"type": "object", "additionalProperties": True},
                    },
                }
            },
        },
        "ValidationError": {
            "type": "object",
            "description": "A validation error: the one shape of every 400 about the input.",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "detail"],
                    "properties": {
                        "code": {"type": "string", "enum": ["validation_failed"]},
                        "message": {
                            "type": "string",
                            "description": "the first problem, prefixed by its path",
                        },
                        "detail": {
                            "type": "object",
                            "required": ["fields"],
                            "properties": {
                                "fields": {
                                    "type": "object",
                                    "description": "path of each bad input -> its messages",
                                    "additionalProperties": {
                                        "type": "array",
                                        "items": {"type": "string"},
                                    },
                                }
                            },
                        },
                    },
                }
            },
        },
    }


def error_responses_hook(result: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing: the error schemas with the catalogue of codes
    (cdp.errors.ERROR_CODES, filled by each API module), and the error answers on every
    operation (409 on those that change something)."""
    from cdp.errors import ERROR_CODES

    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_error_schemas(ERROR_CODES))
    error = {"$ref": "#/components/schemas/Error"}
    # anyOf: a validation_failed answer also has the general Error shape
    invalid = {"anyOf": [{"$ref": "#/components/schemas/ValidationError"}, error]}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, response in responses.items():
                # an error status an operation declares itself (description only): our shape
                if status[0] in "45" and "content" not in response:
                    response["content"] = {"application/json": {"schema": error}}
            for status, description in _ERROR_STATUSES.items():
                body = invalid if status == "400" else error
                responses.setdefault(
                    status,
                    {"description": description, "content": {"application/json": {"schema": body}}},
                )
            if method in _UNSAFE:
                responses.setdefault(
                    "409",
                    {
                        "description": "The object's state does not allow this (see the codes "
                        "of `Error`).",
                        "content": {"application/json": {"schema": error}},
                    },
                )
    return result
