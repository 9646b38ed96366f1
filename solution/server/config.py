"""Service configuration: one frozen dataclass, the only code that reads the environment.

Every field can be set by an environment variable (``CLS_`` + the field name in upper case, which
is what the Helm chart sets) or by the matching command-line flag (``--field-name``); a flag wins
over the environment, which wins over the default. ``Settings.validate`` runs at start and says
what to change when a value cannot work.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

if TYPE_CHECKING:  # torch loads only where a device is resolved: --help and checks stay fast
    import torch

ENV_PREFIX = "CLS_"
DEFAULT_MODEL_CONFIG = Path(__file__).with_name("models.json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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
    grpc_max_streams_per_connection: int = _f(
        256, "concurrent gRPC calls per connection (HTTP/2 streams); more wait in the client"
    )
    grpc_max_pending_rpcs: int = _f(
        16384, "gRPC calls received but not yet taken by a handler; grpc cancels beyond it"
    )

    # --- models ---
    model_config: str = _f(str(DEFAULT_MODEL_CONFIG), "JSON file listing the models to serve")
    models_dir: str = _f("", "folder with one sub-folder per response key; overrides sources")
    device: str = _f("auto", "auto | cpu | cuda (auto picks cuda when available)")
    dtype: str = _f("auto", "auto | fp32 | fp16 | bf16 (auto: fp16 on cuda, fp32 on cpu)")
    torch_threads: int = _f(0, "intra-op threads on cpu; 0 = all cores")
    worker_nice: int = _f(
        10,
        "cpu: the compute thread's nice value; the event loop goes first when cores are short",
    )
    cuda_graphs: str = _f("auto", "auto | on | off: CUDA graphs per shape bucket (auto: on cuda)")

    # --- batching ---
    max_batch_texts: int = _f(128, "most texts one batch may hold")
    max_batch_tokens: int = _f(16384, "token budget of one batch (sum of real tokens)")
    micro_batch_tokens: int = _f(
        0,
        "padded tokens per eager forward call (0 = auto: 1024 on cpu, 4096 on cuda); calls "
        "replayed from CUDA graphs are cut to the captured buckets instead",
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
        if self.cuda_graphs not in ("auto", "on", "off"):
            problems.append(f"CLS_CUDA_GRAPHS={self.cuda_graphs!r}: use auto, on or off")
        if not (self.enable_http or self.enable_grpc):
            problems.append("CLS_ENABLE_HTTP and CLS_ENABLE_GRPC are both off: nothing to serve")
        if self.log_level.upper() not in LOG_LEVELS:
            problems.append(f"CLS_LOG_LEVEL={self.log_level!r}: use {', '.join(LOG_LEVELS)}")
        if self.max_batch_tokens < self.max_text_tokens:
            problems.append("CLS_MAX_BATCH_TOKENS must be >= CLS_MAX_TEXT_TOKENS (one text fits)")
        if 0 < self.micro_batch_tokens < self.max_text_tokens:
            problems.append("CLS_MICRO_BATCH_TOKENS must be 0 (auto) or >= CLS_MAX_TEXT_TOKENS")
        problems += range_problems(self)  # ranges first: the checks below compare values
        if self.queue_texts < self.max_texts_per_request:
            problems.append("CLS_QUEUE_TEXTS must be >= CLS_MAX_TEXTS_PER_REQUEST")
        if not Path(self.model_config).is_file():
            problems.append(f"CLS_MODEL_CONFIG={self.model_config!r} is not a file")
        refuse(problems)
        return self

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def public(self) -> dict[str, Any]:
        """The effective configuration, for the start-up log line."""
        return dataclasses.asdict(self)


# Every numeric setting's accepted values (inclusive), with where the bounds come from. A value
# outside them (nan and inf included) is refused at start: a nan timeout would otherwise start
# "ready" and then time out every request, an absurd one overflow a timer or a buffer.
# A new numeric setting needs a row (a test checks).
NUMERIC_RANGES: dict[str, tuple[float, float, str]] = {
    "http_port": (0, 65535, "a TCP port; 0 picks a free one"),
    "grpc_port": (0, 65535, "a TCP port; 0 picks a free one"),
    "grpc_max_streams_per_connection": (1, 1 << 16, "calls one client connection holds"),
    "grpc_max_pending_rpcs": (1, 1 << 20, "each waiting call holds its headers in memory"),
    "torch_threads": (0, 1024, "0 uses every core"),
    "worker_nice": (0, 19, "a thread may lower its own priority, not raise it"),
    "max_batch_texts": (1, 1 << 16, "texts in one forward batch"),
    "max_batch_tokens": (1, 1 << 22, "one batch's tokens must fit in memory"),
    "micro_batch_tokens": (0, 1 << 22, "0 picks per device"),
    "max_wait_ms": (0, 10_000, "a wait of more than 10 s is a latency bug, not batching"),
    "max_text_tokens": (1, 512, "the models' position limit"),
    "queue_texts": (1, 1 << 24, "admitted texts are held in memory"),
    "max_body_bytes": (1, 1 << 30, "grpc's message limit is a 32-bit int; 1 GiB is plenty"),
    "max_header_bytes": (1, 1 << 20, "a header block over 1 MiB is an attack"),
    "max_texts_per_request": (1, 1 << 16, "one request's texts"),
    "keep_alive_timeout_s": (0.001, 86_400, "seconds; 0 would close every connection unanswered"),
    "header_timeout_s": (0.001, 3600, "seconds; 0 would time out every request"),
    "body_timeout_s": (0.001, 3600, "seconds; 0 would time out every body"),
    "request_timeout_s": (0, 86_400, "seconds; 0 = no deadline"),
    "max_connections": (1, 1 << 20, "open file descriptors"),
    "max_pipelined": (1, 1 << 16, "requests held per connection"),
    "shutdown_grace_s": (0, 3600, "seconds; Kubernetes' grace period must exceed it"),
}


# ---- device and dtype: the two settings that depend on the machine ------------------------------


def pick_device(name: str) -> torch.device:
    """``CLS_DEVICE`` (a name ``validate`` accepted) resolved on this machine."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("CLS_DEVICE=cuda but no CUDA device is visible; use auto or cpu")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: where bf16 matmuls run natively instead of being emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """``CLS_DTYPE`` (a name ``validate`` accepted) resolved for ``device``: what it cannot run
    fast and right is refused with the setting to change."""
    import torch

    if name == "auto":
        name = "fp16" if device.type == "cuda" else "fp32"
    if device.type == "cpu" and name == "fp16":
        raise ValueError("CLS_DTYPE=fp16 is slow and imprecise on cpu; use fp32 or bf16")
    if device.type == "cpu" and name == "bf16" and not cpu_has_native_bf16():
        raise ValueError("CLS_DTYPE=bf16 needs a cpu with avx512_bf16 or amx; use fp32")
    if device.type == "cuda" and name == "bf16":
        # bf16 tensor cores start with compute capability 8.0 (Ampere); before that (a T4 is
        # 7.5) torch emulates bf16, far slower than fp16 on the same card.
        major, minor = torch.cuda.get_device_capability(device)
        if major < 8:
            raise ValueError(
                f"CLS_DTYPE=bf16 needs a GPU with bf16 (compute capability 8.0 or later); "
                f"{torch.cuda.get_device_name(device)} is {major}.{minor}: use fp16 or auto"
            )
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    return dtypes[name]


def numeric_kind(name: str) -> type | None:
    """``int`` or ``float`` for a numeric setting, else None (``bool`` is not numeric here)."""
    kind = get_type_hints(Settings)[name]
    return kind if kind in (int, float) else None


def range_problems(settings: Settings) -> list[str]:
    """Each numeric setting that is not a finite number inside its ``NUMERIC_RANGES`` row."""
    problems = []
    for f in fields(settings):
        if numeric_kind(f.name) is None:
            continue
        value = getattr(settings, f.name)
        low, high, why = NUMERIC_RANGES[f.name]
        if not (math.isfinite(value) and low <= value <= high):
            problems.append(f"{env_name(f.name)}={value!r}: use {low:g}..{high:g} ({why})")
    return problems


# What Kubernetes injects for every Service of the namespace (docker-link style): a Service named
# "cls-..." gives CLS_..._SERVICE_HOST=10.0.0.1, CLS_..._PORT=tcp://10.0.0.1:8000 and the like. The
# chart turns service links off, but a pod spec written by hand may not: these are never typos.
_SERVICE_LINK = re.compile(r"_SERVICE_HOST$|_SERVICE_PORT(_\w+)?$|_PORT_\d+_(TCP|UDP|SCTP)(_\w+)?$")
_SERVICE_LINK_VALUE = re.compile(r"^(tcp|udp|sctp)://")


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``CLS_*`` variables that name no setting: a typo would otherwise be silently ignored."""
    known = [env_name(f.name) for f in fields(Settings)]
    problems = []
    candidates = (
        k
        for k in environ
        if k.startswith(ENV_PREFIX)
        and k not in known
        and not _SERVICE_LINK.search(k)
        and not _SERVICE_LINK_VALUE.match(environ[k])
    )
    for name in sorted(candidates):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}?" if close else "--help lists the settings"
        problems.append(f"{name} is not a setting: {hint}")
    return problems


def refuse(problems: list[str]) -> None:
    """Raise the problems as one line, so that start-up prints one clear message on stderr."""
    if problems:
        raise ValueError("invalid configuration: " + "; ".join(problems))


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
    problems = unknown_variables(environ)
    for f in fields(Settings):
        raw = environ.get(env_name(f.name))
        if raw is not None:
            try:
                values[f.name] = _parse(hints[f.name], raw, env_name(f.name))
            except ValueError as exc:
                problems.append(str(exc))
    refuse(problems)

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
