"""The docs stay true to the code: every setting is in .env.example, every WebSocket event
type and error/warning code the server uses is in docs/protocol.md, and every REST route is
in docs/api.md. When one of these fails, document the new thing (or remove the stale one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.config import Settings
from server.hub.protocol import KNOWN_TYPES

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "server"
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
API = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")

# `"type": "<name>"` literals that are not protocol events: JSON-schema types, OpenAI
# message-part and response-format types, turn_detection values.
NOT_EVENTS = {
    "object",
    "string",
    "integer",
    "number",
    "boolean",
    "array",
    "null",
    "text",
    "image_url",
    "json_schema",
    "server_vad",
    "none",
    "function",  # an OpenAI tool schema's type (server/agent/tools/base.py)
}
EVENT_TYPE = re.compile(r'"type"\s*:\s*"([a-z_][a-z0-9_.]*)"')

# Where error/warning codes are emitted (a code may sit on the next line of the call).
CODE_CALLS = [
    re.compile(r'ProtocolError\(\s*"([a-z_]+)"'),
    re.compile(r'_refuse\(\s*ws\s*,\s*"([a-z_]+)"'),
    re.compile(r'end_with_error\(\s*"([a-z_]+)"'),
    re.compile(r'error_event\(\s*"([a-z_]+)"'),
    re.compile(r'(?:_report_error|_on_error|report_error|on_error)\(\s*"([a-z_]+)"'),
    re.compile(r'InvalidFaceInput\(\s*(?:f?"[^"\n]*"\s*)+,\s*"([a-z_]+)"'),
    re.compile(r'LLMFailure\(\s*"([a-z_]+)"'),
]
# `<receiver>.error("code"` / `.warn("code"`, except logger calls (log.error, self._log...).
RECEIVER_CALL = re.compile(r'([\w.]+)\.(?:error|warn)\(\s*"([a-z_]+)"')
LOGGER = re.compile(r"(^|\.)_?(log|logger)$")


def server_files(*, skip: tuple[str, ...] = ()) -> list[Path]:
    files = sorted(SERVER.rglob("*.py"))
    return [f for f in files if not any(part in skip for part in f.relative_to(SERVER).parts)]


# Other wire protocols (server/protocols/, each in modules named for it: dmp*.py) and the
# page that documents each one's events.
OTHER_PROTOCOLS = {"dmp": "protocol-dmp.md", "realtime": "protocol-realtime.md"}


def protocol_of(f: Path) -> str | None:
    if f.parent != SERVER / "protocols":
        return None
    return next((p for p in OTHER_PROTOCOLS if f.name.startswith(p)), None)


def protocol_files(name: str) -> list[Path]:
    return [f for f in sorted((SERVER / "protocols").glob("*.py")) if protocol_of(f) == name]


def server_event_types(files: list[Path] | None = None) -> dict[str, str]:
    """Event type -> a file that sends it. Providers talk to external APIs, not clients;
    the other wire protocols have their own pages."""
    found: dict[str, str] = {}
    if files is None:
        files = [f for f in server_files(skip=("providers",)) if protocol_of(f) is None]
    for f in files:
        for name in EVENT_TYPE.findall(f.read_text(encoding="utf-8")):
            if name not in NOT_EVENTS:
                found.setdefault(name, str(f.relative_to(ROOT)))
    return found


def emitted_codes(files: list[Path] | None = None) -> dict[str, str]:
    """Error/warning code -> a file that emits it (the other protocols: on their pages)."""
    found: dict[str, str] = {}
    if files is None:
        files = [f for f in server_files() if protocol_of(f) is None]
    for f in files:
        text = f.read_text(encoding="utf-8")
        codes = [c for rx in CODE_CALLS for c in rx.findall(text)]
        codes += [code for recv, code in RECEIVER_CALL.findall(text) if not LOGGER.search(recv)]
        for c in codes:
            found.setdefault(c, str(f.relative_to(ROOT)))
    return found


# --- .env.example -------------------------------------------------------------------------


def env_example_names() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, re.M))


def test_every_setting_is_in_env_example():
    names = env_example_names()
    missing = [n.upper() for n in Settings.model_fields if n.upper() not in names]
    assert not missing, f"add these settings to .env.example (with a comment): {missing}"


def test_env_example_names_are_real_settings():
    fields = {n.upper() for n in Settings.model_fields}
    stale = sorted(n for n in env_example_names() if n not in fields)
    assert not stale, f".env.example names that are not Settings fields: {stale}"


def test_env_example_leaves_secrets_empty():
    secrets = [
        n.upper() for n, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
    ]
    assert secrets, "expected some SecretStr settings"
    for name in secrets:
        values = re.findall(rf"^#?\s*{name}=(.*)$", ENV_EXAMPLE, re.M)
        assert values and all(v.strip() == "" for v in values), f"{name} must be left empty"


# --- docs/protocol.md ----------------------------------------------------------------------


def test_scanners_find_the_core_protocol():
    """Guards the regexes: if these fail, the scanning broke, not the docs."""
    assert {"session.created", "response.done", "error", "pong"} <= set(server_event_types())
    codes = emitted_codes()
    assert {"unauthorized", "invalid_event", "rate_limited", "message_too_large"} <= set(codes)
    assert {"tts_degraded", "llm_error"} <= set(codes)
    assert "store_unavailable" not in codes  # a log event name, not a protocol code


@pytest.mark.parametrize("name", sorted(KNOWN_TYPES))
def test_client_event_is_documented(name: str):
    assert f"`{name}`" in PROTOCOL, f"client event {name!r} is not in docs/protocol.md"


def test_server_events_are_documented():
    missing = {n: f for n, f in server_event_types().items() if f"`{n}`" not in PROTOCOL}
    assert not missing, f"server events missing from docs/protocol.md: {missing}"


# Realtime event names are dotted literals (sent through a helper, or handled).
REALTIME_EVENT = re.compile(r'"((?:session|conversation|input_audio_buffer|response)\.[a-z_.]+)"')


@pytest.mark.parametrize(("name", "page"), sorted(OTHER_PROTOCOLS.items()))
def test_other_protocols_events_are_on_their_page(name: str, page: str):
    doc = (ROOT / "docs" / page).read_text(encoding="utf-8")
    paths = protocol_files(name)
    if name == "realtime":
        text = "".join(p.read_text(encoding="utf-8") for p in paths)
        events = dict.fromkeys(REALTIME_EVENT.findall(text), name)
    else:
        events = server_event_types(paths)
    assert events, f"no events found in {name}*.py: the scanner broke"
    missing = sorted(n for n in events if f"`{n}`" not in doc)
    assert not missing, f"events of {name}*.py missing from docs/{page}: {missing}"
    codes = sorted(c for c in emitted_codes(paths) if f"`{c}`" not in doc + PROTOCOL)
    assert not codes, f"error codes of {name}*.py missing from docs/{page}: {codes}"


def test_error_and_warning_codes_are_in_the_table():
    missing = {
        c: f
        for c, f in emitted_codes().items()
        if not re.search(rf"^\| `{re.escape(c)}` \|", PROTOCOL, re.M)
    }
    assert not missing, f"codes missing from the error table in docs/protocol.md: {missing}"


def test_binary_frame_kinds_are_documented():
    from server.hub import protocol as p

    for kind in (p.MIC_AUDIO, p.SCREEN_JPEG, p.CAMERA_JPEG, p.REPLY_AUDIO):
        assert f"`0x{kind:02x}`" in PROTOCOL


# --- docs/api.md ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    from server.app import create_app

    data = tmp_path_factory.mktemp("docs") / "data"
    settings = Settings(_env_file=None, data_dir=data, log_level="WARNING")  # type: ignore[call-arg]
    spec = create_app(settings).openapi()
    return {path: {m.upper() for m in ops} for path, ops in spec["paths"].items()}


def api_table_rows() -> set[tuple[str, str]]:
    return set(re.findall(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \|", API, re.M))


def test_every_rest_route_is_documented(openapi_paths: dict[str, set[str]]):
    rows = api_table_rows()
    missing = [
        f"{m} {path}"
        for path, methods in openapi_paths.items()
        for m in methods
        if (m, path) not in rows or f"`{m} {path}`" not in API
    ]
    assert not missing, f"routes missing from docs/api.md (table row and section): {missing}"


def test_documented_routes_exist(openapi_paths: dict[str, set[str]]):
    stale = [f"{m} {p}" for m, p in api_table_rows() if m not in openapi_paths.get(p, set())]
    assert not stale, f"docs/api.md lists routes the app does not have: {stale}"


# --- docs/protocol.md: the fields and values clients build on ------------------------------


def section(doc: str, heading: str) -> str:
    """The text under a `### heading` line, up to the next heading."""
    start = doc.index(f"### {heading}\n")
    end = doc.find("\n#", start + 4)
    return doc[start : end if end != -1 else None]


def test_known_types_sentence_lists_every_client_event():
    head = PROTOCOL[PROTOCOL.index("## Client -> server events") :]
    head = head[: head.index("Any other `type`")]
    listed = set(re.findall(r"`([a-z_.]+)`", head)) - {"server.hub.protocol.KNOWN_TYPES"}
    assert listed == set(KNOWN_TYPES), (
        f"the 'Known types' sentence in docs/protocol.md differs from KNOWN_TYPES: "
        f"missing {sorted(set(KNOWN_TYPES) - listed)}, stale {sorted(listed - set(KNOWN_TYPES))}"
    )


def test_session_update_fields_are_in_its_table():
    from server.hub.protocol import SessionConfig, TurnDetection

    table = section(PROTOCOL, "`session.update`")
    rows = set(re.findall(r"^\| `([a-z_.]+)\??` \|", table, re.M))
    fields = set(SessionConfig.model_fields) | {
        f"turn_detection.{n}" for n in TurnDetection.model_fields
    }
    assert fields <= rows, f"session.update fields missing from its table: {fields - rows}"
    assert rows <= fields, f"session.update table rows the server rejects: {rows - fields}"


def test_proactive_triggers_and_emotions_are_named():
    from typing import get_args

    from server.avatar.emotions import EMOTIONS
    from server.initiative.policy import Trigger

    created = section(PROTOCOL, "`response.created`")
    missing = [t for t in get_args(Trigger) if f"`{t}`" not in created]
    assert not missing, f"proactive triggers missing from response.created: {missing}"
    emotion = section(PROTOCOL, "`response.emotion`")
    missing = [e for e in EMOTIONS if f"`{e}`" not in emotion]
    assert not missing, f"emotions missing from response.emotion: {missing}"


# --- settings named in the docs ------------------------------------------------------------

DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Upper-case names in backticks that are not settings (code constants, HTTP methods...).
NOT_SETTINGS = {"BLENDSHAPE_NAMES", "NORMAL", "DELETE", "GET", "PATCH", "POST", "PUT"}
NOT_SETTINGS |= {"EMOTION_KO", "MIN_FACE_SPAN_S", "MIN_USER_TURNS", "MIN_USER_WORDS"}
NOT_SETTINGS |= {"SOLVEPNP_ITERATIVE"}  # docs/analysis.md: module constants, OpenCV


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.name)
def test_settings_named_in_the_docs_exist(page: Path):
    fields = {n.upper() for n in Settings.model_fields}
    names = set(re.findall(r"`([A-Z][A-Z0-9_]{2,})(?:=[^`]*)?`", page.read_text("utf-8")))
    stale = sorted(names - fields - NOT_SETTINGS)
    assert not stale, f"{page.name} names settings that do not exist: {stale}"


def doc_default_matches(value: str, default: object) -> bool:
    value = value.strip("` ")
    if isinstance(default, bool):
        return value.lower() == str(default).lower()
    if isinstance(default, int | float):
        return float(value) == float(default)
    return value == str(default)


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.name)
def test_defaults_given_in_the_docs_are_the_code_defaults(page: Path):
    """`NAME` [value] is how the docs give a setting's default."""
    fields = {n.upper(): f.default for n, f in Settings.model_fields.items()}
    wrong = []
    for name, value in re.findall(
        r"`([A-Z][A-Z0-9_]{2,})`\s*\[([^\]+;]+)[\];]", page.read_text("utf-8")
    ):
        if name in fields and not doc_default_matches(value, fields[name]):
            wrong.append(f"{name}: docs say {value!r}, the code {fields[name]!r}")
    assert not wrong, f"{page.name}: {wrong}"


