"""The engine layer: the one entry point of both front-ends and the batching engine behind it.

- ``service``: ``Service.classify`` (what HTTP and gRPC call), readiness, the model list;
- ``engine``: the worker threads, the hand-offs under one lock, delivery to the event loop;
- ``scheduler``: the queue as plain state (admission, tokenization hand-out, batch cuts);
- ``options``: per-request options; ``errors``: the one error hierarchy.

Imports go down only: to ``compute`` (models, tokenizers, planning, the runner, scoring).
"""
