"""Planner: one VLM call reads a screenshot for the task, validated against StepAnalysis;
a malformed answer is asked for once more, then reported."""

from __future__ import annotations

import time
from dataclasses import dataclass

from server.logging import get_logger
from server.providers.vlm import VisionClient, VisionError, parse_json_answer
from server.tasks.schema import SYSTEM_PROMPT, StepAnalysis, step_question

log = get_logger(__name__)
MALFORMED_TRIES = 2  # the first answer and one retry


class PlanFailed(Exception):
    """The VLM could not give a usable analysis: ``reason`` is vlm_malformed or vlm_error."""

    def __init__(self, reason: str, message: str, vlm_ms: float) -> None:
        super().__init__(message)
        self.reason, self.message, self.vlm_ms = reason, message, vlm_ms


@dataclass
class Plan:
    analysis: StepAnalysis
    vlm_ms: float  # time spent waiting for the VLM (all tries)
    tries: int


class Planner:
    def __init__(self, vision: VisionClient) -> None:
        self.vision = vision

    async def analyze(
        self,
        image: bytes,
        *,
        app_name: str,
        task: str,
        step: int,
        previous: str | None = None,
        expected: str | None = None,
    ) -> Plan:
        question = step_question(app_name, task, step, previous, expected)
        vlm_ms = 0.0
        problem = ""
        for attempt in range(1, MALFORMED_TRIES + 1):
            t0 = time.perf_counter()
            try:
                text = await self.vision.structured_answer(
                    image, SYSTEM_PROMPT, question, StepAnalysis, "task_step_analysis"
                )
            except VisionError as e:
                vlm_ms += (time.perf_counter() - t0) * 1000
                raise PlanFailed("vlm_error", str(e), vlm_ms) from None
            vlm_ms += (time.perf_counter() - t0) * 1000
            try:
                analysis = parse_json_answer(text, StepAnalysis, "task step analysis")
            except VisionError as e:
                problem = str(e)
                log.warning("task_analysis_malformed", attempt=attempt, error=problem[:300])
                continue
            return Plan(analysis, vlm_ms, attempt)
        raise PlanFailed("vlm_malformed", problem, vlm_ms)
