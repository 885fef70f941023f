"""What a latency calibration is valid for: a fingerprint of the pool's hardware,
software and server settings, and a short stable hash of it.

A calibration measured on one machine is wrong on another (the shipped one said
~30 ms/token; an AVX2-only AMD EPYC ran the same pool 4-6x slower), so each
calibration is named by the hash of the pool it measured. For local servers the
fingerprint holds the CPU model and the flags that change its speed, the vLLM
version, the model (served name and weights checksum), the dtype, the server
arguments that change speed, the KV cache size and the thread settings. For
remote servers it holds their URLs (never credentials), served models and vLLM
versions. Ports and paths, which change from start to start, are left out.

:func:`pool_fingerprint` and everything it takes are pure; :func:`host_facts`
and :func:`fingerprint_pool` read the machine and the pool.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from agentrt.pool._endpoint import EndpointSpec
from agentrt.pool._hardware import cpu_flags, cpu_model
from agentrt.pool._local import ServerRecord
from agentrt.pool._local_model import recorded_weights_sha256

__all__ = [
    "SPEED_FLAGS",
    "SPEED_SERVER_ARGS",
    "THREAD_ENV",
    "HostFacts",
    "PoolFingerprint",
    "ServerFingerprint",
    "covers",
    "fingerprint_pool",
    "host_facts",
    "local_server_fingerprint",
    "pool_fingerprint",
    "remote_server_fingerprint",
    "sanitized_url",
    "speed_args",
    "vllm_version",
]

HASH_CHARS = 12
SPEED_FLAGS = frozenset(
    {
        "avx", "avx2", "fma", "f16c", "avx_vnni",
        "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
        "amx_tile", "amx_bf16", "amx_int8",
        "asimd", "sve", "sve2", "bf16", "i8mm",
    }
)  # fmt: skip
"""CPU flags (x86 ``/proc/cpuinfo``, Arm features) that change how fast vLLM's CPU
kernels run; the others (``sse3``, ``rdrand``, ...) do not enter the fingerprint."""

SPEED_SERVER_ARGS = frozenset(
    {
        "--enforce-eager", "--dtype", "--speculative-config", "--max-num-batched-tokens",
        "--max-model-len", "--max-num-seqs", "--enable-chunked-prefill",
        "--no-enable-chunked-prefill", "--enable-prefix-caching", "--no-enable-prefix-caching",
        "--block-size", "--kv-cache-dtype", "--quantization", "--tensor-parallel-size",
        "--pipeline-parallel-size", "--data-parallel-size", "--gpu-memory-utilization",
        "--compilation-config", "--scheduling-policy", "-O",
    }
)  # fmt: skip
"""vLLM server arguments that change per-request latency (ports, hosts, paths and
names do not)."""

THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VLLM_CPU_OMP_THREADS_BIND",
    "VLLM_CPU_NUM_OF_RESERVED_CPU",
)
"""Environment variables of the local servers that set their threads."""

_BOOLEAN_ARGS = frozenset(
    {
        "--enforce-eager", "--enable-chunked-prefill", "--no-enable-chunked-prefill",
        "--enable-prefix-caching", "--no-enable-prefix-caching",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ServerFingerprint:
    """One server's share of the fingerprint (servers alike in all of it count once)."""

    group: str
    model: str | None
    address: str | None = None
    """A remote server's URL without credentials; None for a local one (its port
    changes from start to start)."""
    weights_sha256: str | None = None
    dtype: str | None = None
    speculative: str | None = None
    """The ``--speculative-config`` as canonical JSON."""
    args: tuple[str, ...] = ()
    """Speed-changing server arguments, canonical (``--flag=value``), sorted."""
    kv_cache_gib: float | None = None
    vllm_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "group": self.group,
            "model": self.model,
            "address": self.address,
            "weights_sha256": self.weights_sha256,
            "dtype": self.dtype,
            "speculative": self.speculative,
            "args": list(self.args),
            "kv_cache_gib": self.kv_cache_gib,
            "vllm_version": self.vllm_version,
        }
        return {k: v for k, v in row.items() if v is not None}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ServerFingerprint:
        kv = row.get("kv_cache_gib")
        return cls(
            group=str(row["group"]),
            model=_optional_str(row.get("model")),
            address=_optional_str(row.get("address")),
            weights_sha256=_optional_str(row.get("weights_sha256")),
            dtype=_optional_str(row.get("dtype")),
            speculative=_optional_str(row.get("speculative")),
            args=tuple(str(a) for a in row.get("args", ())),
            kv_cache_gib=None if kv is None else float(kv),
            vllm_version=_optional_str(row.get("vllm_version")),
        )