# --- the other protocols: the client events they accept -----------------------------------


def first_column(doc: str, heading: str) -> set[str]:
    """The backticked names in the first column of the table under `## heading`."""
    part = doc[doc.index(f"{heading}\n") :]
    rows = re.findall(r"^\| `([a-z_.]+)` \|", part[: part.find("\n\n", part.find("\n|"))], re.M)
    return set(rows)


def test_realtime_supported_events_are_its_handlers():
    from server.protocols.realtime_input import HANDLERS

    doc = (ROOT / "docs" / "protocol-realtime.md").read_text(encoding="utf-8")
    table = first_column(doc, "## Supported client events")
    assert table == set(HANDLERS), (
        f"protocol-realtime.md's client event table: missing {set(HANDLERS) - table}, "
        f"not handled {table - set(HANDLERS)}"
    )


def test_dmp_client_frames_are_the_ones_read():
    text = "".join(p.read_text(encoding="utf-8") for p in protocol_files("dmp"))
    read = set(re.findall(r'\bkind == "([a-z_]+)"', text))
    assert {"authorize", "chat_message"} <= read, "the scanner broke"
    doc = (ROOT / "docs" / "protocol-dmp.md").read_text(encoding="utf-8")
    table = first_column(doc, "Client -> server:")
    assert table == read, (
        f"protocol-dmp.md's client table: missing {read - table}, stale {table - read}"
    )


