"""Where the endpoints come from: ``AGENTRT_ENDPOINTS``, a TOML file, or the local pool.

The TOML file holds one ``[[endpoints]]`` table per server::

    [[endpoints]]
    url = "http://gpu1:8000"
    group = "plain"                 # or "spec", or a name of your own
    model = "Qwen/Qwen2.5-7B-Instruct"
    api_key_env = "VLLM_API_KEY"    # the key is read from this variable, or
    # api_key_file = "secrets/gpu1.key"  # from this file (relative to the TOML file)
    speculative = { method = "eagle3", num_speculative_tokens = 3 }

Every mistake raises :class:`EndpointConfigError` naming the source, the field
and the value.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from agentrt.core._errors import EndpointConfigError
from agentrt.pool._endpoint import PLAIN_GROUP, EndpointSpec

__all__ = ["endpoints_from_env", "endpoints_from_toml", "parse_endpoint_list"]


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
            raise EndpointConfigError(f"{where}: must be a table, got {table!r}")
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
        if not isinstance(key_env, str) or key_env not in env:
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
                f"{where}.api_key_file: cannot read {str(secret_path)!r}: "
                f"{type(exc).__name__}"
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
    if listed:
        specs = parse_endpoint_list(listed)
        key = env.get("AGENTRT_API_KEY")
        if key:
            specs = [s.model_copy(update={"api_key": SecretStr(key)}) for s in specs]
        return specs
    if file:
        return endpoints_from_toml(Path(file), env)
    return None


def _spec(fields: dict[str, Any], where: str) -> EndpointSpec:
    try:
        return EndpointSpec.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
            f" (got {err.get('input')!r})"
            for err in exc.errors()
        )
        raise EndpointConfigError(f"{where}: {problems}") from exc
