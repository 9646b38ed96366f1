"""The served path end to end: the real server process under a real load generator.

    python -m solution.benchmarks.served --standins DIR --out DIR [--limit-json FILE] [--allow-cpu]

On a GPU it writes base-size models (the stand-ins' configs and tokenizers at the served
architecture, random weights, fp16) to disk, starts ``python -m solution.server`` on them
(``CLS_DTYPE=fp16``, ``CLS_CUDA_GRAPHS=auto``) and loads it with:
- k6 (``process.js``: the challenge's request and checks), HTTP single-text ``POST /process``,
  closed loops at several user counts;
- gRPC ``ClassifyBatch`` calls of 64 texts at a few concurrencies (``grpc_batch``);
- the spike shape (arrival rate ramping to 200 req/s, 50 VUs at most) for p99;
then the winner-style peer (``peers.winner``) as a server under the same HTTP loads, and last, if
time is left, the host floor (``host_floor``: the server with no forward, the host's own share of
a request and its ceiling). ``/metrics``
is scraped before and after each load of the service (``scrape``). The texts are the load texts
(``load_texts``), the ones the graph limit of ``gpu_check`` runs; the targets are ratios to that
limit, read from ``--limit-json``. Every load has its own time limit and the run a budget, so a
slow step cannot eat the rest; ``served.json`` and ``served.md`` are rewritten after every load.

``--allow-cpu`` runs the same steps on the tiny stand-ins as a smoke test of this script; its
files are named ``served-cpu-smoke`` and say so. It is never a GPU result.
"""
