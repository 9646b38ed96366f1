"""The peers the service is measured against, each what its design would do done well:

- ``limit``: the five models' bare batched forward, no server, at the best batch size;
- ``naive``: a minimal server running a transformers pipeline per request per model;
- ``winner``: per-model asyncio queues, a fixed 10 ms wait, batches of 32, each model tokenizing
  on its own (the shape of the best entries to the original challenge);
- ``http_noop`` / ``uvicorn_noop``: the HTTP layer alone, this server's versus uvicorn's, both
  doing the same JSON work around a no-op classifier;
- ``trivial``: a server that does nearly nothing, to show the load generator's own ceiling.

The servers are started as separate processes by ``solution.benchmarks.suite`` (one model-loading
process at a time: base-size models take ~5 GB each).
"""
