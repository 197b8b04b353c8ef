"""Screen tasks (seed 001): start, step, confirm, retry, pause, resume, cancel, delete; the
element reader; the user's consent. Live events for the same tasks go over the WebSocket
(docs/protocol.md, "Screen tasks")."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field, model_validator

from analysis.screen import InvalidImage
from server.api.analyze_screen import decode_screenshot
from server.api.deps import Offset, ServicesDep, UserDep
from server.logging import get_logger
from server.providers.vlm import VisionError, parse_json_answer
from server.services import Services
from server.store.base import CONSENT_ITEMS
from server.tasks.consent import consent_json, missing_items
from server.tasks.runner import TaskError, TaskRunner
from server.tasks.schema import ELEMENT_PROMPT, ElementAnalysis
from server.tasks.verifier import image_size
from server.tasks.views import action_json, metrics, preview_json, route_json, task_json

log = get_logger(__name__)
router = APIRouter(prefix="/v1/tasks", tags=["tasks"])
extra_router = APIRouter(prefix="/v1", tags=["tasks"])

Screenshot = Annotated[
    str | None,
    Field(
        default=None,
        min_length=1,
        description="Base64 JPEG/PNG/WebP; omitted: the latest screen frame of a session.",
    ),
]


class TaskCreate(BaseModel):
    app_name: Annotated[str, Field(min_length=1, max_length=200)]
    task: Annotated[str, Field(min_length=1, max_length=100_000)]
    consent_confirmed: bool
    screenshot: Screenshot = None


class NextAction(BaseModel):
    screenshot: Screenshot = None


class Confirm(BaseModel):
    executed: bool
    screenshot: Screenshot = None


class Box(BaseModel):
    x: int
    y: int
    width: Annotated[int, Field(gt=0)]
    height: Annotated[int, Field(gt=0)]


class ElementRequest(BaseModel):
    screenshot: Annotated[str, Field(min_length=1)]
    x: int | None = None
    y: int | None = None
    box: Box | None = None

    @model_validator(mode="after")
    def _point_or_box(self) -> ElementRequest:
        point = self.x is not None and self.y is not None
        if point == (self.box is not None) or (self.x is None) != (self.y is None):
            raise ValueError("give either x and y, or a box")
        return self


class ConsentUpdate(BaseModel):
    items: dict[str, bool] = Field(
        description=f"Item -> agreed (true) or withdrawn (false); items: {list(CONSENT_ITEMS)}"
    )


def _runner(services: Services, user: str) -> TaskRunner:
    return services.tasks.get(user)


def _http(e: TaskError) -> HTTPException:
    return HTTPException(e.status, e.message)


async def _image(services: Services, b64: str | None) -> bytes | None:
    if b64 is None:
        return None
    try:
        # the header is checked here; the task runner's own decode catches a broken body
        return await asyncio.to_thread(
            decode_screenshot, b64, services.settings.max_image_bytes, full_decode=False
        )
    except OverflowError as e:
        raise HTTPException(413, f"Invalid image: {e}.") from None
    except ValueError as e:
        raise HTTPException(400, f"Invalid image: {e}.") from None


async def _task_or_404(services: Services, user: str, task_id: str) -> Any:
    task = await services.store.get_task(user, task_id)
    if task is None:
        raise HTTPException(404, "No such task for this user.")
    return task


@router.post("", status_code=201, summary="Start a screen task (consent required)")
async def create_task(body: TaskCreate, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    s = services.settings
    task_text = body.task.strip()
    if not task_text or not body.app_name.strip():
        raise HTTPException(422, "app_name and task must not be blank.")
    if len(task_text) > s.task_max_chars:
        raise HTTPException(413, f"task is limited to {s.task_max_chars} characters.")
    missing = missing_items(await services.store.get_consent(user))
    if missing or not body.consent_confirmed:
        need = missing or list(CONSENT_ITEMS)
        raise HTTPException(
            403,
            "Consent is required before a screen task: agree to "
            + ", ".join(need)
            + " (POST /v1/users/consent) and send consent_confirmed=true.",
        )
    image = await _image(services, body.screenshot)
    await services.store.ensure_user(user)
    try:
        task, action = await _runner(services, user).start(body.app_name.strip(), task_text, image)
    except TaskError as e:
        raise _http(e) from None
    return {
        "task_id": task.id,
        "status": task.status,
        "current_step": task.current_step,
        "next_action_preview": _preview(action),
        "failure": task.details.get("failure"),
        "blocked": task.details.get("blocked"),
    }


def _preview(action: Any) -> dict[str, Any] | None:
    if action is None or action.status != "pending":
        return None
    return {"type": action.action_type} | preview_json(action)


@router.get("", summary="The caller's tasks, newest first")
async def list_tasks(
    services: ServicesDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    rows = await services.store.list_tasks(user, limit, offset)
    return {"tasks": [task_json(t) for t in rows]}


@router.get("/{task_id}", summary="One task with its actions, route and metrics")
async def get_task(task_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    task = await _task_or_404(services, user, task_id)
    actions = await services.store.list_task_actions(user, task_id)
    route = await services.store.get_task_route(user, task_id)
    pending = next((a for a in reversed(actions) if a.status == "pending"), None)
    return task_json(task) | {
        "next_action_preview": _preview(pending) if task.status == "running" else None,
        "actions": [action_json(a) for a in actions],
        "route": route_json(route),
        "metrics": metrics(task, actions),
    }


async def _control(services: Services, user: str, task_id: str, verb: str) -> dict[str, Any]:
    await _task_or_404(services, user, task_id)
    runner = _runner(services, user)
    try:
        task = await getattr(runner, verb)(task_id)
    except TaskError as e:
        raise _http(e) from None
    live = runner.live
    pending = live.pending if live is not None and live.task.id == task_id else None
    return task_json(task) | {"next_action_preview": _preview(pending)}


@router.patch("/{task_id}/pause", summary="Pause a running (or failed) task")
async def pause_task(task_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    return await _control(services, user, task_id, "pause")


@router.patch("/{task_id}/resume", summary="Resume a paused task from the current screen")
async def resume_task(task_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    return await _control(services, user, task_id, "resume")


@router.patch("/{task_id}/cancel", summary="Cancel a task; the answer proposes the way back (home)")
async def cancel_task(task_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    return await _control(services, user, task_id, "cancel")


@router.delete("/{task_id}", summary="Delete a task with its actions and route")
async def delete_task(task_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    await _task_or_404(services, user, task_id)
    await _runner(services, user).forget(task_id)
    if not await services.store.delete_task(user, task_id):
        raise HTTPException(404, "No such task for this user.")
    # its screenshots go too (task ids are ours: hex, no path tricks)
    folder = services.settings.data_dir / "tasks" / task_id
    await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)
    return {"task_id": task_id, "deleted": True}


@router.post("/{task_id}/actions", summary="Plan the next action from a screenshot")
async def next_action(
    task_id: str, body: NextAction, services: ServicesDep, user: UserDep
) -> dict[str, Any]:
    await _task_or_404(services, user, task_id)
    image = await _image(services, body.screenshot)
    return await _step(services, user, task_id, _runner(services, user).next_action(task_id, image))


async def _step(
    services: Services, user: str, task_id: str, work: Coroutine[Any, Any, Any]
) -> dict[str, Any]:
    """Run a step that may preview an action; answer with the task and the preview."""
    try:
        action = await work
    except TaskError as e:
        raise _http(e) from None
    task = await _task_or_404(services, user, task_id)
    return task_json(task) | {"next_action_preview": _preview(action)}


@router.get("/{task_id}/actions/{action_id}", summary="One action of a task")
async def get_action(
    task_id: str, action_id: str, services: ServicesDep, user: UserDep
) -> dict[str, Any]:
    action = await services.store.get_task_action(user, task_id, action_id)
    if action is None:
        raise HTTPException(404, "No such action for this user's task.")
    return action_json(action)


@router.post(
    "/{task_id}/actions/{action_id}/confirm",
    summary="Report that the client executed the action (with the screen after it)",
)
async def confirm_action(
    task_id: str, action_id: str, body: Confirm, services: ServicesDep, user: UserDep
) -> dict[str, Any]:
    image = await _image(services, body.screenshot)
    runner = _runner(services, user)
    try:
        action = await runner.confirm(task_id, action_id, body.executed, image)
    except TaskError as e:
        raise _http(e) from None
    live = runner.live  # the runner's records are the stored ones: no re-read
    if live is None or live.task.id != task_id:
        task = await _task_or_404(services, user, task_id)
    else:
        task = live.task
    pending = live.pending if live is not None and live.task.id == task_id else None
    return {
        "action": action_json(action),
        "task": task_json(task),
        "next_action_preview": _preview(pending) if task.status == "running" else None,
    }


@router.post("/{task_id}/actions/{action_id}/retry", summary="Retry a failed step")
async def retry_action(
    task_id: str, action_id: str, services: ServicesDep, user: UserDep
) -> dict[str, Any]:
    await _task_or_404(services, user, task_id)
    if await services.store.get_task_action(user, task_id, action_id) is None:
        raise HTTPException(404, "No such action for this user's task.")
    return await _step(services, user, task_id, _runner(services, user).retry(task_id, action_id))


# --- element analysis and consent (under /v1) ------------------------------------------------


@extra_router.post("/analyze/element", summary="What the element at a point or box is")
async def analyze_element(
    body: ElementRequest, services: ServicesDep, user: UserDep
) -> dict[str, Any]:
    vision = services.vision
    if vision is None:
        raise HTTPException(503, "Element analysis needs a vision model (VLM_BASE_URL).")
    image = await _image(services, body.screenshot)
    assert image is not None
    try:
        width, height = await asyncio.to_thread(image_size, image)
    except InvalidImage as e:
        raise HTTPException(400, f"Invalid image: {e}.") from None
    if body.box is not None:
        b = body.box
        where = f"inside the box x={b.x}, y={b.y}, width={b.width}, height={b.height}"
        inside = 0 <= b.x and 0 <= b.y and b.x + b.width <= width and b.y + b.height <= height
    else:
        assert body.x is not None and body.y is not None
        where = f"at the point x={body.x}, y={body.y}"
        inside = 0 <= body.x < width and 0 <= body.y < height
    if not inside:
        raise HTTPException(422, f"The point or box is outside the {width}x{height} screenshot.")
    question = f"Which UI element is {where} (pixels, origin top-left, image {width}x{height})?"
    try:
        text = await vision.structured_answer(
            image, ELEMENT_PROMPT, question, ElementAnalysis, "element_analysis"
        )
        element = parse_json_answer(text, ElementAnalysis, "element analysis")
    except VisionError as e:
        await services.store.incr_usage(user, {"api_calls": 1, "vlm_calls": 1})
        raise HTTPException(502, f"The vision model could not read the element: {e}") from None
    await services.store.incr_usage(user, {"api_calls": 1, "vlm_calls": 1})
    return {"element": element.model_dump(), "image": {"width": width, "height": height}}


@extra_router.get("/users/consent", summary="The caller's consent items (seed 001 7.2)")
async def get_consent(services: ServicesDep, user: UserDep) -> dict[str, Any]:
    return consent_json(await services.store.get_consent(user))


@extra_router.post("/users/consent", summary="Agree to (or withdraw) consent items")
async def set_consent(body: ConsentUpdate, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    unknown = sorted(set(body.items) - set(CONSENT_ITEMS))
    if unknown or not body.items:
        raise HTTPException(
            422, f"Unknown or no consent items {unknown}; the items are {list(CONSENT_ITEMS)}."
        )
    await services.store.ensure_user(user)
    return consent_json(await services.store.set_consent(user, body.items))
