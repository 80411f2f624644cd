"""OpenAI's published schema for /videos (a copy in tests/fixtures), as jsonschema validators.

Sora's `size` and `seconds` enums are relaxed to strings: Seedance sizes differ by design.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SCHEMA_FILE = Path(__file__).parent / "fixtures" / "openai-videos-openapi.yaml"
RELAXED = {"VideoSize": {"type": "string"}, "VideoSeconds": {"type": "string"}}


@cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SCHEMA_FILE.read_text())
    document["components"]["schemas"].update(RELAXED)
    return document


def validate(component: str, instance: Any) -> None:
    """Raise jsonschema.ValidationError unless `instance` matches `#/components/schemas/X`."""
    document = _document()
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    Draft202012Validator(schema).validate(instance)


def validate_error(body: Any) -> None:
    """OpenAI's error envelope: all four keys present, message and type strings."""
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and isinstance(error["type"], str)