# --- docs/protocol.md: the fields of each server event -------------------------------------


def protocol_section(event: str) -> str | None:
    """The `### ...` section whose heading names `event`."""
    for m in re.finditer(r"^### (.*)$", PROTOCOL, re.M):
        if f"`{event}`" in m.group(1):
            end = PROTOCOL.find("\n#", m.end())
            return PROTOCOL[m.start() : end if end != -1 else None]
    return None


def sent_event_fields() -> list[tuple[str, str, set[str]]]:
    """(file, event type, literal keys) of each `{"type": "<event>", ...}` dict the server
    builds for /v1/ws clients."""
    import ast

    server_types = set(server_event_types())
    found = []
    for f in server_files(skip=("providers",)):
        if protocol_of(f) is not None:
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Dict):
                continue
            pairs = zip(node.keys, node.values, strict=True)
            keys = {k.value: v for k, v in pairs if isinstance(k, ast.Constant)}
            kind = keys.get("type")
            if isinstance(kind, ast.Constant) and kind.value in server_types:
                found.append((f.name, kind.value, set(keys) - {"type"}))
    return found


def test_server_event_fields_are_documented():
    events = sent_event_fields()
    assert len(events) > 20, "the scanner broke"
    missing = []
    for file, event, keys in events:
        text = protocol_section(event)
        if text is None:
            missing.append(f"{event} ({file}): no ### section names it")
            continue
        gone = sorted(k for k in keys if f"`{k}`" not in text and f'"{k}"' not in text)
        if gone:
            missing.append(f"{event} ({file}): {gone}")
    assert not missing, (
        f"server event fields missing from their docs/protocol.md section: {missing}"
    )


