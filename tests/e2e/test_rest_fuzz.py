"""REST under hostile input (issue 11, item 5): every route in the OpenAPI schema answers 4xx
with a message, never 5xx, and every JSON answer is strict JSON. Seeded and reproducible."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import httpx

from tests.e2e.test_perception_face import FACE_MODEL
from tests.e2e.test_ws_robust import NOT_JSON, strict_json
from tests.fakes.openai_server import FakeOpenAI
from tests.speech import whisper_base_dir

SEED = 11
# Raw JSON fragments json.dumps cannot write: non-standard constants, lone surrogates,
# numbers beyond 64 bits and 5,000 digits, nesting far deeper than any real body.
RAW_VALUES = [
    *NOT_JSON,
    "1e309",
    "1e300",
    "123456789012345678901234567890",
    "-18446744073709551617",
    "[" * 30_000 + "]" * 30_000,
    "null",
    "true",
    "[]",
    "{}",
    '""',
    '"' + "x" * 200_000 + '"',
    "-1",
    "0",
    '"2026-13-45T99:99:99Z"',
    '"9999-12-31T23:59:59-14:00"',
    '"0001-01-01T00:00:00+14:00"',
    "0.5",
]
PARAM_VALUES = [
    "9" * 30,
    "-1",
    "1e309",
    "NaN",
    "Infinity",
    "18446744073709551616",
    "9223372036854775807",
    "%ED%A0%80",
    "%00",
    "..%2F..%2Fetc",
    "x" * 5000,
    "",
    "0",
    "true",
]


def schema_ref(ref: str, spec: dict[str, Any]) -> dict[str, Any]:
    node: Any = spec
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def body_properties(op: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    content = (op.get("requestBody") or {}).get("content", {})
    schema = (content.get("application/json") or {}).get("schema") or {}
    if "$ref" in schema:
        schema = schema_ref(schema["$ref"], spec)
    return list(schema.get("properties", {}))


def json_bodies(rng: random.Random, props: list[str], n: int) -> list[str]:
    """Bodies that break one or more fields at a time, plus broken documents."""
    plausible = {
        "text": '"remember the milk"',
        "message": '"hello"',
        "user_id": '"fuzz"',
        "in_seconds": "60",
        "screenshot": '"QUJD"',
        "image_b64": '"QUJD"',
        "format": '"wav"',
    }
    out = ["[" * 30_000 + "]" * 30_000, "{", "NaN", '"\\ud800"', "9" * 5000, ""]
    while len(out) < n:
        fields = {p: plausible.get(p, '"x"') for p in props}
        for p in rng.sample(props, k=rng.randint(1, max(1, len(props)))) if props else []:
            fields[p] = rng.choice(RAW_VALUES)
        if rng.random() < 0.2:
            fields[rng.choice(["\\ud800", "extra", "a" * 300])] = rng.choice(RAW_VALUES)
        out.append("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}")
    return out


async def wait_ready(url: str, modules: tuple[str, ...], timeout: float = 60) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(int(timeout / 0.1)):
            state = (await http.get("/health")).json()["modules"]
            if all(state.get(m) == "ready" for m in modules):
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"modules not ready: {state}")


async def test_every_route_answers_bad_input_with_4xx_and_a_message(
    server_factory, llm: FakeOpenAI
):
    # every module available, so a 503 could only mean a failure
    server = server_factory(
        llm, face_model_path=FACE_MODEL, tts_provider="espeak", stt_model=str(whisper_base_dir())
    )
    await wait_ready(server.url, ("stt", "face", "tts"))
    rng = random.Random(SEED)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        spec = (await http.get("/openapi.json")).json()
        headers = {"Authorization": "Bearer fuzz"}
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                params = op.get("parameters", [])
                props = body_properties(op, spec)
                content = (op.get("requestBody") or {}).get("content", {})
                requests: list[dict[str, Any]] = []
                for _ in range(40):
                    url = path
                    query: dict[str, str] = {}
                    for prm in params:
                        value = rng.choice(PARAM_VALUES)
                        if prm["in"] == "path":
                            url = url.replace("{" + prm["name"] + "}", value or "x")
                        elif rng.random() < 0.8:
                            query[prm["name"]] = value
                    qs = "&".join(f"{k}={v}" for k, v in query.items())
                    requests.append({"url": url + ("?" + qs if qs else "")})
                if "application/json" in content:
                    for body in json_bodies(rng, props, 60):
                        requests.append(
                            {
                                "url": path,
                                "content": body.encode("utf-8", "surrogatepass"),
                                "headers": {"content-type": "application/json"},
                            }
                        )
                if "multipart/form-data" in content:
                    for i in range(20):
                        junk = rng.randbytes(rng.choice([0, 1, 44, 300, 5000]))
                        field = rng.choice(["audio_file", "image", "file", "x"])
                        requests.append({"url": path, "files": {field: (f"f{i}.wav", junk)}})
                    requests.append(
                        {
                            "url": path,
                            "content": b"--b\r\nbroken",
                            "headers": {"content-type": "multipart/form-data; boundary=b"},
                        }
                    )
                for req in requests:
                    h = {**headers, **req.pop("headers", {})}
                    r = await http.request(method.upper(), **req, headers=h)
                    statuses[r.status_code] += 1
                    if r.status_code >= 500 and not (path == "/health" and r.status_code == 503):
                        failures.append(f"{method.upper()} {req['url'][:80]} -> {r.status_code}")
                    if r.headers.get("content-type", "").startswith("application/json"):
                        body = strict_json(r.text)
                        if r.status_code >= 400:
                            assert body.get("detail"), (path, r.text[:200])
    total = sum(statuses.values())
    print(f"\nREST fuzz: {total} requests over {len(spec['paths'])} paths; statuses {statuses}")
    assert not failures, failures[:20]
    assert total >= 1000
