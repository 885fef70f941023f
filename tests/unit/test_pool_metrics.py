"""Reading vLLM's ``/metrics`` text with prometheus_client's parser."""

from __future__ import annotations

import math

import pytest

from agentrt.pool._metrics import parse_prometheus_text

M = "smollm2-135m-instruct"

# What vLLM serves at /metrics (prometheus_client's text format, two engines),
# cut to one histogram with ten buckets.
VLLM_METRICS = f"""\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="{M}"}} 3.0
vllm:num_requests_running{{engine="1",model_name="{M}"}} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="{M}"}} 1.0
vllm:num_requests_waiting{{engine="1",model_name="{M}"}} 0.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="{M}"}} 1500.0
vllm:generation_tokens_total{{engine="1",model_name="{M}"}} 250.0
# HELP vllm:generation_tokens_created Number of generation tokens processed.
# TYPE vllm:generation_tokens_created gauge
vllm:generation_tokens_created{{engine="0",model_name="{M}"}} 1.7961630450149791e+09
vllm:generation_tokens_created{{engine="1",model_name="{M}"}} 1.7961630450149894e+09
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{{engine="0",finished_reason="stop",model_name="{M}"}} 7.0
vllm:request_success_total{{engine="0",finished_reason="length",model_name="{M}"}} 2.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.001",model_name="{M}"}} 0.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.005",model_name="{M}"}} 1.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.01",model_name="{M}"}} 1.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.02",model_name="{M}"}} 1.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.04",model_name="{M}"}} 2.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.06",model_name="{M}"}} 2.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.08",model_name="{M}"}} 2.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.1",model_name="{M}"}} 2.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.25",model_name="{M}"}} 3.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.5",model_name="{M}"}} 3.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="{M}"}} 4.0
vllm:time_to_first_token_seconds_count{{engine="0",model_name="{M}"}} 4.0
vllm:time_to_first_token_seconds_sum{{engine="0",model_name="{M}"}} 0.9329999999999999
# HELP vllm:time_to_first_token_seconds_created Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds_created gauge
vllm:time_to_first_token_seconds_created{{engine="0",model_name="{M}"}} 1.796163045015042e+09
# HELP vllm:spec_decode_num_accepted_tokens_total Number of accepted tokens.
# TYPE vllm:spec_decode_num_accepted_tokens_total counter
vllm:spec_decode_num_accepted_tokens_total{{engine="0",model_name="{M}"}} 42.0
"""


def test_real_vllm_metrics_sum_over_engines_and_labels() -> None:
    metrics = parse_prometheus_text(VLLM_METRICS)
    assert metrics["vllm:num_requests_running"] == 5.0
    assert metrics["vllm:num_requests_waiting"] == 1.0
    assert metrics["vllm:generation_tokens_total"] == 1750.0
    assert metrics["vllm:request_success_total"] == 9.0
    assert metrics["vllm:spec_decode_num_accepted_tokens_total"] == 42.0
    assert metrics["vllm:generation_tokens_created"] == pytest.approx(2 * 1.796163045e9)


def test_histograms_keep_their_suffixes() -> None:
    metrics = parse_prometheus_text(VLLM_METRICS)
    assert metrics["vllm:time_to_first_token_seconds_count"] == 4.0
    assert metrics["vllm:time_to_first_token_seconds_sum"] == pytest.approx(0.933)
    assert "vllm:time_to_first_token_seconds_bucket" in metrics
    assert "vllm:time_to_first_token_seconds" not in metrics


def test_the_load_check_reads_only_its_two_names() -> None:
    wanted = ("vllm:num_requests_running", "vllm:num_requests_waiting")
    assert parse_prometheus_text(VLLM_METRICS, wanted) == {
        "vllm:num_requests_running": 5.0,
        "vllm:num_requests_waiting": 1.0,
    }


def test_a_counter_typed_without_total_keeps_its_written_name() -> None:
    text = "# TYPE requests counter\nrequests 3\n"
    assert parse_prometheus_text(text) == {"requests": 3.0}


def test_quoted_label_values_timestamps_and_infinities() -> None:
    text = (
        'vllm:x{path="/a}b",note="say \\"hi\\" 9",empty=""} 2 1700000000000\n'
        'vllm:x{path="c\\\\d"} 3\n'
        "vllm:y +Inf\n"
        "vllm:z -1.5e-3\n"
    )
    metrics = parse_prometheus_text(text)
    assert metrics["vllm:x"] == 5.0 and metrics["vllm:z"] == -0.0015
    assert math.isinf(metrics["vllm:y"])


def test_a_bad_line_is_skipped_and_the_rest_read() -> None:
    text = VLLM_METRICS.replace(
        "# HELP vllm:num_requests_waiting",
        'broken line\nvllm:q{unterminated="x} 1\nvllm:x NaN\n# HELP vllm:num_requests_waiting',
    )
    metrics = parse_prometheus_text(text)
    assert metrics["vllm:num_requests_running"] == 5.0
    assert metrics["vllm:num_requests_waiting"] == 1.0
    assert "vllm:x" not in metrics and "vllm:q" not in metrics and "broken" not in metrics


def test_nothing_to_read_is_empty() -> None:
    assert parse_prometheus_text("") == {}
    assert parse_prometheus_text("# only comments\n\n") == {}
    assert parse_prometheus_text(VLLM_METRICS, ()) == {}
