"""Desktop mode (TASK_DESKTOP_EXECUTE, off by default): the server performs an action the
user approved on this machine's display itself, with pynput (mouse and keyboard), at the
desktop pixel under the point the VLM gave on a grab (providers/screen_capture.py).
Blocking: run it in a worker thread. pynput is imported only here, when used: importing it
needs a display."""

from __future__ import annotations

import time
from typing import Any

from server.providers.screen_capture import Monitor

SCROLL_CLICKS = 5
WAIT_S = 1.0
KEY_ALIASES = {"escape": "esc", "return": "enter", "del": "delete", "pgup": "page_up"}


class DesktopUnavailable(RuntimeError):
    """No display to act on (or an action this mode cannot perform)."""


def probe(monitor: Monitor) -> str:
    """Whether desktop mode can act here (start-up, /health/details): pynput's backend for
    this platform loads and reaches the display. What it found, or DesktopUnavailable."""
    try:
        from pynput.mouse import Controller as Mouse

        mouse = Mouse()
        at = mouse.position  # a round trip to the display
    except Exception as e:  # ImportError without a display or backend; Xlib's own errors
        raise DesktopUnavailable(f"pynput cannot reach a display here ({e})") from None
    backend = type(mouse).__module__.rsplit("._", 1)[-1]
    return f"pynput {backend}, pointer at {at}, screen {monitor.width}x{monitor.height}"


def perform(action: dict[str, Any], monitor: Monitor) -> None:
    """Click, type, scroll, press a key or wait, as the preview says (preview_json shape)."""
    try:
        from pynput.keyboard import Controller as Keyboard
        from pynput.keyboard import Key
        from pynput.mouse import Button
        from pynput.mouse import Controller as Mouse
    except ImportError as e:  # pynput cannot reach a display
        raise DesktopUnavailable(f"pynput cannot reach a display here ({e})") from None
    kind = action.get("action_type")
    text = action.get("text") or ""
    point = action.get("coordinates") or {}
    mouse, keyboard = Mouse(), Keyboard()
    if kind in ("click", "type", "scroll") and "x" in point and "y" in point:
        mouse.position = monitor.to_screen(point["x"], point["y"])
    if kind == "click":
        mouse.click(Button.left)
    elif kind == "type":
        mouse.click(Button.left)  # focus the field first
        keyboard.type(text)
    elif kind == "scroll":
        mouse.scroll(0, SCROLL_CLICKS if text.strip().lower() == "up" else -SCROLL_CLICKS)
    elif kind == "key":
        name = text.strip().lower().replace(" ", "_")
        key = getattr(Key, KEY_ALIASES.get(name, name), None)
        if key is None and len(text) != 1:
            raise DesktopUnavailable(f"unknown key {text!r}")
        keyboard.tap(key if key is not None else text)
    elif kind == "wait":
        time.sleep(WAIT_S)
    else:
        raise DesktopUnavailable(f"unknown action type {kind!r}")
