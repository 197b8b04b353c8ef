"""The import contracts in pyproject.toml ([tool.importlinter]) hold for the code, and they
do catch the violations they are meant to catch (checked on a small fake tree)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent))


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    assert LINT is not None, "import-linter is a dev dependency"
    env = os.environ | {"PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [LINT, "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_code_keeps_its_contracts() -> None:
    out = _lint(ROOT, ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def _fake_tree(tmp: Path, imports: dict[str, str]) -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = ("api", "hub", "protocols", "pipelines", "agent", "tasks", "initiative")
    layers += ("avatar", "turns", "providers", "store")
    packages = ["server", "analysis"] + [f"server/{m}" for m in layers]
    for pkg in packages:
        (tmp / pkg).mkdir(parents=True, exist_ok=True)
        (tmp / pkg / "__init__.py").write_text("")
    for c in config["contracts"]:  # the modules the forbidden contracts name
        for module in c.get("source_modules", []) + c.get("forbidden_modules", []):
            path = tmp.joinpath(*module.split("."))
            for parent in reversed(path.relative_to(tmp).parents[:-1]):  # e.g. agent/memory
                (tmp / parent).mkdir(exist_ok=True)
                (tmp / parent / "__init__.py").touch()
            if not path.is_dir():
                path.with_suffix(".py").write_text("")
    for path, line in imports.items():
        (tmp / path).write_text(line + "\n")
    # The real contracts, verbatim, over the fake tree.
    (tmp / "pyproject.toml").write_text(_toml(config))


def _toml(config: dict) -> str:
    lines = ["[tool.importlinter]"]
    lines += [f"root_packages = {config['root_packages']!r}".replace("'", '"')]
    lines += ["exclude_type_checking_imports = true"]
    for c in config["contracts"]:
        lines.append("[[tool.importlinter.contracts]]")
        for k, v in c.items():
            value = str(v).lower() if isinstance(v, bool) else repr(v).replace("'", '"')
            lines.append(f"{k} = {value}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("path", "line", "contract"),
    [
        ("server/store/x.py", "import server.hub", "api/hub/protocols ->"),
        ("server/pipelines/x.py", "import server.protocols", "api/hub/protocols ->"),
        ("server/tasks/x.py", "import server.api", "api/hub/protocols ->"),
        ("analysis/x.py", "import server", "analysis imports nothing of server"),
        ("server/protocols/x.py", "import server.store", "protocols import neither"),
        ("server/protocols/y.py", "import server.agent", "protocols import neither"),
        ("server/hub/playback.py", "import server.hub.responses", "reply parts"),
        ("server/hub/preemptive.py", "import server.hub.session", "reply parts"),
        ("server/hub/reply_commit.py", "import server.hub.responses", "reply parts"),
        ("server/hub/outbound.py", "import server.hub.core", "the outbound queue never"),
        ("server/providers/stt_remote.py", "import server.providers.stt", "remote speech"),
        ("server/store/task_actions_sqlite.py", "import server.store.sqlite", "the SQLite task"),
        ("server/pipelines/face_timeline.py", "import server.pipelines.face", "face readings"),
        ("server/agent/memory/hits.py", "import server.agent.memory.longterm", "memory hits"),
        ("analysis/report_text.py", "import analysis.scoring", "report model, inputs"),
        ("analysis/report_model.py", "import analysis.scoring", "report model, inputs"),
        ("analysis/report_model.py", "import analysis.report_text", "the report model imports"),
        ("analysis/face/action_units.py", "import analysis.face.expression", "face action units"),
    ],
)
def test_the_contracts_catch_violations(
    tmp_path: Path, path: str, line: str, contract: str
) -> None:
    _fake_tree(tmp_path, {path: line})
    out = _lint(tmp_path, tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    broken = [ln for ln in out.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(ln.startswith(contract) for ln in broken), out.stdout
