import pytest

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