# --- files the docs point to ---------------------------------------------------------------

REPO_PATH = re.compile(
    r"\b((?:server|tests|bench|static|analysis|packaging|personas|deploy)/[\w./-]*[\w/])(?![\w<*])"
)


@pytest.mark.parametrize(
    "page", [*DOC_PAGES, ROOT / ".env.example", ROOT / "bench" / "README.md"], ids=lambda p: p.name
)
def test_paths_named_in_the_docs_exist(page: Path):
    """A module or file the docs send a reader to was not renamed or split away."""
    gone = sorted(
        {p for p in REPO_PATH.findall(page.read_text("utf-8")) if not (ROOT / p).exists()}
    )
    assert not gone, f"{page.name} names paths that do not exist: {gone}"


def test_env_example_shows_the_code_defaults():
    """`# NAME=value` shows the default; only a setting without one shows an example."""
    fields = {n.upper(): f.default for n, f in Settings.model_fields.items()}
    wrong = []
    for name, value in re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE, re.M):
        default = fields.get(name)
        if default in (None, "") or (isinstance(default, Path) and default.is_absolute()):
            continue  # an example; or a path inside this checkout, shown relative
        if value.strip() and not doc_default_matches(value.strip(), default):
            wrong.append(f"{name}={value.strip()} (the code: {default!r})")
    assert not wrong, f".env.example values that are not the defaults: {wrong}"


