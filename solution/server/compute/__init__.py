"""The compute layer: models, tokenizer families, forward-call planning and the device.

- ``models``: loading (``from_pretrained`` on a hub id or a folder) and checking the models;
- ``families``: tokenizers grouped by what decides their ids, and ``tokenize``, the rules of
  tokenizing a batch (families needed, ``truncate: false``, a failing text alone);
- ``batching``, ``planning``: a batch cut into forward calls, as pure functions;
- ``buckets``, ``graphs``: CUDA-graph shapes (pure) and their capture and replay;
- ``streams``: one CUDA stream per model (or models in turn on the CPU);
- ``runner``: one batch through every model, one host copy of the logits;
- ``batch``: a batch's rows through plan and runner, split in halves and retried on failure;
- ``scoring``: logits to answers (scored once per batch, shaped per request).

Nothing here imports the engine or a front-end (``solution.server.errors`` and ``config`` sit
below every layer).
"""
