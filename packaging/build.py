"""Build the one-file `desktopmate` binary for this platform, then start it once and time it.

    uv run python packaging/build.py            # -> dist/desktopmate (dist\\desktopmate.exe)
    uv run python packaging/build.py --no-smoke # build only

PyInstaller cannot cross-compile: run this on each target OS (Linux, macOS, Windows) with
the project's environment (`uv sync --locked`). Prints the build time, the binary's size and,
unless --no-smoke, its time to ready: `serve --sidecar --port 0` until the JSON ready line,
then GET /health."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "desktopmate.spec"
DIST = ROOT / "dist"
WORK = ROOT / "build" / "pyinstaller"


def binary_path() -> Path:
    return DIST / ("desktopmate.exe" if sys.platform == "win32" else "desktopmate")


def build() -> float:
    started = time.monotonic()
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN"]
    cmd += ["--distpath", str(DIST), "--workpath", str(WORK), str(SPEC)]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.monotonic() - started


def time_to_ready(binary: Path, timeout_s: float = 180.0) -> tuple[float, dict[str, object]]:
    """Seconds from launch to the ready line, with /health checked right after it."""
    with tempfile.TemporaryDirectory(prefix="desktopmate-smoke-") as tmp:
        env = os.environ | {
            "DATA_DIR": str(Path(tmp) / "data"),
            # No models here: a configured model that cannot load would make /health 503.
            "FACE_ENABLED": "false",
            "STT_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
        }
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(binary), "serve", "--sidecar", "--port", "0"],
            cwd=tmp,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            elapsed = time.monotonic() - started
            if not line.startswith("{"):
                raise RuntimeError(f"no ready line (exit {proc.poll()}): {line!r}")
            ready = json.loads(line)
            request = urllib.request.Request(
                f"{ready['url']}/health", headers={"Authorization": f"Bearer {ready['token']}"}
            )
            with urllib.request.urlopen(request, timeout=10) as r:
                health = json.loads(r.read())
            if r.status != 200:
                raise RuntimeError(f"/health answered {r.status}: {health}")
            return elapsed, health
        finally:
            assert proc.stdin is not None
            proc.stdin.close()  # the sidecar exits with its parent's pipe
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-smoke", action="store_true", help="skip the start-up timing")
    args = parser.parse_args()
    seconds = build()
    binary = binary_path()
    size = binary.stat().st_size
    print(f"built {binary} in {seconds:.0f} s: {size / 1e6:.1f} MB ({size:,} bytes)", flush=True)
    if not args.no_smoke:
        ready_s, health = time_to_ready(binary)
        print(f"time to ready: {ready_s:.1f} s (/health {health['status']})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
