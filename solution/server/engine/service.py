"""The protocol-neutral service: the one call both front-ends make, and the one place they report.

    HTTP (http/routes.py) / gRPC (rpc/servicer.py):
        decode -> Service.classify(texts, deadline, options) -> encode

The texts-per-request limit, the options' check and the engine binding live here, once (admission
itself, readiness included, is ``Scheduler.admit``'s; before the models have loaded there is no
engine, and the service answers ``NotReady``); each front-end keeps only its decoding, its encoding
and its table from ``ServiceError`` to its own status codes.
``observe`` is the one metrics hook of both front-ends: every request they receive ends in exactly
one call, with a route label from a bounded set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

from solution.server.compute.scoring import Result
from solution.server.engine.engine import Engine
from solution.server.engine.entries import Client
from solution.server.engine.options import Options
from solution.server.errors import InvalidInput, NotReady, Overloaded

__all__ = ["CLIENT_ID_KEY", "Client", "ModelInfo", "Observe", "Service", "client_key"]

Observe = Callable[[str, str, str, float], None]  # (protocol, route, status, seconds)

log = logging.getLogger(__name__)

OTHER_ROUTE = "other"  # the label of every route a front-end does not serve (bounded labels)

# The header (HTTP) and metadata key (gRPC) by which requests name their client for fair share;
# without it each connection is a client of its own. At most this many bytes of it count.
CLIENT_ID_KEY = "client-id"
CLIENT_ID_BYTES = 64


def client_key(connection: str, client_id: bytes | str | None) -> str:
    """The fair-share key of a request: the client id it names, else its connection."""
    if not client_id:
        return "conn:" + connection
    if isinstance(client_id, bytes):
        client_id = client_id.decode("latin-1")
    return "id:" + client_id[:CLIENT_ID_BYTES]


@dataclass(frozen=True)
class ModelInfo:
    """What a client may know of one served model (GET /models, gRPC ListModels)."""

    key: str
    source: str
    architecture: str
    labels: list[str]
    tokenizer_family: str
    device: str
    dtype: str
    max_tokens: int
    function: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Service:
    def __init__(self, max_texts: int, observe: Observe | None = None):
        self.max_texts = max_texts
        self.engine: Engine | None = None  # None while the models load
        self._observe = observe
        self._routes: dict[str, frozenset[str]] = {}  # protocol -> the routes it serves
        self._overload_logged_at = 0.0

    def bind(self, engine: Engine) -> None:
        """The models have loaded: requests reach the engine from now on."""
        self.engine = engine

    def serve_routes(self, protocol: str, routes: Iterable[str]) -> None:
        """Declare a front-end's routes; any other route is observed as ``other``."""
        self._routes[protocol] = frozenset(routes)

    # ---- readiness ------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.engine is not None and self.engine.ready

    def not_ready_reason(self) -> str:
        """Why the service is not ready (only meaningful while ``ready`` is false)."""
        if self.engine is None:
            return "models loading"
        if self.engine.failure is not None:
            return "the engine failed; restarting"
        return "shutting down" if not self.engine.accepting else "models loading"

    # ---- the call -------------------------------------------------------------------------------

    async def classify(
        self,
        texts: Sequence[str],
        *,
        deadline: float | None,
        protocol: str,
        options: Options | None = None,
        client: Client | None = None,
    ) -> list[Result]:
        """Results for ``texts`` in order, or a ``ServiceError`` for the front-end's table.
        ``deadline`` is a ``time.monotonic()`` value (None: no deadline); ``client`` is who fair
        share counts the request for (None: a client of its own)."""
        if len(texts) > self.max_texts:
            raise InvalidInput(f"at most {self.max_texts} texts per request, got {len(texts)}")
        if self.engine is None:
            raise NotReady()
        if options is not None:
            options.check(self.engine.keys)
        try:
            return await self.engine.submit(
                texts, deadline=deadline, options=options, origin=protocol, client=client
            )
        except Overloaded as exc:
            self._log_overload(exc)
            raise

    def _log_overload(self, exc: Overloaded) -> None:
        now = time.monotonic()
        if now - self._overload_logged_at >= 1.0:  # one line per second, not one per refusal
            self._overload_logged_at = now
            log.warning("overloaded: refusing requests", extra={"error": str(exc)})

    def client_closed(self, client: Client) -> None:
        """A connection closed its side with requests in flight: they are served last."""
        if self.engine is not None:
            self.engine.client_closed(client)

    def models(self) -> list[ModelInfo]:
        """The served models in response order; ``NotReady`` while they load."""
        engine = self.engine
        if engine is None:
            raise NotReady()
        family_of = {m: f.name for f in engine.families for m in f.members}
        return [
            ModelInfo(
                key=model.key,
                source=model.spec.source,
                architecture=model.architecture,
                labels=list(model.labels),
                tokenizer_family=family_of[i],
                device=str(engine.runner.device),
                dtype=_dtype_name(model.model),
                max_tokens=model.max_tokens,
                function=model.function,
            )
            for i, model in enumerate(engine.models)
        ]

    # ---- observation ----------------------------------------------------------------------------

    def observe(self, protocol: str, route: str | None, status: str, seconds: float) -> None:
        if self._observe is None:
            return
        served = self._routes.get(protocol, frozenset())
        self._observe(protocol, route if route in served else OTHER_ROUTE, status, seconds)


def _dtype_name(module: object) -> str:
    parameters = getattr(module, "parameters", None)
    first = next(iter(parameters()), None) if parameters is not None else None
    names = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}
    return names.get(str(getattr(first, "dtype", "")), str(getattr(first, "dtype", "unknown")))
