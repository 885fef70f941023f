"""The pool fingerprint: stable where nothing that changes speed changed, a new hash
where something did, and never a credential in it."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import tomli_w

from agentrt.pool import EndpointSpec, ServerRecord
from agentrt.pool._fingerprint import (
    HostFacts,
    PoolFingerprint,
    covers,
    fingerprint_pool,
    host_facts,
    local_server_fingerprint,
    pool_fingerprint,
    remote_server_fingerprint,
    sanitized_url,
    speed_args,
)
from agentrt.pool._local_model import recorded_weights_sha256

HOST = HostFacts(
    cpu_model="AMD EPYC 9R14",
    cpu_flags=("avx", "avx2", "fma", "sse3", "rdrand"),
    threads=(("cpus", "2"),),
)
ARGS = [
    "--model", "/home/u/.cache/agentrt/models/smollm2", "--served-model-name", "smollm2",
    "--host", "127.0.0.1", "--port", "40001", "--enforce-eager",
    "--no-enable-chunked-prefill", "--max-num-batched-tokens", "8192",
    "--max-model-len", "4096", "--seed", "0", "--dtype", "float32",
]  # fmt: skip


def record(**changes: object) -> ServerRecord:
    base = ServerRecord(
        name="plain-0", group="plain", pid=100, port=40001, log_path="/tmp/a.log",
        model_path="/home/u/.cache/agentrt/models/smollm2", served_model="smollm2",
        started_ns=1, dtype="float32", dtype_reason="no native bf16", launch_args=ARGS,
        kv_cache_gib=2.0,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def local(*records: ServerRecord, host: HostFacts = HOST, sha: str = "abc") -> PoolFingerprint:
    return pool_fingerprint(
        (local_server_fingerprint(r, vllm_version="0.32.0", weights_sha256=sha) for r in records),
        host,
    )


def test_the_hash_is_short_stable_and_ignores_what_changes_every_start() -> None:
    first = local(record())
    again = local(
        record(pid=999, port=50002, log_path="/elsewhere.log", name="plain-7", started_ns=5,
               model_path="/tmp/other-home/models/smollm2",
               launch_args=[a.replace("40001", "50002") for a in ARGS]),
    )  # fmt: skip
    assert first.hash == again.hash
    assert len(first.hash) == 12 and int(first.hash, 16) >= 0
    # Servers alike count once, in any order.
    assert local(record(), record(port=40002)).hash == first.hash
    spec = record(group="spec", speculative={"method": "ngram", "num_speculative_tokens": 4})
    assert local(record(), spec).hash == local(spec, record()).hash != first.hash


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(lambda: local(record(dtype="bfloat16")), id="dtype"),
        pytest.param(lambda: local(record(served_model="other")), id="served model"),
        pytest.param(lambda: local(record(), sha="def"), id="weights checksum"),
        pytest.param(lambda: local(record(kv_cache_gib=4.0)), id="kv cache"),
        pytest.param(
            lambda: local(record(launch_args=[a for a in ARGS if a != "--enforce-eager"])),
            id="enforce-eager",
        ),
        pytest.param(
            lambda: local(record(launch_args=[a.replace("8192", "16384") for a in ARGS])),
            id="max-num-batched-tokens",
        ),
        pytest.param(
            lambda: local(record(speculative={"method": "ngram", "num_speculative_tokens": 2})),
            id="speculative config",
        ),
        pytest.param(
            lambda: local(record(), host=replace(HOST, cpu_flags=(*HOST.cpu_flags, "avx512_bf16"))),
            id="cpu flag",
        ),
        pytest.param(lambda: local(record(), host=replace(HOST, cpu_model="Intel Xeon")), id="cpu"),
        pytest.param(
            lambda: local(record(), host=replace(HOST, threads=(*HOST.threads, ("OMP", "1")))),
            id="threads",
        ),
        pytest.param(
            lambda: pool_fingerprint(
                [local_server_fingerprint(record(), vllm_version="0.33.0", weights_sha256="abc")],
                HOST,
            ),
            id="vllm version",
        ),
    ],
)
def test_anything_that_changes_speed_changes_the_hash(changed: object) -> None:
    assert callable(changed)
    assert changed().hash != local(record()).hash


def test_a_whole_number_kv_cache_hashes_alike_as_int_or_float() -> None:
    assert local(record(kv_cache_gib=2)).hash == local(record(kv_cache_gib=2.0)).hash


def test_a_flag_that_does_not_change_speed_is_left_out() -> None:
    more = replace(HOST, cpu_flags=(*HOST.cpu_flags, "sse4_2", "popcnt", "hypervisor"))
    assert local(record(), host=more).hash == local(record()).hash
    assert "sse3" not in local(record()).cpu_flags and "avx2" in local(record()).cpu_flags


def test_speed_args_are_canonical() -> None:
    spaced = speed_args(["--max-num-batched-tokens", "8192", "--port", "1", "--enforce-eager"])
    joined = speed_args(["--enforce-eager", "--max-num-batched-tokens=8192", "--port=2"])
    assert spaced == joined == ("--enforce-eager", "--max-num-batched-tokens=8192")
    a = speed_args(["--speculative-config", '{"method": "ngram", "num_speculative_tokens": 4}'])
    b = speed_args(['--speculative-config={"num_speculative_tokens":4,"method":"ngram"}'])
    assert a == b


def test_url_credentials_and_api_keys_never_enter_the_fingerprint() -> None:
    # A URL carrying credentials is refused at the edge; the fingerprint would drop them.
    with pytest.raises(ValueError, match="must not carry credentials"):
        EndpointSpec(url="https://alice:s3cret@gpu1.example.com:8443/v1")
    spec = EndpointSpec(
        url="https://gpu1.example.com:8443/v1", group="plain", model="qwen",
        api_key="sk-TOPSECRET",  # type: ignore[arg-type]
    )  # fmt: skip
    remote = fingerprint_pool([(spec, "qwen-32b", "0.11.0")])
    text = json.dumps(remote.to_dict()) + remote.describe() + remote.hash
    assert "TOPSECRET" not in text
    assert remote.servers[0].address == "https://gpu1.example.com:8443"
    assert not remote.local and remote.cpu_model is None
    assert sanitized_url("http://u:p@[::1]:8000/x/?token=abc#f") == "http://[::1]:8000/x"
    other = EndpointSpec(
        url="https://gpu1.example.com:8443", model="qwen",
        api_key="sk-OTHERSECRET",  # type: ignore[arg-type]
    )  # fmt: skip
    assert fingerprint_pool([(other, "qwen-32b", "0.11.0")]).hash == remote.hash


def test_remote_pools_differ_by_url_model_and_version() -> None:
    spec = EndpointSpec(url="http://gpu1:8000", model="qwen")
    base = remote_server_fingerprint(spec, served_model="qwen", version="0.11.0")
    assert pool_fingerprint([base]).hash != pool_fingerprint([replace(base, model="llama")]).hash
    moved = remote_server_fingerprint(
        EndpointSpec(url="http://gpu2:8000", model="qwen"), served_model="qwen", version="0.11.0"
    )
    assert pool_fingerprint([base]).hash != pool_fingerprint([moved]).hash
    newer = replace(base, vllm_version="0.12.0")
    assert pool_fingerprint([base]).hash != pool_fingerprint([newer]).hash


def test_the_fingerprint_round_trips_through_toml() -> None:
    spec = record(group="spec", speculative={"method": "ngram", "num_speculative_tokens": 4})
    fingerprint = local(record(), spec)
    text = tomli_w.dumps({"fingerprint": fingerprint.to_dict()})
    back = PoolFingerprint.from_dict(tomllib.loads(text)["fingerprint"])
    assert back == fingerprint and back.hash == fingerprint.hash


def test_a_calibration_of_more_servers_covers_fewer_on_the_same_machine() -> None:
    spec = record(group="spec", speculative={"method": "ngram", "num_speculative_tokens": 4})
    both, plain = local(record(), spec), local(record())
    assert covers(both, plain) and covers(plain, plain)
    assert not covers(plain, both)
    assert not covers(local(record(), spec, host=replace(HOST, cpu_model="Intel")), plain)
    assert not covers(both, local(record(dtype="bfloat16")))


def test_an_endpoint_of_the_local_pool_is_fingerprinted_as_local(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "agentrt-model.json").write_text(json.dumps({"model.safetensors": "feed"}))
    server = record(model_path=str(folder))
    fingerprint = fingerprint_pool([server.endpoint()], [server], host=HOST)
    assert fingerprint.local and fingerprint.servers[0].weights_sha256 == "feed"
    assert fingerprint.servers[0].address is None
    mixed = fingerprint_pool(
        [server.endpoint(), EndpointSpec(url="http://gpu1:8000")], [server], host=HOST
    )
    assert not mixed.local
    assert recorded_weights_sha256(tmp_path / "absent") is None


def test_host_facts_read_thread_settings_from_the_environment() -> None:
    facts = host_facts({"OMP_NUM_THREADS": "2", "UNRELATED": "x"})
    names = dict(facts.threads)
    assert names["OMP_NUM_THREADS"] == "2" and "UNRELATED" not in names
    assert int(names["cpus"]) >= 1
