"""POST /v1/setup/test: try the configured model services now, for the studio's first-run
card ("test connection"). Answers in plain words what works and what to change; never
echoes a key."""

from __future__ import annotations

import time
from typing import Any, Literal

import openai
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from server.api.deps import ServicesDep, UserDep
from server.config import Settings, secret
from server.providers.failures import invalid_response, never_connected

router = APIRouter(prefix="/v1/setup", tags=["setup"])

TEST_TIMEOUT_S = 10.0
Target = Literal["llm", "vlm", "embeddings"]


class TestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    targets: list[Target] = ["llm"]


def _endpoint(settings: Settings, target: Target) -> tuple[str | None, str | None, str]:
    if target == "vlm":
        return settings.vlm_endpoint()
    if target == "embeddings":
        base = settings.embed_base_url or settings.llm_base_url
        key = secret(settings.embed_api_key) or secret(settings.llm_api_key)
        return base, key, settings.embed_model
    return settings.llm_base_url, secret(settings.llm_api_key), settings.llm_model


def _configured(settings: Settings, target: Target) -> bool:
    if target == "vlm":
        return settings.vlm_configured
    if target == "embeddings":
        return settings.embedder_configured
    return settings.llm_configured


def explain(e: Exception, base_url: str, model: str) -> tuple[str, str]:
    """(code, message) for a failed call, in the words a user can act on."""
    if isinstance(e, openai.APITimeoutError):
        return "timeout", f"{base_url} did not answer within {TEST_TIMEOUT_S:g} s."
    if invalid_response(e):
        return "invalid_response", "The endpoint sent a response that is not the OpenAI format."
    if never_connected(e):
        return "unreachable", (
            f"Could not connect to {base_url}. Is the model server running, and is the URL "
            "right (it usually ends in /v1)?"
        )
    if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
        return "unauthorized", "The endpoint rejected the API key: check the *_API_KEY setting."
    if isinstance(e, openai.NotFoundError):
        return "not_found", (
            f"The endpoint does not know the model {model!r} (or the URL is wrong): check the "
            "*_MODEL and *_BASE_URL settings."
        )
    if isinstance(e, openai.APIStatusError):
        return "http_error", f"The endpoint answered HTTP {e.status_code}."
    if isinstance(e, openai.APIConnectionError):
        return "connection_lost", f"{base_url} closed the connection before it answered."
    return "invalid_response", "The endpoint sent a response that is not the OpenAI format."


async def probe(settings: Settings, target: Target) -> dict[str, Any]:
    base_url, key, model = _endpoint(settings, target)
    out: dict[str, Any] = {"target": target, "base_url": base_url, "model": model}
    if not _configured(settings, target):
        what = {"llm": "LLM_BASE_URL", "vlm": "VLM_BASE_URL", "embeddings": "EMBED_BASE_URL"}
        return out | {
            "ok": False,
            "code": "not_configured",
            "message": f"Not configured: set {what[target]} (and its key) in .env.",
        }
    base_url = base_url or "https://api.openai.com/v1"
    client = openai.AsyncOpenAI(
        base_url=base_url, api_key=key or "not-needed", timeout=TEST_TIMEOUT_S, max_retries=0
    )
    t0 = time.perf_counter()
    try:
        if target == "embeddings":
            await client.embeddings.create(model=model, input="test")
        else:
            await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "Reply with OK."}],
                max_tokens=1,
            )
    except Exception as e:  # every failure becomes an explained answer, never a 500
        code, message = explain(e, base_url, model)
        return out | {"ok": False, "code": code, "message": message}
    finally:
        await client.close()
    ms = round((time.perf_counter() - t0) * 1000)
    return out | {"ok": True, "code": "ok", "latency_ms": ms, "message": f"Answered in {ms} ms."}


@router.post("/test", summary="Try the configured LLM / VLM / embeddings endpoints now")
async def test_connection(
    body: TestRequest, services: ServicesDep, user: UserDep
) -> dict[str, Any]:
    results = [await probe(services.settings, t) for t in dict.fromkeys(body.targets)]
    return {"ok": all(r["ok"] for r in results), "results": results}
