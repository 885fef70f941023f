"""Pydantic at the edges: plain data (a TOML table, a JSON document) in and out
of a schema, with one error form.

:func:`load` validates data into a schema; a failure is a
:class:`~agentrt.core._errors.ProfileError` whose message says the source, and
each bad field with its value, and whose ``path``, ``field`` and ``value`` carry
the first. :func:`dump` is its inverse: JSON-ready data with unset optional
fields left out (TOML has no null). :func:`profile_errors` names the source on a
:class:`~agentrt.core._errors.ConfigurationError` raised while turning a
validated schema into the model it describes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentrt.core._errors import ConfigurationError, ProfileError

__all__ = ["dump", "load", "profile_errors", "validation_error", "without_none"]

SchemaT = TypeVar("SchemaT", bound=BaseModel)


def load(schema: type[SchemaT], data: object, source: str, *, prefix: str = "") -> SchemaT:
    """``data`` validated as ``schema``; ``prefix`` is put before each field name
    (where the data sits in a larger document)."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise validation_error(source, exc, prefix=prefix) from exc


def dump(value: BaseModel) -> dict[str, Any]:
    """``value`` as plain JSON-ready data, its ``None`` fields left out."""
    return value.model_dump(mode="json", exclude_none=True)


def without_none(value: Any) -> Any:
    """``value`` with every ``None`` dropped from its mappings, at any depth (TOML
    has no null)."""
    if isinstance(value, Mapping):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [without_none(v) for v in value]
    return value


def validation_error(source: str, exc: ValidationError, *, prefix: str = "") -> ProfileError:
    """A :class:`ProfileError` naming each bad field and value of a pydantic failure,
    one line each (``field`` and ``value`` carry the first)."""
    errors = exc.errors(include_url=False)
    names = [_field(err["loc"], prefix) for err in errors]
    lines = [
        f"{source}: {name} = {err.get('input')!r}: {err['msg']}"
        for name, err in zip(names, errors, strict=True)
    ]
    return ProfileError(
        "\n".join(lines),
        path=source,
        field=names[0] if names else None,
        value=errors[0].get("input") if errors else None,
    )


@contextmanager
def profile_errors(source: str, field: str | None = None) -> Iterator[None]:
    """Inside the block a :class:`ConfigurationError` becomes a :class:`ProfileError`
    naming ``source`` (and ``field``); a :class:`ProfileError` passes as it is."""
    try:
        yield
    except ProfileError:
        raise
    except ConfigurationError as exc:
        raise ProfileError(f"{source}: {exc}", path=source, field=field) from exc


def _field(loc: tuple[int | str, ...], prefix: str) -> str:
    name = ".".join(str(part) for part in loc)
    if prefix:
        return f"{prefix}.{name}" if name else prefix
    return name or "<root>"
