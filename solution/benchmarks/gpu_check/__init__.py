"""GPU check: the CUDA path's parity, graphs and speed, in one command, on one GPU.

    python -m solution.benchmarks.gpu_check --standins .cache/standins-tiny --out DIR

(``solution/benchmarks/gpu_run.sh`` is the prepared device run around it.) Made for a GPU machine
with Python 3.12, torch 2.11 and transformers 5.17 preinstalled, no network and nothing
installable: it imports torch, transformers, tokenizers, numpy and this repository only (no
orjson, httptools, uvicorn), sets ``HF_HUB_OFFLINE`` and loads nothing from the hub. It stops at
once, naming what is missing, when there is no CUDA device (unless ``--allow-cpu``) or the
stand-ins folder lacks a model. ``DIR/gpu-check.json`` and ``.md`` are rewritten after every step.

One module per step, run in this order by ``__main__``:
1. ``parity``: on the tiny stand-ins as they are (trained by ``standins``, so their logits mean
   something), what the service computes (the ``Runner``: streams, micro-batches, deduplicated
   rows, graphs) row by row against a per-text fp32 forward on the CPU;
2. ``sync``: one batch under ``torch.cuda.set_sync_debug_mode("error")``;
3. ``capture``: on base-size models (the real architecture, random weights, built in memory from
   the stand-ins' configs): graph capture (time, memory), graphs vs eager on every bucket;
4. ``timing``: one call set of the five models at a few batch sizes, per path;
5. ``limit``: the graph limit, texts/s of back-to-back graph replays on the load's texts;
6. ``engine`` and ``winner``: the engine in-process at low load and saturation, the winner-style
   peer in-process, and a ``CLS_MAX_WAIT_MS`` sweep.

``--allow-cpu`` runs every step on the CPU as a smoke test of this script (bf16 for fp16; graphs
emulated by eager forwards through the same static buffers); its output says so and is named
``gpu-check-cpu-smoke``. It is never a GPU result.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub, which reads them once: every step module imports
# torch/transformers after this package's __init__ has run.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