@dataclass(frozen=True)
class HostFacts:
    """The machine the local servers run on: CPU model, speed flags, threads."""

    cpu_model: str
    cpu_flags: tuple[str, ...]
    threads: tuple[tuple[str, str], ...] = ()
    """``("cpus", "2")`` (the CPUs this process may use) and each set THREAD_ENV var."""


@dataclass(frozen=True)
class PoolFingerprint:
    """What a calibration is valid for. ``hash`` (12 hex digits) names its file."""

    local: bool
    servers: tuple[ServerFingerprint, ...]
    cpu_model: str | None = None
    cpu_flags: tuple[str, ...] = ()
    threads: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (TOML-ready: no None), the form that is hashed and stored."""
        document: dict[str, Any] = {
            "local": self.local,
            "cpu_flags": list(self.cpu_flags),
            "threads": {k: v for k, v in self.threads},
            "servers": [s.to_dict() for s in self.servers],
        }
        if self.cpu_model is not None:
            document["cpu_model"] = self.cpu_model
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> PoolFingerprint:
        threads = document.get("threads", {})
        return cls(
            local=bool(document["local"]),
            servers=tuple(ServerFingerprint.from_dict(s) for s in document.get("servers", ())),
            cpu_model=_optional_str(document.get("cpu_model")),
            cpu_flags=tuple(str(f) for f in document.get("cpu_flags", ())),
            threads=tuple(sorted((str(k), str(v)) for k, v in dict(threads).items())),
        )

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_CHARS]

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(sorted({s.group for s in self.servers}))

    def describe(self) -> str:
        """One line for people: where, what, which groups."""
        models = sorted({s.model or "?" for s in self.servers})
        where = (
            f"local, {self.cpu_model or 'unknown CPU'}"
            if self.local
            else "remote " + ", ".join(sorted({s.address or "?" for s in self.servers}))
        )
        dtypes = sorted({s.dtype for s in self.servers if s.dtype})
        extra = f", {'/'.join(dtypes)}" if dtypes else ""
        return f"{self.hash} ({where}; {', '.join(models)}{extra}; groups {', '.join(self.groups)})"


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def sanitized_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL: user, password, query and fragment dropped."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def speed_args(args: Sequence[str]) -> tuple[str, ...]:
    """The speed-changing arguments of a server command line, canonical and sorted
    (``--flag value`` and ``--flag=value`` alike; JSON values with sorted keys)."""
    found: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        flag, eq, inline = arg.partition("=")
        if flag in SPEED_SERVER_ARGS:
            if eq:
                found[flag] = inline
            elif flag in _BOOLEAN_ARGS:
                found[flag] = ""
            elif i + 1 < len(args):
                found[flag] = args[i + 1]
                i += 1
        i += 1
    return tuple(sorted(f"{k}={_canonical_json(v)}" if v else k for k, v in found.items()))


def _canonical_json(value: str) -> str:
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    if isinstance(parsed, dict | list):
        return json.dumps(parsed, sort_keys=True, separators=(",", ":"))
    return value


def local_server_fingerprint(
    record: ServerRecord, *, vllm_version: str | None, weights_sha256: str | None
) -> ServerFingerprint:
    """A local server's fingerprint from its state-file record (pure)."""
    args = list(record.launch_args) or [*record.extra_args]
    if record.dtype is not None and not any(a.split("=")[0] == "--dtype" for a in args):
        args += ["--dtype", record.dtype]
    return ServerFingerprint(
        group=record.group,
        model=record.served_model,
        weights_sha256=weights_sha256,
        dtype=record.dtype,
        speculative=None if record.speculative is None else _json(record.speculative),
        args=speed_args(args),
        kv_cache_gib=None if record.kv_cache_gib is None else float(record.kv_cache_gib),
        vllm_version=vllm_version,
    )


