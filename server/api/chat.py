"""POST /v1/chat: one whole turn over REST, through the same graph as the WebSocket."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from server.agent.graph import TurnFinished, tool_transcript
from server.agent.history_sync import sync_history
from server.agent.state import TurnContext
from server.api.deps import ServicesDep
from server.api.voice import reply_audio_b64
from server.auth import AuthError, AuthUnavailable, authenticator, credentials, valid_user_id
from server.logging import get_logger
from server.providers.failures import llm_failure, paced
from server.providers.llm import LLMNotConfigured
from server.store.base import new_id

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["chat"])


class ChatRequest(BaseModel):
    user_id: Annotated[str, Field(min_length=1, max_length=64)]
    thread_id: str | None = None
    message: Annotated[str, Field(min_length=1, max_length=100_000)]
    persona: str | None = None


class ChatResponse(BaseModel):
    thread_id: str
    text_response: str
    audio_response_b64: str | None = None


async def chat_user(request: Request, body_user: str) -> str:
    """Local mode trusts the body's user_id; with auth configured it must match the token."""
    token, _ = credentials(request)
    auth = authenticator(request)
    if auth.local and token is None:
        return valid_user_id(body_user, "user_id")
    user = (await auth.authenticate(token)).user_id
    if user != body_user:
        raise HTTPException(403, "user_id does not match the authenticated user.")
    return user


@router.post("/chat", response_model=ChatResponse, summary="One text turn, reply as JSON")
async def chat(body: ChatRequest, request: Request, services: ServicesDep) -> ChatResponse:
    limit = services.settings.max_input_chars
    if len(body.message) > limit:
        raise HTTPException(413, f"message is limited to {limit} characters (MAX_INPUT_CHARS).")
    try:
        user = await chat_user(request, body.user_id)
    except AuthUnavailable as e:
        raise HTTPException(503, str(e)) from None
    except AuthError as e:
        raise HTTPException(401, str(e)) from None
    store = services.store
    if body.thread_id:
        rec = await store.get_session(user, body.thread_id)
        if rec is None:
            raise HTTPException(404, "No such thread for this user.")
        persona = services.personas.get(rec.persona_id)
        await sync_history(services.agent, store, user, rec.id, rec.thread_id)
    else:
        persona = services.personas.get(body.persona or services.settings.default_persona)
        if persona is None:
            raise HTTPException(404, "Unknown persona.")
        await store.ensure_user(user)
        rec = await store.create_session(user, persona.id, {"persona": persona.id})
    if persona is None:
        raise HTTPException(500, "Error processing request: the thread's persona is gone.")
    turns = await store.count_messages(user, persona.id, "user")
    message_id, reply_id = new_id(), new_id()  # shared by the store and the model's history
    await store.add_message(user, rec.id, persona.id, "user", body.message, message_id=message_id)
    # the same agent, tools and perception as the user's live session (or, in desktop
    # mode, this machine's screen)
    ctx = TurnContext(
        persona=persona,
        user_turns=turns,
        reply_id=reply_id,
        perception=services.perception_for(user),
        vision_wait_s=services.settings.vision_wait_s,
    )
    try:
        finished: TurnFinished | None = None
        s = services.settings
        turn = services.agent.stream_turn(user, rec.thread_id, body.message, ctx, message_id)
        async for ev in paced(turn, s.llm_first_token_timeout_s, s.llm_stream_idle_timeout_s):
            if isinstance(ev, TurnFinished):
                finished = ev
    except LLMNotConfigured as e:
        raise HTTPException(500, f"Error processing request: {e}") from None
    except Exception as e:
        tries = services.settings.llm_max_retries + 1
        if (failure := llm_failure(e, mid_reply=False, tries=tries)) is not None:
            raise HTTPException(500, f"Error processing request: {failure.message}") from None
        log.exception("chat_failed")
        raise HTTPException(500, f"Error processing request: {type(e).__name__}") from None
    finally:  # tools that ran keep their effect, so the transcript shows them either way
        for line in tool_transcript(ctx.tool_log):
            await store.add_message(user, rec.id, persona.id, "system", line)
    text = finished.text if finished else ""
    if text:
        await store.add_message(user, rec.id, persona.id, "assistant", text, message_id=reply_id)
    usage = finished.usage if finished else {}
    await store.incr_usage(user, {"api_calls": 1, "llm_calls": 1, **usage})
    audio = await reply_audio_b64(services, text, persona.tts_voice, user)
    return ChatResponse(thread_id=rec.thread_id, text_response=text, audio_response_b64=audio)
