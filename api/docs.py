"""The OpenAPI document flattened for the server-rendered reference page (/api/docs/):
one row per operation, parameter, response and schema field. Pure: a dict in, lists out."""

from __future__ import annotations

import html
import re
from typing import Any

CODE_SPAN = re.compile(r"`([^`\n]+)`")


def code_spans(text: str) -> str:
    """HTML for a description: the text escaped, and `backticked` parts as <code>."""
    return CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(text, quote=True))


def _describe(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "allOf" in schema:
        return " & ".join(_describe(part) for part in schema["allOf"])
    text = str(schema.get("type", "any"))
    if schema.get("format"):
        text += f" ({schema['format']})"
    if schema.get("enum"):
        text += ": " + " | ".join(str(v) for v in schema["enum"] if v is not None)
    if "minimum" in schema or "maximum" in schema:
        text += f" [{schema.get('minimum', '')}..{schema.get('maximum', '')}]"
    if schema.get("items"):
        text += " of " + _describe(schema["items"])
    return text


def components(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "description": component.get("description", ""),
            "enum": [v for v in component.get("enum", []) if v is not None],
            "fields": [
                {
                    "name": field,
                    "type": _describe(spec) + (", nullable" if spec.get("nullable") else ""),
                    "required": field in component.get("required", []),
                    "description": spec.get("description", ""),
                }
                for field, spec in component.get("properties", {}).items()
            ],
        }
        for name, component in sorted(schema.get("components", {}).get("schemas", {}).items())
    ]


def operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    operations = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            responses = []
            for code, response in operation.get("responses", {}).items():
                bodies = [
                    f"{media}: {_describe(body.get('schema', {}))}"
                    for media, body in response.get("content", {}).items()
                ]
                responses.append(
                    {"code": code, "description": response.get("description", ""), "bodies": bodies}
                )
            operations.append(
                {
                    "path": path,
                    "method": method.upper(),
                    "description": operation.get("description", ""),
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "type": _describe(p.get("schema", {})),
                            "description": p.get("description", ""),
                        }
                        for p in operation.get("parameters", [])
                    ],
                    "responses": responses,
                }
            )
    return operations
