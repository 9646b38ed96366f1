import dataclasses
import typing

import pytest
import torch

from solution.server import config


def test_defaults_env_and_flags_in_that_order():
    s = config.load([], environ={})
    assert s.http_port == 8000 and s.enable_grpc is True
    s = config.load([], environ={"CLS_HTTP_PORT": "9000", "CLS_ENABLE_GRPC": "false"})
    assert s.http_port == 9000 and s.enable_grpc is False
    s = config.load(["--http-port", "9100", "--enable-grpc"], environ={"CLS_HTTP_PORT": "9000"})
    assert s.http_port == 9100 and s.enable_grpc is True


@pytest.mark.parametrize(
    "env, message",
    [
        ({"CLS_DEVICE": "tpu"}, "CLS_DEVICE"),
        ({"CLS_MAX_TEXT_TOKENS": "600"}, "CLS_MAX_TEXT_TOKENS"),
        ({"CLS_ENABLE_HTTP": "0", "CLS_ENABLE_GRPC": "0"}, "nothing to serve"),
        ({"CLS_MODEL_CONFIG": "/nonexistent.json"}, "CLS_MODEL_CONFIG"),
        ({"CLS_QUEUE_TEXTS": "0"}, "CLS_QUEUE_TEXTS"),
        ({"CLS_CUDA_GRAPHS": "sometimes"}, "CLS_CUDA_GRAPHS"),
        ({"CLS_BODY_TIMEOUT_S": "-1"}, "CLS_BODY_TIMEOUT_S"),
        ({"CLS_REQUEST_TIMEOUT_S": "-0.5"}, "CLS_REQUEST_TIMEOUT_S"),
    ],
)
def test_invalid_settings_name_what_to_change(env, message):
    with pytest.raises(ValueError, match=message):
        config.load([], environ=env)


def test_unparseable_values_name_the_variable():
    with pytest.raises(ValueError, match="CLS_HTTP_PORT"):
        config.load([], environ={"CLS_HTTP_PORT": "eighty"})
    with pytest.raises(ValueError, match="CLS_ACCESS_LOG"):
        config.load([], environ={"CLS_ACCESS_LOG": "maybe"})


HINTS = typing.get_type_hints(config.Settings)
NUMERIC = sorted(
    f.name for f in dataclasses.fields(config.Settings) if HINTS[f.name] in (int, float)
)


def test_every_numeric_setting_has_a_range():
    assert NUMERIC and sorted(config.NUMERIC_RANGES) == NUMERIC


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "-1", "1e12"])
def test_every_numeric_setting_must_be_finite_and_in_range(name, raw):
    variable = config.env_name(name)
    with pytest.raises(ValueError, match=variable) as info:
        config.load([], environ={variable: raw})
    assert "\n" not in str(info.value)  # one line on stderr


@pytest.mark.parametrize("flag", ["--header-timeout-s", "--keep-alive-timeout-s"])
def test_flags_are_checked_like_the_environment(flag):
    with pytest.raises(ValueError, match=flag.removeprefix("--").replace("-", "_").upper()):
        config.load([flag, "nan"], environ={})


@pytest.mark.parametrize(
    "env",
    [
        {"CLS_MAX_WAIT_MS": "0", "CLS_SHUTDOWN_GRACE_S": "0", "CLS_TORCH_THREADS": "0"},
        {"CLS_HTTP_PORT": "0", "CLS_GRPC_PORT": "65535"},
        {"CLS_HEADER_TIMEOUT_S": "0.5", "CLS_KEEP_ALIVE_TIMEOUT_S": "0.5"},
        {"CLS_MAX_TEXT_TOKENS": "512", "CLS_MICRO_BATCH_TOKENS": "0"},
    ],
)
def test_edge_values_inside_the_ranges_are_accepted(env):
    config.load([], environ=env)


def test_several_problems_are_named_together_in_one_line():
    with pytest.raises(ValueError) as info:
        config.load([], environ={"CLS_HEADER_TIMEOUT_S": "nan", "CLS_QUEUE_TEXTS": "-5"})
    message = str(info.value)
    assert "CLS_HEADER_TIMEOUT_S" in message and "CLS_QUEUE_TEXTS" in message
    assert "\n" not in message


def test_an_unknown_variable_is_refused_naming_the_closest_setting():
    with pytest.raises(ValueError, match=r"CLS_MAX_BATCH_TXTS.*did you mean CLS_MAX_BATCH_TEXTS"):
        config.load([], environ={"CLS_MAX_BATCH_TXTS": "5"})
    with pytest.raises(ValueError, match=r"CLS_ZZZ.*--help"):
        config.load([], environ={"CLS_ZZZ": "1"})
    config.load([], environ={"OTHER_MAX_BATCH_TXTS": "5"})  # only the CLS_ prefix is ours


def test_kubernetes_service_links_are_not_mistaken_for_typos():
    """A Service named "cls-api" in the namespace injects these into every pod."""
    config.load(
        [],
        environ={
            "CLS_API_SERVICE_HOST": "10.0.0.11",
            "CLS_API_SERVICE_PORT": "8000",
            "CLS_API_SERVICE_PORT_HTTP": "8000",
            "CLS_API_PORT": "tcp://10.0.0.11:8000",
            "CLS_API_PORT_8000_TCP": "tcp://10.0.0.11:8000",
            "CLS_API_PORT_8000_TCP_PROTO": "tcp",
            "CLS_API_PORT_8000_TCP_ADDR": "10.0.0.11",
        },
    )
    with pytest.raises(ValueError, match="CLS_HTTP_PROT"):
        config.load([], environ={"CLS_HTTP_PROT": "8000"})  # a typo is still one


def test_log_level_must_be_a_logging_level():
    with pytest.raises(ValueError, match="CLS_LOG_LEVEL='LOUD'"):
        config.load([], environ={"CLS_LOG_LEVEL": "LOUD"})
    assert config.load([], environ={"CLS_LOG_LEVEL": "debug"}).log_level == "debug"


@pytest.mark.parametrize(
    "capability, name, ok", [((7, 5), "Tesla T4", False), ((9, 0), "NVIDIA H200", True)]
)
def test_bf16_needs_a_gpu_with_bf16(monkeypatch, capability, name, ok):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    cuda = torch.device("cuda")
    assert config.pick_dtype("fp16", cuda) == torch.float16
    if ok:
        assert config.pick_dtype("bf16", cuda) == torch.bfloat16
    else:
        with pytest.raises(ValueError, match=r"Tesla T4 is 7\.5: use fp16"):
            config.pick_dtype("bf16", cuda)
