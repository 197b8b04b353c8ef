"""Word lists per language (``server/turns/lang/<lang>.json``) and the rules that read them:
is a transcript a backchannel ("mm-hm", "응"), a request to stop, a real new turn, or the
companion's own words coming back; does its text sound finished?

Transcripts are normalised before matching: lower case, bracketed sound labels ("[cough]",
"(laughs)") removed, hyphens joined ("mm-hmm" -> "mmhmm"), other punctuation dropped.
Unknown or undetected languages are checked against every list."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

LANG_DIR = Path(__file__).with_name("lang")
_BRACKETS = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*")
_NOT_WORD = re.compile(r"[^\w\s']+")

Kind = Literal["none", "backchannel", "stop", "turn"]
MIN_TURN_WORDS = 2
UNMARKED = 0.6  # words with no cue either way (Whisper left out the full stop): lean finished


@dataclass(frozen=True)
class LanguageRules:
    language: str
    backchannels: frozenset[str]
    stop_phrases: tuple[tuple[str, ...], ...]
    incomplete_words: frozenset[str]
    incomplete_suffixes: tuple[str, ...]
    fillers: frozenset[str]

    @classmethod
    def load(cls, path: Path) -> LanguageRules:
        d = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            language=d["language"],
            backchannels=frozenset(" ".join(words(b)) for b in d["backchannels"]),
            stop_phrases=tuple(tuple(words(s)) for s in d["stop_phrases"]),
            incomplete_words=frozenset(d["incomplete_words"]),
            incomplete_suffixes=tuple(d.get("incomplete_suffixes", [])),
            fillers=frozenset(d.get("fillers", [])),
        )


@cache
def all_rules() -> dict[str, LanguageRules]:
    return {r.language: r for r in (LanguageRules.load(p) for p in sorted(LANG_DIR.glob("*.json")))}


def rules_for(language: str | None) -> list[LanguageRules]:
    """The rules of ``language`` ("ko", "ko-KR"), or all of them when it is unknown."""
    table = all_rules()
    code = (language or "").lower().split("-")[0]
    return [table[code]] if code in table else list(table.values())


def words(text: str) -> list[str]:
    """Normalised tokens of a transcript."""
    text = _BRACKETS.sub(" ", text.lower()).replace("-", "").replace("’", "'")
    return _NOT_WORD.sub(" ", text).split()


def _contains(tokens: list[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(tuple(tokens[i : i + n]) == phrase for i in range(len(tokens) - n + 1))


def classify(text: str, language: str | None) -> Kind:
    """What speech over a playing reply means.

    ``stop``: a stop phrase anywhere ("wait", "잠깐만"). ``backchannel``: every word group is
    an acknowledgement, or fewer than ``MIN_TURN_WORDS`` other words (a lone word over a reply
    is an acknowledgement or a mishearing of one: Whisper hears "mm-hm" as "them"). ``none``:
    no words (a cough, a knock). ``turn``: anything else."""
    tokens = words(text)
    if not tokens:
        return "none"
    langs = rules_for(language)
    if any(_contains(tokens, s) for r in langs for s in r.stop_phrases):
        return "stop"
    if _only_backchannels(tokens, langs):
        return "backchannel"
    other = [t for t in tokens if not any(t in r.backchannels for r in langs)]
    return "turn" if len(other) >= MIN_TURN_WORDS else "backchannel"


def _only_backchannels(tokens: list[str], langs: list[LanguageRules]) -> bool:
    """The tokens split into known acknowledgements (greedy, longest first, up to 3 words)."""
    i = 0
    while i < len(tokens):
        for n in (3, 2, 1):
            if any(" ".join(tokens[i : i + n]) in r.backchannels for r in langs):
                i += n
                break
        else:
            return False
    return True


def text_completeness(text: str, language: str | None) -> float | None:
    """1.0 when the words sound finished, 0.0 when they clearly continue ("... and", "저는",
    "so um", a trailing comma), ``UNMARKED`` for words with neither cue, None for no words."""
    t = _BRACKETS.sub(" ", text).strip()
    if not t:
        return None
    if t.endswith(("...", "…", ",", "-", "—", ":", ";")):
        return 0.0
    if t[-1] in "?!？！":
        return 1.0
    tokens = words(t)
    if tokens:
        last, pair = tokens[-1], " ".join(tokens[-2:])
        for r in rules_for(language):
            if last in r.incomplete_words or last in r.fillers or pair in r.fillers:
                return 0.0
            if r.incomplete_suffixes and len(last) > 1 and last.endswith(r.incomplete_suffixes):
                return 0.0
    if t[-1] in ".。":
        return 1.0
    return UNMARKED if tokens else None


def echo_overlap(text: str, spoken: str) -> float:
    """Share of the transcript's words that are words the companion is saying: 1.0 for its
    own voice coming back through the speakers, low for the user's own words."""
    heard = words(text)
    if not heard:
        return 0.0
    said = set(words(spoken))
    return sum(w in said for w in heard) / len(heard)
