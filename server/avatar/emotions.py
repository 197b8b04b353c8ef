"""Per-sentence emotion marks: the persona writes a mark (a tag like ``[happy]`` or an emoji
its persona file names) at the start of each sentence; the marks are cut out of the reply
stream here, so they never reach displayed text, stored history or speech, and become the
sentence's ``emotion`` and an expression target on the avatar's keyframes.

The emotions are the VRM expression presets, so an emotion is also the expression a VRM
avatar (desktop-homunculus, the studio) shows: happy, sad, angry, surprised, relaxed, neutral.

Marks are cut robustly from a token stream: a tag or an emoji split across chunks is held
back until it is complete (or proves to be ordinary text), so the result never depends on
how the model's stream was chunked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

EMOTIONS = ("happy", "sad", "angry", "surprised", "relaxed", "neutral")
# Tags a model writes unprompted for the same feelings (and VRM 0.x's preset names).
SYNONYMS = {
    "joy": "happy", "joyful": "happy", "glad": "happy", "excited": "happy", "cheerful": "happy",
    "laughing": "happy", "fun": "happy", "delighted": "happy", "smile": "happy",
    "sorrow": "sad", "unhappy": "sad", "upset": "sad", "crying": "sad", "disappointed": "sad",
    "mad": "angry", "annoyed": "angry", "frustrated": "angry", "angrily": "angry",
    "surprise": "surprised", "shocked": "surprised", "amazed": "surprised", "wow": "surprised",
    "calm": "relaxed", "content": "relaxed", "gentle": "relaxed", "warm": "relaxed",
    "relieved": "relaxed", "soft": "relaxed",
    "normal": "neutral", "thinking": "neutral", "curious": "neutral", "thoughtful": "neutral",
    # Korean personas' own words for the same tags
    "기쁨": "happy", "행복": "happy", "신남": "happy", "웃음": "happy",
    "슬픔": "sad", "우울": "sad", "화남": "angry", "분노": "angry", "짜증": "angry",
    "놀람": "surprised", "편안": "relaxed", "평온": "relaxed", "차분": "relaxed",
    "중립": "neutral", "보통": "neutral", "생각": "neutral",
}  # fmt: skip
# The marks a persona uses when its file names none.
DEFAULT_MARKS = {e: f"[{e}]" for e in EMOTIONS}
MAX_TAG = 24  # "[...]" longer than this is ordinary text
_TAG = re.compile(r"\[([A-Za-z가-힣][A-Za-z가-힣_-]{0,20})\]")
_TAG_PREFIX = re.compile(r"\[[A-Za-z가-힣][A-Za-z가-힣_-]{0,20}\Z|\[\Z")
_BLANK = " \t\r\f\v"
_ENDS = frozenset(".!?…~。！？\n")  # what a sentence start follows
_VS16 = "\ufe0f"  # the emoji presentation selector: "☺️" and "☺" are one mark


@dataclass(frozen=True)
class Mark:
    """A mark cut from the text: ``emotion`` is None for a tag we do not know (cut anyway,
    since a tag is never meant to be read out)."""

    emotion: str | None


def emotion_of_tag(word: str) -> str | None:
    w = word.lower()
    return w if w in EMOTIONS else SYNONYMS.get(w)


def marks_prompt(marks: Mapping[str, str]) -> str:
    """The line of the system prompt that teaches the persona its marks."""
    shown = ", ".join(f"{m} {e}" for e, m in marks.items())
    return (
        "Start every sentence with one mark of the feeling it carries, from this list: "
        f"{shown}. The marks drive your face; they are never spoken or explained, and you "
        "use no other emoji."
    )


class MarkFilter:
    """Cuts marks from one reply's text stream: ``push`` a delta, get back the text and
    marks that are certain now, in order; ``flush`` at the end of the reply."""

    def __init__(self, marks: Mapping[str, str] | None = None) -> None:
        persona = dict(marks or DEFAULT_MARKS)
        # persona marks (emoji or tags) by their text; the generic [tag] form always works
        self._marks = {m.replace(_VS16, ""): e for e, m in persona.items() if m}
        # where a mark may start: the text between two of these goes out whole (the hot
        # path, per streamed token, need not look at every character)
        starts = "".join(sorted({m[0] for m in self._marks if m} | {"["}))
        self._start = re.compile(f"[{re.escape(starts)}]")
        self._buf = ""
        self._last = ""  # the last character given out (a space after a mark is dropped)
        self._seen = ""  # the last one that is not a space or tab (newlines count)
        self._after_mark = False

    def push(self, delta: str) -> list[str | Mark]:
        self._buf += delta
        return self._drain(final=False)

    def flush(self) -> list[str | Mark]:
        out = self._drain(final=True)
        self._buf, self._last, self._seen, self._after_mark = "", "", "", False
        return out

    def _drain(self, final: bool) -> list[str | Mark]:
        out: list[str | Mark] = []
        text: list[str] = []
        buf, i, n = self._buf, 0, len(self._buf)
        while i < n:
            if not self._after_mark and not self._start.match(buf, i):
                nxt = self._start.search(buf, i)
                j = n if nxt is None else nxt.start()
                text.append(buf[i:j])
                self._last = buf[j - 1]
                self._seen = buf[i:j].rstrip(_BLANK)[-1:] or self._seen
                i = j
                continue
            found = self._mark_at(buf, i, final)
            if found is None:  # a mark may start here: wait for more text
                break
            size, mark = found
            if mark is not None:
                if text:
                    out.append("".join(text))
                    text = []
                out.append(mark)
                self._after_mark = True
                i += size
                continue
            ch = buf[i]
            i += 1
            if self._after_mark:
                if ch == _VS16:
                    continue
                if ch.isspace() and (not self._last or self._last.isspace()):
                    continue
                self._after_mark = False
            text.append(ch)
            self._last = ch
            if ch not in _BLANK:
                self._seen = ch
        self._buf = buf[i:]
        if text:
            out.append("".join(text))
        return out

    def _mark_at(self, buf: str, i: int, final: bool) -> tuple[int, Mark | None] | None:
        """(length, mark) of a mark at ``i``; (1, None) for an ordinary character; None
        when it cannot be decided before more text arrives."""
        rest = buf[i:]
        for m, emotion in self._marks.items():
            if rest.startswith(m):
                return len(m), Mark(emotion)
            if not final and m.startswith(rest):
                return None
        if rest[0] == "[":
            if (tag := _TAG.match(rest)) is not None:
                emotion = emotion_of_tag(tag.group(1))
                # a tag we do not know is a mark only where marks go, at a sentence start
                # ("[whispers] Come here."); inside one it is text ("press [Enter] now")
                if emotion is not None or not self._seen or self._seen in _ENDS:
                    return tag.end(), Mark(emotion)
                return 1, None
            if not final and len(rest) < MAX_TAG and _TAG_PREFIX.match(rest):
                return None
        return 1, None


def strip_marks(text: str, marks: Mapping[str, str] | None = None) -> str:
    """``text`` without its marks (a whole reply: an LLM line said outside a turn)."""
    f = MarkFilter(marks)
    pieces = f.push(text) + f.flush()
    return "".join(p for p in pieces if isinstance(p, str))


def expression(emotion: str | None) -> dict[str, float]:
    """The VRM expression targets that show ``emotion`` (none when there is no mark)."""
    return {emotion: 1.0} if emotion in EMOTIONS else {}
