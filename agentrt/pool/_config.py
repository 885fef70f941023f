"""Where the endpoints come from: ``AGENTRT_ENDPOINTS``, a TOML file, or the local pool.

The TOML file holds one ``[[endpoints]]`` table per server::

    [[endpoints]]
    url = "http://gpu1:8000"
    group = "plain"                 # or "spec", or a name of your own
    model = "Qwen/Qwen2.5-7B-Instruct"
    api_key_env = "VLLM_API_KEY"    # the key is read from this variable, or
    # api_key_file = "secrets/gpu1.key"  # from this file (relative to the TOML file)
    speculative = { method = "eagle3", num_speculative_tokens = 3 }
    tool_calling = "native"         # the server parses tool calls; or "constrained"
                                    # (the default: structured outputs only) or "none"
    deadline_priority = true        # the server runs --scheduling-policy priority:
                                    # send each request's deadline as its priority

``AGENTRT_ENDPOINTS`` entries have no room for fields: ``AGENTRT_TOOL_CALLING``
sets ``tool_calling`` for all of them (as ``AGENTRT_API_KEY`` sets their key).

Every mistake raises :class:`EndpointConfigError` naming the source, the field
and the value, with one exception that keeps secrets out of messages: an unknown
field (say a mistyped ``apikey = "sk-..."``) is named but its value is not shown,
and every value that is shown is redacted and cut. A key written into the file
itself (``api_key``), a URL carrying credentials, or an ``api_key_env`` that is
not a variable name (the key pasted in its place) is refused the same way.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from agentrt.core._errors import EndpointConfigError
from agentrt.pool._endpoint import PLAIN_GROUP, EndpointSpec
from agentrt.pool._protocol import excerpt

__all__ = ["endpoints_from_env", "endpoints_from_toml", "parse_endpoint_list"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_FILE_FIELDS = ("api_key_env", "api_key_file")  # read here, not by EndpointSpec


def parse_endpoint_list(text: str, *, source: str = "AGENTRT_ENDPOINTS") -> list[EndpointSpec]:
    """Parse ``[group=]url`` entries separated by commas."""
    specs: list[EndpointSpec] = []
    for position, raw in enumerate(text.split(",")):
        entry = raw.strip()
        if not entry:
            continue
        group, sep, url = entry.partition("=")
        if not sep or "://" in group:
            group, url = PLAIN_GROUP, entry
        specs.append(_spec({"url": url.strip(), "group": group.strip()}, f"{source}[{position}]"))
    if not specs:
        raise EndpointConfigError(f"{source} lists no endpoint: {text!r}")
    return specs


def endpoints_from_toml(path: Path, env: Mapping[str, str] | None = None) -> list[EndpointSpec]:
    """Read ``[[endpoints]]`` tables from a TOML file."""
    env = os.environ if env is None else env
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EndpointConfigError(f"{path}: endpoints file not found") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EndpointConfigError(f"{path}: not valid TOML: {exc}") from exc
    tables = document.get("endpoints")
    if not isinstance(tables, list) or not tables:
        raise EndpointConfigError(f"{path}: expected one or more [[endpoints]] tables")
    specs = []
    for i, table in enumerate(tables):
        where = f"{path}: endpoints[{i}]"
        if not isinstance(table, dict):
            raise EndpointConfigError(f"{where}: must be a table, got {type(table).__name__}")
        fields = dict(table)
        key = _api_key(fields, where, path, env)
        if key is not None:
            fields["api_key"] = key
        specs.append(_spec(fields, where))
    return specs


def _api_key(
    fields: dict[str, Any], where: str, path: Path, env: Mapping[str, str]
) -> SecretStr | None:
    """The key named by ``api_key_env`` or ``api_key_file`` (popped from ``fields``)."""
    key_env = fields.pop("api_key_env", None)
    key_file = fields.pop("api_key_file", None)
    if "api_key" in fields:
        raise EndpointConfigError(
            f"{where}.api_key: do not write keys into config files; "
            "name an environment variable with api_key_env or a file with api_key_file"
        )
    if key_env is not None and key_file is not None:
        raise EndpointConfigError(f"{where}: set api_key_env or api_key_file, not both")
    if key_env is not None:
        if not isinstance(key_env, str) or not _ENV_NAME.fullmatch(key_env):
            # Not a variable name: perhaps the key itself, so it is not shown.
            raise EndpointConfigError(
                f"{where}.api_key_env: must name an environment variable (letters, digits, _);"
                " the value given is not a name (not shown: it may be the key itself)"
            )
        if key_env not in env:
            raise EndpointConfigError(
                f"{where}.api_key_env: environment variable {key_env!r} is not set"
            )
        return SecretStr(env[key_env])
    if key_file is not None:
        if not isinstance(key_file, str) or not key_file:
            raise EndpointConfigError(f"{where}.api_key_file: must be a path, got {key_file!r}")
        secret_path = path.parent / key_file
        try:
            key = secret_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise EndpointConfigError(
                f"{where}.api_key_file: cannot read {str(secret_path)!r}: {type(exc).__name__}"
            ) from None
        if not key or "\n" in key:
            raise EndpointConfigError(
                f"{where}.api_key_file: {str(secret_path)!r} must hold one key on one line"
            )
        return SecretStr(key)
    return None


def endpoints_from_env(
    env: Mapping[str, str] | None = None,
) -> list[EndpointSpec] | None:
    """Endpoints configured in the environment, or ``None`` if there are none
    (the caller then falls back to the embedded local pool)."""
    env = os.environ if env is None else env
    listed = env.get("AGENTRT_ENDPOINTS", "").strip()
    file = env.get("AGENTRT_ENDPOINTS_FILE", "").strip()
    if listed and file:
        raise EndpointConfigError("set AGENTRT_ENDPOINTS or AGENTRT_ENDPOINTS_FILE, not both")
    tool_calling = env.get("AGENTRT_TOOL_CALLING", "").strip()
    if listed:
        specs = parse_endpoint_list(listed)
        key = env.get("AGENTRT_API_KEY")
        if key:
            specs = [s.model_copy(update={"api_key": SecretStr(key)}) for s in specs]
        if tool_calling:
            specs = [
                _spec({**s.model_dump(), "tool_calling": tool_calling}, "AGENTRT_TOOL_CALLING")
                for s in specs
            ]
        return specs
    if file and tool_calling:
        raise EndpointConfigError(
            "AGENTRT_TOOL_CALLING applies to AGENTRT_ENDPOINTS only; with"
            " AGENTRT_ENDPOINTS_FILE, set tool_calling in each [[endpoints]] table"
        )
    if file:
        return endpoints_from_toml(Path(file), env)
    return None


def _spec(fields: dict[str, Any], where: str) -> EndpointSpec:
    try:
        return EndpointSpec.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        # ``from None``: pydantic's own text (and its input values) stay out of the chain.
        raise EndpointConfigError(f"{where}: {problems}") from None


def _problem(err: Any) -> str:
    """One validation error as ``field: what (got value)``, never showing a
    secret: an unknown field's value is left out (a mistyped ``apikey`` holds a
    key), our validators' messages already quote the value redacted, and any
    other value is redacted then cut."""
    field = ".".join(str(p) for p in err["loc"]) or "value"
    if err["type"] == "extra_forbidden":
        known = sorted({*EndpointSpec.model_fields, *_FILE_FIELDS} - {"api_key"})
        return f"{field}: is not a known field (its value is not shown); known fields: {known}"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "value_error":
        return f"{field}: {message}"
    return f"{field}: {message} (got {excerpt(repr(err.get('input')))})"
