"""Load-and-check runner for a deployed service: ``python -m autotests --api-host URL``.

It replays the reference client's four scenarios (``solution.benchmarks.scenarios``), checks every
answer the way the reference client does, prints a summary and exits non-zero when any check
failed. See autotests/README.md.
"""
