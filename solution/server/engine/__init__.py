"""The engine layer: the one entry point of both front-ends and the batching engine behind it.

- ``service``: ``Service.classify`` (what HTTP and gRPC call), the model list, the metrics hook;
- ``engine``: the worker threads, the hand-offs under one lock, delivery to the event loop;
- ``scheduler``: the queue as plain state (admission, tokenization hand-out, cuts, deadlines),
  moving the plain data of ``entries``; ``limits``: its limits, made from ``Settings``;
- ``batches``: one cut batch computed and answered, with its report;
- ``options``: per-request options.

Imports go down only: to ``compute`` (models, tokenizers, planning, the runner, scoring).
"""
