"""The image recipe: hadolint-clean, installs through scripts/install.sh, a small build context,
build arguments for the base, Python and torch, and an entrypoint that checks the models (or
fetches them when asked) before it becomes the server.

These check the recipe in seconds; `make image-test` (scripts/image_test.py) builds the image
with podman and runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from deploy_support import ROOT

from solution.server.config import DEFAULT_MODEL_CONFIG, Settings

DOCKERFILE = ROOT / "solution" / "Dockerfile"
ENTRYPOINT = ROOT / "solution" / "entrypoint.sh"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue  # comments may sit between continuation lines too
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    return out


def runtime_stage() -> list[tuple[str, str]]:
    steps = instructions(DOCKERFILE)
    last_from = max(i for i, (kw, _) in enumerate(steps) if kw == "FROM")
    return steps[last_from:]


def all_dockerfiles() -> list[Path]:
    """Every Dockerfile in the repository, skipping dot folders (venvs, .git) and caches."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "build")]
        found += [Path(folder) / f for f in files if f == "Dockerfile" or f.endswith(".Dockerfile")]
    return sorted(found)


@pytest.mark.parametrize("dockerfile", all_dockerfiles(), ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_is_clean(tools: Path, dockerfile: Path) -> None:
    done = subprocess.run(
        [str(tools / "hadolint"), "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_image_is_linted() -> None:
    """The autotests image (autotests/Dockerfile, written separately) is linted once it exists."""
    found = all_dockerfiles()
    assert DOCKERFILE in found
    autotests = ROOT / "autotests" / "Dockerfile"
    if not autotests.exists():
        pytest.skip("autotests/Dockerfile does not exist yet")
    assert autotests in found


def test_installs_through_the_install_script() -> None:
    runs = [args for kw, args in instructions(DOCKERFILE) if kw == "RUN"]
    assert any("scripts/install.sh" in run for run in runs)
    # the one pip install besides it bootstraps uv (a tool, pinned), never the project's deps
    pips = [run for run in runs if re.search(r'\bpip3? install\b(?! "uv==\$\{UV_VERSION\}")', run)]
    assert not pips, "use install.sh"
    copies = [args for kw, args in instructions(DOCKERFILE) if kw == "COPY"]
    assert any("scripts/install.sh" in c for c in copies)


def test_multi_stage_with_optional_baked_models() -> None:
    steps = instructions(DOCKERFILE)
    assert sum(kw == "FROM" for kw, _ in steps) >= 3
    assert ("ARG", "BAKE_MODELS=0") in steps
    assert any(kw == "RUN" and "solution.server.fetch_models" in a for kw, a in steps)


def test_runtime_stage_contract() -> None:
    stage = runtime_stage()
    users = [args for kw, args in stage if kw == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), "numeric non-root uid:gid"
    last_user = max(i for i, (kw, _) in enumerate(stage) if kw == "USER")
    assert last_user > max(i for i, (kw, _) in enumerate(stage) if kw in ("RUN", "COPY")), (
        "USER comes after every RUN and COPY"
    )
    exposed = {int(p) for kw, args in stage if kw == "EXPOSE" for p in args.split()}
    assert exposed == {Settings.http_port, Settings.grpc_port}
    (health,) = [args for kw, args in stage if kw == "HEALTHCHECK"]
    assert "/ready" in health and "CLS_HTTP_PORT" in health
    for keyword in ("ENTRYPOINT", "CMD"):
        (args,) = [a for kw, a in stage if kw == keyword]
        assert isinstance(json.loads(args), list), f"{keyword} in JSON form"


@pytest.mark.parametrize(
    "dockerfile, ignore",
    [
        (DOCKERFILE, ROOT / ".dockerignore"),
        # BuildKit prefers <Dockerfile>.dockerignore next to the Dockerfile
        (ROOT / "autotests" / "Dockerfile", ROOT / "autotests" / "Dockerfile.dockerignore"),
    ],
    ids=["service", "autotests"],
)
def test_build_context_is_small(
    tools: Path, tmp_path: Path, dockerfile: Path, ignore: Path
) -> None:
    """The ignore file, read by the Docker SDK's own matcher: what the COPYs need is sent, the
    venvs, .git, caches, results, tests and the charts are not."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    junk = [
        ".venv/bin/python", ".venv-helm/bin/python", ".git/HEAD", ".cache/standins/x.bin",
        ".pytest_cache/v/x", ".ruff_cache/x", ".mypy_cache/x", "solution/server/__pycache__/x.pyc",
        "solution/benchmarks/results/run.json", "tests/deploy/test_x.py",
        "solution/helm/values.yaml", "autotests/helm/values.yaml",
    ]  # fmt: skip
    for name in [*tracked, *junk, ".dockerignore"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    (tmp_path / ".dockerignore").write_text(ignore.read_text())
    script = (
        "import sys; from docker.utils.build import exclude_paths as ex\n"
        "pats = [l.strip() for l in open('.dockerignore') if l.strip() and l[0] != '#']\n"
        f"print('\\n'.join(sorted(ex('.', pats, dockerfile='{dockerfile.relative_to(ROOT)}'))))"
    )
    sent = set(
        subprocess.run(
            [str(tools / "python"), "-c", script],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        ).stdout.split()
    )  # fmt: skip
    assert not [j for j in junk if j in sent]
    sources = [
        src
        for kw, args in instructions(dockerfile)
        if kw == "COPY" and "--from" not in args
        for src in args.split()[:-1]
    ]
    for src in sources:
        assert any(s == src.rstrip("/") or s.startswith(src) for s in sent), src
    assert "solution/entrypoint.sh" in sent


def test_base_python_and_torch_are_build_arguments() -> None:
    """One Dockerfile for the CUDA image and the CPU one built here; nothing of the build's
    CA bundle or wheel folder is copied into an image."""
    steps = instructions(DOCKERFILE)
    args = {a.split("=")[0] for kw, line in steps if kw == "ARG" for a in line.split()}
    assert {"BASE_IMAGE", "PYTHON_SOURCE", "TORCH_VARIANT", "PIP_CERT", "PIP_FIND_LINKS"} <= args
    froms = [a.split()[0] for kw, a in steps if kw == "FROM"]
    assert froms[0] == froms[-1] == "${BASE_IMAGE}"
    copied = [a for kw, a in steps if kw in ("COPY", "ADD")]
    assert not [c for c in copied if re.search(r"\.(crt|pem)\b|cert|wheels", c)]
    runtime = [a for kw, a in runtime_stage() if kw == "COPY"]
    # the code is the last layer: a code edit leaves the venv layer (torch) as it was
    assert "/opt/venv" in runtime[-3] and runtime[-1].startswith("--from=code /app")


def run_entrypoint(
    tmp_path: Path, env: dict[str, str], *args: str, check_exit: int = 0
) -> tuple[int, list[list[str]]]:
    """Run the entrypoint with a stand-in ``python`` that records how it was called and exits
    ``check_exit`` for ``fetch_models --check``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    fake = bin_dir / "python"
    fake.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\n'
        f'case "$*" in *--check*) exit {check_exit};; esac\n'
    )
    fake.chmod(0o755)
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run([str(ENTRYPOINT), *args], env=base | env, timeout=30, check=False)
    return done.returncode, [line.split() for line in log.read_text().splitlines()]


def test_entrypoint_checks_the_models_then_execs_the_server(tmp_path: Path) -> None:
    env = {"CLS_MODELS_DIR": "/models", "CLS_MODEL_CONFIG": "/etc/m.json"}
    code, calls = run_entrypoint(tmp_path, env, "--max-wait-ms", "2")
    assert code == 0
    assert calls == [
        [
            "-m",
            "solution.server.fetch_models",
            "/models",
            "--check",
            "--model-config",
            "/etc/m.json",
        ],
        ["-m", "solution.server", "--max-wait-ms", "2"],
    ]


def test_entrypoint_stops_without_models(tmp_path: Path) -> None:
    code, calls = run_entrypoint(tmp_path, {"CLS_MODELS_DIR": "/models"}, check_exit=1)
    assert code == 1
    assert calls == [["-m", "solution.server.fetch_models", "/models", "--check"]]


def test_entrypoint_fetches_when_asked(tmp_path: Path) -> None:
    env = {"CLS_MODELS_DIR": "/models", "FETCH_MODELS": "1"}
    code, calls = run_entrypoint(tmp_path, env, check_exit=1)
    assert code == 0
    assert calls == [["-m", "solution.server.fetch_models", "/models"], ["-m", "solution.server"]]


def test_entrypoint_without_models_dir_only_serves(tmp_path: Path) -> None:
    assert run_entrypoint(tmp_path, {}) == (0, [["-m", "solution.server"]])


def fetch_check(dest: Path, *, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "solution.server.fetch_models", str(dest), "--check"]
    if as_nobody:
        command = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", *command]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_fetch_models_check_names_what_is_missing_in_one_line(tmp_path: Path) -> None:
    keys = [m["key"] for m in json.loads(DEFAULT_MODEL_CONFIG.read_text())["models"]]
    for key in keys[1:]:
        (tmp_path / key).mkdir()
        (tmp_path / key / "config.json").write_text("{}")
    done = fetch_check(tmp_path)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert f"no model for {keys[0]}:" in line and "BAKE_MODELS=1" in line
    (tmp_path / keys[0]).mkdir()
    (tmp_path / keys[0] / "config.json").write_text("{}")
    assert fetch_check(tmp_path).returncode == 0


def test_fetch_models_check_finds_files_the_user_cannot_read() -> None:
    """A volume written by another user with mode 0600 (what a container's uid 10001 meets)."""
    keys = [m["key"] for m in json.loads(DEFAULT_MODEL_CONFIG.read_text())["models"]]
    with tempfile.TemporaryDirectory() as folder:  # pytest's tmp_path is closed to other users
        Path(folder).chmod(0o755)
        check_unreadable(Path(folder), keys)


def check_unreadable(tmp_path: Path, keys: list[str]) -> None:
    for key in keys:
        (tmp_path / key).mkdir(mode=0o755)
        (tmp_path / key / "config.json").write_text("{}")
        (tmp_path / key / "config.json").chmod(0o644)
    (tmp_path / keys[2] / "model.safetensors").write_bytes(b"x")
    (tmp_path / keys[2] / "model.safetensors").chmod(0o600)
    as_nobody = os.geteuid() == 0  # root reads everything: check as nobody
    if as_nobody and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv")
    done = fetch_check(tmp_path, as_nobody=as_nobody)
    if "No module named" in done.stderr:
        pytest.skip(f"nobody cannot read the checkout: {done.stderr.strip()}")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert f"cannot read {tmp_path / keys[2] / 'model.safetensors'}" in line
