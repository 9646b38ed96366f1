"""Load generators, scenario replay, peers and the benchmark suite (``make bench``).

Modules, from the bottom up:

- ``stats``: percentiles and the summary every run prints (throughput, latency, errors by kind);
- ``checks``: the reference client's response checks, label sets taken from the model config;
- ``load``: the two load modes over any protocol: closed loop and open loop (arrival rate);
- ``http_client`` / ``grpc_client``: one connection per virtual user over raw uvloop sockets, and
  a grpc.aio channel;
- ``scenarios``: the reference client's four scenarios, scaled in time and rate, and their replay;
- ``suite``: ``make bench`` / ``make bench-full``: peers, ratios, plots, README table.
"""
