"""``python -m solution.server [flags]``: serve the configured models (``--help`` lists flags)."""

from __future__ import annotations

import logging
import os
import sys

import uvloop

from solution.server import config, logs

log = logging.getLogger("solution.server")

# OpenMP's default spin-waiting makes torch's idle worker threads burn the cores that this
# process's event loop and tokenizer thread need: measured here, a base-size forward went from
# 0.16 s to 1.8 s beside one busy thread, and 0.18 s with PASSIVE. It must be set before torch
# loads OpenMP (hence before importing the app); an explicit setting still wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    """Exit 2 on a bad setting, 1 when start-up fails (one line on stderr says what to fix, the
    JSON log keeps the details), 1 after an engine failure, else 0."""
    try:
        settings = config.load(argv)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    logs.setup(settings.log_level)
    from solution.server.app import App  # imports torch: after OMP_WAIT_POLICY is set

    app = App(settings, freeze_heap=True)
    try:
        uvloop.run(app.run())
    except (OSError, ValueError) as exc:
        # a model that cannot be loaded (models.ModelLoadError, which names the fix), a bad model
        # config or label override, a device or dtype this machine lacks, a port in use
        message = " ".join(str(exc).split())
        log.error("start-up failed", extra={"error": message})
        print(f"start-up failed: {message}", file=sys.stderr)
        return 1
    return app.exit_code


if __name__ == "__main__":
    sys.exit(main())
