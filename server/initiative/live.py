"""The proactive side of one live session: a loop that checks the triggers every
PROACTIVE_TICK_S and starts a proactive turn when one fires and the user's choices allow it.

A fire is claimed in the store first (insert-or-ignore on a key per user), so a schedule's
fire time speaks once across sessions, replicas and restarts; the session's turn follows."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from server.initiative.data import ProactiveData
from server.initiative.policy import (
    Choices,
    cron_fires,
    fire_key,
    idle_after_s,
    refusal,
    zone,
)
from server.logging import get_logger
from server.store.base import utcnow

if TYPE_CHECKING:
    from server.config import Settings
    from server.personas import Persona
    from server.store.base import Store

log = get_logger(__name__)

# a screen description naming an error dialog (the VLM's words, English or Korean)
ERROR_SCREEN = re.compile(
    r"\b(error|exception|traceback|failed|crash(ed)?|not responding)\b|오류|에러|실패", re.I
)
# the face analysis' negative emotions (analysis/face/expression.py EMOTIONS)
NEGATIVE = frozenset({"anger", "sadness", "fear", "disgust"})
# a schedule missed while no server ran is still said if it is at most this old
SCHEDULE_GRACE = timedelta(minutes=5)


class ProactiveSession(Protocol):
    """What the loop needs of a session (hub/session.py implements it)."""

    user_id: str
    persona: Persona
    config: dict[str, Any]
    paused: bool

    @property
    def session_id(self) -> str: ...

    def response_active(self) -> bool: ...

    def latest_affect(self) -> dict[str, Any] | None: ...

    def latest_visual(self) -> str | None: ...

    async def start_proactive(self, trigger: str, prompt: str) -> None: ...


@dataclass
class Fired:
    trigger: str
    prompt: str
    key: str | None = None  # a schedule's own key (its fire time)


class Initiative:
    def __init__(
        self,
        session: ProactiveSession,
        settings: Settings,
        store: Store,
        data: ProactiveData,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.s = session
        self.settings = settings
        self.store = store
        self.data = data
        self.clock = clock
        now = time.monotonic()
        self.last_input = now  # user input: typed or spoken
        self.last_fire: float | None = None
        self.idle_fired_for: float | None = None  # the idle period that already spoke
        self.schedules_checked = clock() - SCHEDULE_GRACE
        self.webhooks: asyncio.Queue[tuple[str, str, asyncio.Future[str]]] = asyncio.Queue(8)
        # perception state (monotonic times)
        self.seen_at: float | None = None  # a face was last seen
        self.away_since: float | None = None
        self.focus_since: float | None = None
        self.error_since: float | None = None
        self.negative_since: float | None = None
        self.pending_approval: Callable[[], bool] = lambda: False

    # --- inputs -------------------------------------------------------------------------
    def user_input(self) -> None:
        self.last_input = time.monotonic()
        self.focus_since = self.focus_since or self.last_input

    def choices(self) -> Choices:
        c = self.s.config
        return Choices(
            mode=c.get("proactive_mode") or self.settings.proactive_mode,
            quiet_hours=c.get("proactive_quiet_hours")
            if c.get("proactive_quiet_hours") is not None
            else self.settings.proactive_quiet_hours,
            tz=zone(c.get("timezone"), self.settings.proactive_timezone),
            vision=bool(c.get("proactive_vision")),
        )

    async def webhook(self, reason: str, prompt: str | None) -> str:
        """Queue an app's request; answers once the loop decided ("started" or why not)."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        try:
            self.webhooks.put_nowait((reason, prompt or "", fut))
        except asyncio.QueueFull:
            return "busy: too many requests waiting"
        return await fut

    # --- the loop -----------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.proactive_tick_s)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("proactive_tick_failed", session_id=self.s.session_id)

    async def tick(self) -> None:
        now_wall, now = self.clock(), time.monotonic()
        choices = self.choices()
        busy = self.s.paused or self.s.response_active() or self.pending_approval()
        since = None if self.last_fire is None else now - self.last_fire

        def blocked(trigger: str) -> str | None:
            return refusal(
                trigger,
                choices,
                now_wall,
                busy=busy,
                since_last_s=since,
                cooldown_s=self.settings.proactive_cooldown_s,
            )

        while not self.webhooks.empty():
            reason, prompt, fut = self.webhooks.get_nowait()
            why = blocked("webhook")
            key = fire_key("webhook", self.s.session_id, now_wall.isoformat())
            if why is None:
                text = prompt or self._prompt("webhook", reason=reason)
                why = await self._fire("webhook", key, text)
            if not fut.done():
                fut.set_result(why or "started")
            if why is None:
                return
        for candidate in self._candidates(now_wall, now, choices):
            if blocked(candidate.trigger) is None:
                key = self._key(candidate, now_wall)
                if await self._fire(candidate.trigger, key, candidate.prompt) is None:
                    return

    def _candidates(self, now_wall: datetime, now: float, choices: Choices) -> list[Fired]:
        out: list[Fired] = []
        pid = self.s.persona.id
        schedules = self.data.schedules.get(pid, []) + self.data.schedules.get("*", [])
        after, self.schedules_checked = self.schedules_checked, now_wall
        for sch in schedules:
            # only the latest fire time: a greeting missed while no session was live is said
            # once on connecting (within SCHEDULE_GRACE), never once per missed time
            for t in cron_fires(sch.cron, after, now_wall, choices.tz)[-1:]:
                key = fire_key("schedule", pid, sch.id, t.isoformat())
                out.append(Fired("schedule", self._prompt("schedule", name=sch.name), key))
        out += self._perceived(now)
        idle = idle_after_s(choices.mode, self.settings.proactive_idle_s)
        present = self.seen_at is None or self.away_since is None
        if now - self.last_input >= idle and self.idle_fired_for != self.last_input and present:
            out.append(Fired("idle", self._prompt("idle")))
        return out

    def _perceived(self, now: float) -> list[Fired]:
        """Camera and screen: the user back after being away, long focus, an error dialog
        that stays, a strongly negative expression that lasts."""
        st = self.settings
        out: list[Fired] = []
        affect = self.s.latest_affect()
        if affect is not None:
            if self.away_since is not None and now - self.away_since >= st.proactive_away_s:
                out.append(Fired("return", self._prompt("return")))
            self.away_since = None
            self.seen_at = now
            if affect.get("attention") == "focused":
                self.focus_since = self.focus_since or now
            if self.focus_since is not None and now - self.focus_since >= st.proactive_focus_s:
                out.append(Fired("focus", self._prompt("focus")))
            strong = affect.get("emotion_confidence", 0.0) >= st.proactive_negative_confidence
            if str(affect.get("emotion")) in NEGATIVE and strong:
                self.negative_since = self.negative_since or now
                if now - self.negative_since >= st.proactive_negative_s:
                    out.append(Fired("negative", self._prompt("negative")))
            else:
                self.negative_since = None
        elif self.seen_at is not None and self.away_since is None:
            self.away_since = now
            self.focus_since = None
        visual = self.s.latest_visual()
        if visual and ERROR_SCREEN.search(visual):
            self.error_since = self.error_since or now
            if now - self.error_since >= st.proactive_error_screen_s:
                out.append(Fired("error_screen", self._prompt("error_screen", detail=visual[:200])))
        else:
            self.error_since = None
        return out

    def _key(self, f: Fired, now_wall: datetime) -> str:
        if f.key:
            return f.key
        if f.trigger == "idle":
            return fire_key("idle", self.s.session_id, f"{self.last_input:.3f}")
        return fire_key(f.trigger, self.s.session_id, now_wall.isoformat())

    def _prompt(self, trigger: str, **fill: str) -> str:
        p = self.s.persona
        return self.data.prompt(p.id, p.language, trigger, **fill)

    async def _fire(self, trigger: str, key: str, prompt: str) -> str | None:
        """Claim the fire, then start the turn; the reason it did not, or None."""
        if not await self.store.claim_proactive_fire(
            self.s.user_id, key, trigger, self.s.session_id
        ):
            return "already fired"
        now = time.monotonic()
        self.last_fire = now
        if trigger == "idle":
            self.idle_fired_for = self.last_input
        if trigger == "focus":
            self.focus_since = now
        if trigger == "negative":
            self.negative_since = now
        if trigger == "error_screen":
            self.error_since = now + 10 * self.settings.proactive_error_screen_s
        log.info("proactive_fire", trigger=trigger, session_id=self.s.session_id)
        await self.s.start_proactive(trigger, prompt)
        return None


class InitiativeHub:
    """The live sessions' initiatives per user: the webhook reaches them here."""

    def __init__(self, data: ProactiveData) -> None:
        self.data = data
        self._live: dict[str, list[Initiative]] = {}

    def attach(self, user_id: str, ini: Initiative) -> Callable[[], None]:
        self._live.setdefault(user_id, []).append(ini)

        def detach() -> None:
            with contextlib.suppress(ValueError):
                self._live.get(user_id, []).remove(ini)
            if not self._live.get(user_id):
                self._live.pop(user_id, None)

        return detach

    async def webhook(self, user_id: str, reason: str, prompt: str | None) -> str | None:
        """The newest live session of the user takes it; None when the user has none."""
        live = self._live.get(user_id)
        if not live:
            return None
        return await live[-1].webhook(reason, prompt)
