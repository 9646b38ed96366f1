"""Service configuration: one frozen dataclass, the only code that reads the environment.

Every field can be set by an environment variable (``CLS_`` + the field name in upper case, which
is what the Helm chart sets) or by the matching command-line flag (``--field-name``); a flag wins
over the environment, which wins over the default. ``Settings.validate`` runs at start and says
what to change when a value cannot work.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "CLS_"
DEFAULT_MODEL_CONFIG = Path(__file__).with_name("models.json")


def _f(default: Any, why: str) -> Any:
    """A field whose help text travels with it (used for --help and the README table)."""
    return field(default=default, metadata={"help": why})


@dataclass(frozen=True)
class Settings:
    # --- front-ends ---
    host: str = _f("0.0.0.0", "address both front-ends bind to")
    http_port: int = _f(8000, "HTTP/1.1 port (POST /process, /health, /ready, /metrics)")
    grpc_port: int = _f(50051, "gRPC port (classifier.v1.Classifier, health, reflection)")
    enable_http: bool = _f(True, "serve the HTTP front-end")
    enable_grpc: bool = _f(True, "serve the gRPC front-end")

    # --- models ---
    model_config: str = _f(str(DEFAULT_MODEL_CONFIG), "JSON file listing the models to serve")
    models_dir: str = _f("", "folder with one sub-folder per response key; overrides sources")
    device: str = _f("auto", "auto | cpu | cuda (auto picks cuda when available)")
    dtype: str = _f("auto", "auto | fp32 | fp16 | bf16 (auto: fp16 on cuda, fp32 on cpu)")
    torch_threads: int = _f(0, "intra-op threads on cpu; 0 = all cores")

    # --- batching ---
    max_batch_texts: int = _f(128, "most texts one batch may hold")
    max_batch_tokens: int = _f(16384, "token budget of one batch (sum of real tokens)")
    micro_batch_tokens: int = _f(
        0, "padded tokens per forward call (0 = auto: 1024 on cpu, 4096 on cuda)"
    )
    max_wait_ms: float = _f(0.0, "extra wait to grow a batch under load; 0 = take what is queued")
    max_text_tokens: int = _f(512, "tokens kept per text (models accept at most 512)")
    queue_texts: int = _f(2048, "texts admitted but not yet computed; more are refused (503)")

    # --- HTTP limits ---
    max_body_bytes: int = _f(1 << 20, "largest request body (413 beyond)")
    max_header_bytes: int = _f(16 << 10, "largest request line + headers (431 beyond)")
    max_texts_per_request: int = _f(256, "longest JSON array accepted by /process")
    keep_alive_timeout_s: float = _f(15.0, "idle keep-alive connections close after this")
    header_timeout_s: float = _f(10.0, "a request's line and headers must arrive within this")
    body_timeout_s: float = _f(10.0, "longest pause between two parts of a request body (408)")
    request_timeout_s: float = _f(
        0.0, "deadline of an HTTP request (504 once past); Request-Timeout may ask less; 0 = none"
    )
    max_connections: int = _f(4096, "open HTTP connections; more are answered 503 and closed")
    max_pipelined: int = _f(64, "requests in flight per connection before reading pauses")

    # --- lifecycle and logs ---
    shutdown_grace_s: float = _f(25.0, "time to finish accepted work after SIGTERM")
    access_log: bool = _f(False, "one log line per request (off for speed)")
    log_level: str = _f("INFO", "DEBUG | INFO | WARNING | ERROR")

    def validate(self) -> Settings:
        """Fail at start, naming the setting to change, rather than misbehave under load."""
        problems: list[str] = []
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"CLS_DEVICE={self.device!r}: use auto, cpu or cuda")
        if self.dtype not in ("auto", "fp32", "fp16", "bf16"):
            problems.append(f"CLS_DTYPE={self.dtype!r}: use auto, fp32, fp16 or bf16")
        if not (self.enable_http or self.enable_grpc):
            problems.append("CLS_ENABLE_HTTP and CLS_ENABLE_GRPC are both off: nothing to serve")
        for name in ("http_port", "grpc_port"):
            if not 0 <= getattr(self, name) <= 65535:
                problems.append(f"CLS_{name.upper()} must be 0..65535")
        if not 1 <= self.max_text_tokens <= 512:
            problems.append("CLS_MAX_TEXT_TOKENS must be 1..512 (the models' position limit)")
        if self.max_batch_tokens < self.max_text_tokens:
            problems.append("CLS_MAX_BATCH_TOKENS must be >= CLS_MAX_TEXT_TOKENS (one text fits)")
        if 0 < self.micro_batch_tokens < self.max_text_tokens:
            problems.append("CLS_MICRO_BATCH_TOKENS must be 0 (auto) or >= CLS_MAX_TEXT_TOKENS")
        for name in (
            "max_batch_texts",
            "queue_texts",
            "max_body_bytes",
            "max_header_bytes",
            "max_texts_per_request",
            "max_connections",
            "max_pipelined",
        ):
            if getattr(self, name) < 1:
                problems.append(f"CLS_{name.upper()} must be >= 1")
        for name in (
            "max_wait_ms",
            "keep_alive_timeout_s",
            "header_timeout_s",
            "body_timeout_s",
            "request_timeout_s",
            "shutdown_grace_s",
            "torch_threads",
        ):
            if getattr(self, name) < 0:
                problems.append(f"CLS_{name.upper()} must be >= 0")
        if self.queue_texts < self.max_texts_per_request:
            problems.append("CLS_QUEUE_TEXTS must be >= CLS_MAX_TEXTS_PER_REQUEST")
        if not Path(self.model_config).is_file():
            problems.append(f"CLS_MODEL_CONFIG={self.model_config!r} is not a file")
        if problems:
            raise ValueError("invalid configuration:\n  " + "\n  ".join(problems))
        return self

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def public(self) -> dict[str, Any]:
        """The effective configuration, for the start-up log line."""
        return dataclasses.asdict(self)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _parse(kind: type, raw: str, name: str) -> Any:
    if kind is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}={raw!r}: expected true/false")
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected {kind.__name__}") from None


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults, then the environment, then command-line flags; validated."""
    environ = os.environ if environ is None else environ
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = environ.get(env_name(f.name))
        if raw is not None:
            values[f.name] = _parse(hints[f.name], raw, env_name(f.name))

    parser = argparse.ArgumentParser(
        prog="python -m solution.server",
        description="Serve the configured text classifiers over HTTP and gRPC.",
        epilog="Every flag has an environment variable: CLS_ + the flag name in upper case.",
    )
    for f in fields(Settings):
        kind = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        default = values.get(f.name, f.default)
        help_text = f"{f.metadata['help']} [{env_name(f.name)}, default {default!r}]"
        if kind is bool:
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=help_text,
            )
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=default, help=help_text)
    args = parser.parse_args(argv)
    return Settings(**vars(args)).validate()