def readme_default_matches(value: str, default: object) -> bool:
    value = value.strip().strip("`")
    if value == "unset":
        return default in (None, "")
    if m := re.fullmatch(r"(\d+) (KiB|MiB)", value):
        return default == int(m[1]) * {"KiB": 1024, "MiB": 1024 * 1024}[m[2]]
    if value in ("the LLM's",) or value.startswith("DATA_DIR/"):
        return default in (None, "")  # derived at run time from another setting
    return doc_default_matches(value, default)


def test_readme_configuration_table_defaults():
    fields = {n.upper(): f.default for n, f in Settings.model_fields.items()}
    table = README[README.index("## Configuration") :]
    checked, wrong = 0, []
    for names_cell, defaults_cell in re.findall(r"^\| (`[A-Z].*?) \| (.*?) \|", table, re.M):
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", names_cell)
        values = re.split(r", | / ", defaults_cell)
        if len(values) == 1 and len(names) > 1:
            values *= len(names)  # one value for all of them ("unset")
        if len(values) != len(names):
            wrong.append(f"{names}: {len(values)} defaults for {len(names)} settings")
            continue
        for name, value in zip(names, values, strict=True):
            checked += 1
            if not readme_default_matches(value, fields[name]):
                wrong.append(f"{name}: README says {value}, the code {fields[name]!r}")
    assert checked > 30, "the table scanner broke"
    assert not wrong, f"README's configuration table: {wrong}"


# --- links between the pages ----------------------------------------------------------------


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors: lower case, punctuation dropped, spaces as hyphens; -1, -2 on repeats."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} (.*)$", re.sub(r"```.*?```", "", text, flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def test_links_to_sections_resolve():
    """A renamed heading breaks the links to it: `[...](#anchor)`, `[...](page.md#anchor)`."""
    broken, checked = [], 0
    for page in DOC_PAGES:
        text = re.sub(r"```.*?```", "", page.read_text("utf-8"), flags=re.S)
        for target, anchor in re.findall(r"\]\(([\w./-]*\.md)?#([^)\s]+)\)", text):
            linked = (page.parent / target).resolve() if target else page
            checked += 1
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such page)")
            elif anchor not in heading_anchors(linked.read_text("utf-8")):
                broken.append(f"{page.name}: {target}#{anchor}")
    assert checked > 50, "the link scanner broke"
    assert not broken, f"links to sections that do not exist: {broken}"


def test_realtime_event_fields_are_named():
    """The fields each Realtime server event is sent with (`self._send(type, field=...)`)."""
    import ast

    doc = (ROOT / "docs" / "protocol-realtime.md").read_text(encoding="utf-8")
    fields: dict[str, str] = {}
    for f in protocol_files("realtime"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "_send":
                for kw in node.keywords:
                    if kw.arg is not None:
                        fields.setdefault(kw.arg, f.name)
    assert {"item_id", "delta", "session"} <= set(fields), "the scanner broke"
    missing = sorted(k for k in fields if not named_in_code_spans(k, doc))
    assert not missing, f"Realtime event fields missing from docs/protocol-realtime.md: {missing}"


def named_in_code_spans(word: str, doc: str) -> bool:
    """`word` is in a code span outside code blocks (`{item_id, delta}` names two)."""
    prose = re.sub(r"```.*?```", "", doc, flags=re.S)
    return any(re.search(rf"\b{word}\b", span) for span in re.findall(r"`([^`]+)`", prose))


def test_dmp_frame_fields_are_named():
    """The keys of every dict the DMP modules build (frames and REST answers)."""
    import ast

    doc = (ROOT / "docs" / "protocol-dmp.md").read_text(encoding="utf-8")
    keys: dict[str, str] = {}
    for f in protocol_files("dmp"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                for k in node.keys:
                    if isinstance(k, ast.Constant) and isinstance(k.value, str):
                        keys.setdefault(k.value, f.name)
    assert {"turn_id", "chunk", "audio_base64"} <= set(keys), "the scanner broke"
    missing = sorted(f"{k} ({f})" for k, f in keys.items() if not named_in_code_spans(k, doc))
    assert not missing, f"DMP fields missing from docs/protocol-dmp.md: {missing}"