def remote_server_fingerprint(
    spec: EndpointSpec, *, served_model: str | None = None, version: str | None = None
) -> ServerFingerprint:
    """A configured server's fingerprint: its URL without credentials, model, version."""
    return ServerFingerprint(
        group=spec.group,
        model=served_model or spec.model,
        address=sanitized_url(spec.url),
        speculative=None if spec.speculative is None else _json(spec.speculative),
        vllm_version=version,
    )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def pool_fingerprint(
    servers: Iterable[ServerFingerprint], host: HostFacts | None = None
) -> PoolFingerprint:
    """The pool's fingerprint (pure). ``host`` is given for a local pool, None for a
    remote one; servers alike in every field count once, in a stable order."""
    distinct = tuple(sorted(set(servers), key=lambda s: _json(s.to_dict())))
    if host is None:
        return PoolFingerprint(local=False, servers=distinct)
    return PoolFingerprint(
        local=True,
        servers=distinct,
        cpu_model=host.cpu_model,
        cpu_flags=tuple(sorted(SPEED_FLAGS.intersection(host.cpu_flags))),
        threads=tuple(sorted(host.threads)),
    )


def covers(cached: PoolFingerprint, wanted: PoolFingerprint) -> bool:
    """A calibration of ``cached`` serves ``wanted``: the same machine and settings,
    and every distinct server of ``wanted`` measured in ``cached`` (a calibration of
    a plain + speculative pool covers the plain-only pool on the same machine)."""
    return (
        cached.local == wanted.local
        and cached.cpu_model == wanted.cpu_model
        and cached.cpu_flags == wanted.cpu_flags
        and cached.threads == wanted.threads
        and set(wanted.servers) <= set(cached.servers)
    )


# -- reading the machine and the pool -------------------------------------------------


def vllm_version() -> str | None:
    """The installed vLLM's version (the ``vllm-cpu`` build, else ``vllm``), or None."""
    for distribution in ("vllm-cpu", "vllm"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def host_facts(environ: Mapping[str, str] | None = None) -> HostFacts:
    """This machine's CPU model, speed flags and thread settings."""
    environ = os.environ if environ is None else environ
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 0
    threads = [("cpus", str(cpus))]
    threads += [(name, environ[name]) for name in THREAD_ENV if environ.get(name)]
    return HostFacts(
        cpu_model=cpu_model(),
        cpu_flags=tuple(sorted(SPEED_FLAGS.intersection(cpu_flags()))),
        threads=tuple(threads),
    )


@dataclass(frozen=True)
class _Served:
    spec: EndpointSpec
    served_model: str | None = None
    version: str | None = None


def fingerprint_pool(
    endpoints: Iterable[EndpointSpec | tuple[EndpointSpec, str | None, str | None]],
    local_servers: Sequence[ServerRecord] = (),
    *,
    host: HostFacts | None = None,
) -> PoolFingerprint:
    """The fingerprint of a pool of ``endpoints`` (each a spec, or ``(spec,
    served_model, version)`` as an opened pool learned them). An endpoint whose
    URL is one of ``local_servers`` is fingerprinted as a local server; the pool
    is local when all of them are."""
    by_url = {record.url: record for record in local_servers}
    served = [
        _Served(e) if isinstance(e, EndpointSpec) else _Served(e[0], e[1], e[2]) for e in endpoints
    ]
    local = bool(served) and all(s.spec.url in by_url for s in served)
    if not local:
        return pool_fingerprint(
            remote_server_fingerprint(s.spec, served_model=s.served_model, version=s.version)
            for s in served
        )
    version = vllm_version()
    fingerprints = []
    for s in served:
        record = by_url[s.spec.url]
        fingerprints.append(
            local_server_fingerprint(
                record,
                vllm_version=version,
                weights_sha256=recorded_weights_sha256(record.model_path),
            )
        )
    return pool_fingerprint(fingerprints, host or host_facts())
