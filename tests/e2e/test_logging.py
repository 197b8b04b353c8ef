"""Logs go to the console and, at the same time, to a size-rotated JSON-lines file; user text
stays out of both unless LOG_PII."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.logging import configure_logging, get_logger
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws, text_turn


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    yield
    configure_logging("WARNING")  # console only again: no handler left on a test's file


def json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_events_reach_the_console_and_the_json_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = tmp_path / "logs" / "server.log"
    configure_logging("INFO", "console", path)
    get_logger("server.demo").info("demo_event", answer=42, word="안녕")
    get_logger("server.demo").debug("too_detailed")  # below LOG_LEVEL: nowhere
    logging.getLogger("httpx").info("library chatter")  # libraries: WARNING and up only
    logging.getLogger("httpx").warning("library warning")
    err = capsys.readouterr().err
    assert "demo_event" in err and "answer=42" in err  # the readable console format
    assert not err.lstrip().startswith("{")
    lines = json_lines(path)
    assert [(e["event"], e["level"]) for e in lines] == [
        ("demo_event", "info"),
        ("library warning", "warning"),
    ]
    first = lines[0]
    assert first["answer"] == 42 and first["word"] == "안녕"
    assert first["logger"] == "server.demo" and str(first["timestamp"]).endswith("Z")


def test_json_console_and_an_exception_in_the_file(tmp_path: Path, capsys):
    path = tmp_path / "server.log"
    configure_logging("INFO", "json", path)
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("server.demo").exception("it_failed")
    console = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert console[-1]["event"] == "it_failed"
    (entry,) = json_lines(path)
    assert entry["level"] == "error" and "ValueError: boom" in str(entry["exception"])


def test_the_file_rotates_at_its_size_and_keeps_the_backup_count(tmp_path: Path):
    path = tmp_path / "server.log"
    configure_logging("INFO", "console", path, max_bytes=2_000, backup_count=2)
    log = get_logger("server.demo")
    for i in range(200):  # about 20 KB of lines
        log.info("filler", i=i, pad="x" * 40)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["server.log", "server.log.1", "server.log.2"]
    for name in files:
        size = (tmp_path / name).stat().st_size
        assert 0 < size <= 2_000, (name, size)
        json_lines(tmp_path / name)  # every rotated file is still whole JSON lines
    newest = json_lines(path)[-1]
    assert newest["i"] == 199


@pytest.mark.parametrize("pii", [False, True])
async def test_user_text_stays_out_of_the_log_file_unless_log_pii(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI, pii: bool
):
    srv = server_factory(llm, log_level="INFO", log_pii=pii)
    secret_text = "my bank PIN is 4711 purple-elephant"
    ws = await open_ws(srv, persona="emma")
    await ws.wait_for("session.created")
    llm.queue_reply("Noted.")
    await text_turn(ws, secret_text)
    await ws.conn.close()
    path = srv.settings.log_file
    assert path is not None and path == srv.settings.data_dir / "logs" / "server.log"
    lines = json_lines(path)
    started = [e for e in lines if e["event"] == "response_started"]
    assert started, [e["event"] for e in lines]
    text = path.read_text(encoding="utf-8")
    if pii:
        assert started[0]["text"] == secret_text
    else:
        assert started[0]["text"] == f"<{len(secret_text)} chars>"
        assert "purple-elephant" not in text and "4711" not in text
