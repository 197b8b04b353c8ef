"""The VLM's answer for one task step: seed 001's analysis JSON (current_screen,
available_actions, recommended_action) plus what the task runner needs to verify the last
step, stop at payment screens and know when the task is done."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from server.providers.vlm import Action, Coordinates

ActionKind = Literal["click", "type", "scroll", "key", "wait", "none"]

SYSTEM_PROMPT = (
    "You guide a user through a task in an application, one step at a time, from "
    "screenshots. For each screenshot: describe the screen, list the actionable elements "
    "with the pixel coordinates of their centre (origin top-left, in the image's own "
    "pixels), copy the visible text (labels, prices, headings, field names), and recommend "
    "the single next action toward the task. Never help to pay: if the screen asks for "
    "payment (a pay or checkout button with a price, card or bank account fields, an order "
    "confirmation that charges money), set is_payment_screen to true and recommend 'none'. "
    "Answer only with JSON that matches the given schema."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepAction(_Strict):
    """The recommended next action (the seed's type, target, reasoning, plus where)."""

    type: ActionKind = Field(description="click, type, scroll, key, wait; none when done")
    target: str = Field(description="the element the action applies to, as labelled")
    reasoning: str = Field(description="one sentence on why this step")
    coordinates: Coordinates
    text: str = Field(description="text to type, or the key to press; empty otherwise")
    description: str = Field(description="what the step does, in a few words for the user")


class StepAnalysis(_Strict):
    """One screenshot read for the task."""

    current_screen: str = Field(description="what the screen shows, in a few words")
    available_actions: list[Action]
    recommended_action: StepAction
    visible_text: list[str] = Field(description="visible labels, prices, headings, fields")
    is_payment_screen: bool
    matches_expected_screen: bool = Field(
        description="the screen is what the previous step should have led to (true if none)"
    )
    expected_next_screen: str = Field(description="what the screen shows after the action")
    is_last_step: bool = Field(description="the recommended action finishes the task")
    task_complete: bool = Field(description="the task is already done on this screen")
    remaining_plan: list[str] = Field(description="the steps still needed, in order")


def step_question(
    app_name: str, task: str, step: int, previous: str | None, expected: str | None
) -> str:
    """The user part of the prompt for one step."""
    lines = [f"Application: {app_name}", f"Task: {task}", f"Step number: {step}"]
    if previous:
        lines.append(f"The previous step was: {previous}")
    if expected:
        lines.append(f"After it the screen should show: {expected}")
    else:
        lines.append("This is the first screen of the task.")
    return "\n".join(lines)


ELEMENT_PROMPT = (
    "You identify one UI element in a screenshot for a desktop assistant. Say what the "
    "element at the given point (or inside the given box) is, what it shows and what "
    "using it would do. Answer only with JSON that matches the given schema."
)


class ElementAnalysis(_Strict):
    """What one element of a screenshot is (POST /v1/analyze/element)."""

    element: str = Field(description="the element, e.g. '주문하기 button'")
    role: str = Field(description="button, link, text field, checkbox, image, text, ...")
    text: str = Field(description="the text it shows, empty if none")
    actionable: bool
    purpose: str = Field(description="what using it would do, one sentence")
