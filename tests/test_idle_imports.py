"""An idle text server does not hold the libraries only some sessions use (issue 16's RSS
idle target): started in a fresh interpreter with speech recognition and face analysis off,
it has not imported OpenCV, PyAV, faster-whisper (CTranslate2), the MCP SDK, pymongo or
PyJWT; each still loads when its feature is used (their own tests cover that). And the CLI
loads the web stack and the agent only for the server it runs: `desktopmate models list`
or a refused bind answers without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from server.startup import EXIT_CONFIG

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("cv2", "av", "faster_whisper", "ctranslate2", "mcp", "pymongo", "jwt", "cryptography")

PROBE = """
import asyncio, json, sys
from server.app import create_app
from server.config import Settings

async def main():
    app = create_app(Settings())
    async with app.router.lifespan_context(app):
        modules = app.state.services.modules
        print(json.dumps({"modules": modules, "loaded": [m for m in HEAVY if m in sys.modules]}))

HEAVY = %r
asyncio.run(main())
"""


def _probe(tmp: Path, code: str, settings: dict[str, str], *argv: str) -> dict:
    """Run ``code`` in a fresh interpreter with its data in ``tmp``: its last line's JSON."""
    env = os.environ | settings | {"DATA_DIR": str(tmp), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_idle_server_has_not_loaded_what_only_some_sessions_use(tmp_path: Path) -> None:
    off = {"STT_ENABLED": "false", "FACE_ENABLED": "false"}
    report = _probe(tmp_path, PROBE % (HEAVY,), off)
    assert report["modules"]["store"] == "ready"
    assert report["modules"]["agent"] == "ready"
    assert report["loaded"] == []


# What only a running server needs: a command that starts none has not imported them.
SERVER_ONLY = ("fastapi", "starlette", "langgraph", "langchain_core", "openai", "httpx", "uvloop")

CLI_PROBE = """
import contextlib, io, json, sys
from server.cli import main

out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = main(sys.argv[1:])
loaded = [m for m in %r if m in sys.modules]
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(), "loaded": loaded}))
"""


def _cli(tmp: Path, *argv: str) -> dict:
    return _probe(tmp, CLI_PROBE % (SERVER_ONLY,), {}, *argv)


def test_models_list_answers_without_the_server_libraries(tmp_path: Path) -> None:
    report = _cli(tmp_path, "models", "list")
    assert f"models folder: {tmp_path / 'models'}" in report["out"], report
    assert "stt" in report["out"] and "face" in report["out"]
    assert report["loaded"] == []


def test_a_refused_bind_is_named_without_the_server_libraries(tmp_path: Path) -> None:
    report = _cli(tmp_path, "serve", "--host", "0.0.0.0")
    assert report["code"] == EXIT_CONFIG
    assert "Refusing to listen on '0.0.0.0' in local mode" in report["err"], report
    assert report["loaded"] == []
