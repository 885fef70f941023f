"""Endpoint configuration and request validation: clear errors naming field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.core._errors import ConfigurationError, EndpointConfigError
from agentrt.pool import (
    ChatRequest,
    EndpointSpec,
    endpoints_from_env,
    greedy_only_groups,
    parse_endpoint_list,
)
from agentrt.pool._endpoint import SPEC_GROUP
from agentrt.pool._local import ServerRecord, diagnose_log
from agentrt.pool._metrics import parse_prometheus_text


def test_urls_are_normalised() -> None:
    assert EndpointSpec(url="http://h:8000/v1/").url == "http://h:8000"
    assert EndpointSpec(url="https://gpu.example/vllm").address == ("gpu.example", 443)


@pytest.mark.parametrize(
    "url", ["gpu1:8000", "ftp://h", "http://", "http://h:notaport", "http://h:8000/?x=1"]
)
def test_malformed_urls_are_named(url: str) -> None:
    with pytest.raises(EndpointConfigError, match="AGENTRT_ENDPOINTS\\[0\\]: url"):
        parse_endpoint_list(url)


def test_endpoint_list_with_groups() -> None:
    specs = parse_endpoint_list("plain=http://a:1, spec=http://b:2 ,http://c:3")
    assert [(s.group, s.url) for s in specs] == [
        ("plain", "http://a:1"),
        (SPEC_GROUP, "http://b:2"),
        ("plain", "http://c:3"),
    ]


def test_bad_group_name_is_named() -> None:
    with pytest.raises(EndpointConfigError, match=r"\[1\]: group.*'g p'"):
        parse_endpoint_list("http://a:1,g p=http://b:2")


def test_empty_list_is_an_error() -> None:
    with pytest.raises(EndpointConfigError, match="lists no endpoint"):
        parse_endpoint_list(" , ")


def test_env_falls_back_to_none_and_reads_key() -> None:
    assert endpoints_from_env({}) is None
    specs = endpoints_from_env({"AGENTRT_ENDPOINTS": "http://a:1", "AGENTRT_API_KEY": "k"})
    assert specs is not None and specs[0].api_key is not None
    assert specs[0].api_key.get_secret_value() == "k"


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(
        '[[endpoints]]\nurl = "http://gpu1:8000"\nmodel = "m"\napi_key_env = "KEY1"\n'
        '[[endpoints]]\nurl = "http://gpu2:8000"\ngroup = "spec"\n'
        'speculative = { method = "eagle3", num_speculative_tokens = 3 }\n'
    )
    specs = endpoints_from_env({"AGENTRT_ENDPOINTS_FILE": str(path), "KEY1": "secret"})
    assert specs is not None
    assert specs[0].model == "m" and specs[0].api_key is not None
    assert specs[1].group == "spec" and specs[1].speculative == {
        "method": "eagle3",
        "num_speculative_tokens": 3,
    }
    assert not any(s.greedy_only for s in specs)


def test_greedy_only_endpoints_make_their_group_greedy_only(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(
        '[[endpoints]]\nurl = "http://cpu1:8000"\n'
        '[[endpoints]]\nurl = "http://cpu2:8000"\ngroup = "spec"\ngreedy_only = true\n'
        '[[endpoints]]\nurl = "http://cpu3:8000"\ngroup = "spec"\n'
    )
    specs = endpoints_from_env({"AGENTRT_ENDPOINTS_FILE": str(path)})
    assert specs is not None
    assert greedy_only_groups(specs) == ("spec",)


def test_local_speculative_servers_are_greedy_only() -> None:
    """The local pool runs vLLM's CPU build, whose speculative decoding garbles
    sampled requests (vllm-project/vllm#55005)."""
    common = {"pid": 1, "log_path": "x.log", "model_path": "m", "served_model": "m"}
    plain = ServerRecord(name="plain-0", group="plain", port=8001, **common)
    spec = ServerRecord(name="spec-1", group="spec", port=8002,
                        speculative={"method": "ngram"}, **common)  # fmt: skip
    assert not plain.endpoint().greedy_only
    assert spec.endpoint().greedy_only
    assert greedy_only_groups([plain.endpoint(), spec.endpoint()]) == ("spec",)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not = [toml", "not valid TOML"),
        ("x = 1", r"\[\[endpoints\]\]"),
        ('[[endpoints]]\nurl = "http://a:1"\nweight = 3', r"endpoints\[0\]: weight"),
        ('[[endpoints]]\nurl = "http://a:1"\napi_key = "sk-x"', "api_key_env"),
        ('[[endpoints]]\nurl = "http://a:1"\napi_key_env = "NOPE"', "'NOPE' is not set"),
    ],
)
def test_bad_toml_names_file_and_field(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(text)
    with pytest.raises(EndpointConfigError, match=match) as info:
        endpoints_from_env({"AGENTRT_ENDPOINTS_FILE": str(path)})
    assert str(path) in str(info.value)


def test_missing_toml_file() -> None:
    with pytest.raises(EndpointConfigError, match="not found"):
        endpoints_from_env({"AGENTRT_ENDPOINTS_FILE": "/nonexistent/e.toml"})


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"messages": []}, "messages must not be empty"),
        ({"max_tokens": 0}, "max_tokens must be >= 1, got 0"),
        ({"n": 4}, "n=4 needs temperature > 0"),
        ({"temperature": 3.0}, "temperature must be in"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"messages": [{"content": "x"}]}, r"messages\[0\]"),
    ],
)
def test_bad_requests_are_named(fields: dict[str, object], match: str) -> None:
    base: dict[str, object] = {"messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(ConfigurationError, match=match):
        ChatRequest(**{**base, **fields})  # type: ignore[arg-type]


def test_prometheus_text_sums_label_sets() -> None:
    text = (
        "# HELP vllm:num_requests_running x\n"
        'vllm:num_requests_running{model_name="a"} 2.0\n'
        'vllm:num_requests_running{model_name="b"} 3.0\n'
        'vllm:generation_tokens_total{model_name="a",engine="0"} 1.5e3\n'
        "broken line\nvllm:x NaN\n"
    )
    assert parse_prometheus_text(text) == {
        "vllm:num_requests_running": 5.0,
        "vllm:generation_tokens_total": 1500.0,
    }


def test_prometheus_text_keeps_only_the_names_asked_for() -> None:
    text = (
        'vllm:num_requests_running{model_name="a"} 2.0\n'
        'vllm:num_requests_running_extra{model_name="a"} 9.0\n'
        'vllm:num_requests_waiting{model_name="a"} 1.0\n'
        'vllm:generation_tokens_total{model_name="a"} 7.0\n'
    )
    wanted = ("vllm:num_requests_running", "vllm:num_requests_waiting")
    assert parse_prometheus_text(text, wanted) == {
        "vllm:num_requests_running": 2.0,
        "vllm:num_requests_waiting": 1.0,
    }


def test_failed_start_is_diagnosed() -> None:
    assert "port is taken" in diagnose_log("OSError: [Errno 98] Address already in use")
    assert "torchvision" in diagnose_log("ImportError: torchvision::nms does not exist")
    assert "unknown" in diagnose_log("something else")


def test_runs_plan_greedy_only_groups_from_the_pool() -> None:
    """A runtime builds its runs' search space from the pool's endpoints."""
    from agentrt.budget._profile import BudgetProfile
    from agentrt.langgraph import Runtime
    from agentrt.pool import EndpointPool

    pool = EndpointPool([
        EndpointSpec(url="http://a:1"),
        EndpointSpec(url="http://b:1", group=SPEC_GROUP, greedy_only=True),
    ])  # fmt: skip
    runtime = Runtime(pool=pool)
    space = runtime._run_executor(pool, runtime._known(pool), BudgetProfile.default(), 0).space
    assert space.greedy_only_groups == (SPEC_GROUP,)
    assert {c.strategy for c in space.configs() if c.group == SPEC_GROUP} == {"single"}
