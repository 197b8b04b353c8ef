"""An idle text server does not hold the libraries only some sessions use (issue 16's RSS
idle target): started in a fresh interpreter with speech recognition and face analysis off,
it has not imported OpenCV, PyAV, faster-whisper (CTranslate2), the MCP SDK, pymongo or
PyJWT; each still loads when its feature is used (their own tests cover that)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_an_idle_server_has_not_loaded_what_only_some_sessions_use(tmp_path: Path) -> None:
    env = os.environ | {
        "DATA_DIR": str(tmp_path),
        "STT_ENABLED": "false",
        "FACE_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["modules"]["store"] == "ready"
    assert report["modules"]["agent"] == "ready"
    assert report["loaded"] == []
