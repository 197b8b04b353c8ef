"""Word lists per language (``server/turns/lang/<lang>.json``) and the rules that read them:
is a transcript a backchannel ("mm-hm", "응"), a request to stop, a real new turn, or the
companion's own words coming back; does its text sound finished?

Transcripts are normalised before matching: lower case, bracketed sound labels ("[cough]",
"(laughs)") removed, hyphens joined ("mm-hmm" -> "mmhmm"), dotted letters joined (Whisper
spells a hummed "mm-hm" "M.A.M.F.M": one token "mamfm"), other punctuation dropped.
Unknown or undetected languages are checked against every list.

Over a reply, besides acknowledgements, the words Whisper commonly makes up for a short
sound ("Thank you.", "you", "Bye.": ``noise`` in the lists) are no turn either. Languages
that glue endings onto words (Korean: "그만" + "해요") list those endings
(``stop_endings``): a word that is a stop word plus one of them is that stop word.
``stop_heard_as`` are stop words as Whisper base mishears them (Korean: a word-initial
ㅈ heard as ㅊ, "잠깐만요" as "참깐만요", "잠깐." as "참가."): listed, not matched by
spelling distance, which would also stop a reply at real words one letter apart ("그만큼" is
not "그만해")."""

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
_DOTTED = re.compile(r"\b[^\W\d_](?:\.\s?[^\W\d_]\b)+\.?")  # "M.A.M.F.M", "U. S. A."

Kind = Literal["none", "backchannel", "stop", "turn"]
MIN_TURN_WORDS = 2
UNMARKED = 0.6  # words with no cue either way (Whisper left out the full stop): lean finished
# The same word this many times at the end: Whisper's decoder looping on audio it cannot
# make out (a sentence's first half in a short encoder window), not words that finish
LOOP_WORDS = 4


@dataclass(frozen=True)
class LanguageRules:
    language: str
    backchannels: frozenset[str]
    stop_phrases: tuple[tuple[str, ...], ...]
    incomplete_words: frozenset[str]
    incomplete_suffixes: tuple[str, ...]
    fillers: frozenset[str]
    noise: frozenset[str] = frozenset()
    stop_endings: tuple[str, ...] = ()
    never_final: frozenset[str] = frozenset()
    holds: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: Path) -> LanguageRules:
        d = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            language=d["language"],
            backchannels=frozenset(" ".join(words(b)) for b in d["backchannels"]),
            stop_phrases=tuple(
                tuple(words(s)) for s in d["stop_phrases"] + d.get("stop_heard_as", [])
            ),
            incomplete_words=frozenset(d["incomplete_words"]),
            incomplete_suffixes=tuple(d.get("incomplete_suffixes", [])),
            fillers=frozenset(d.get("fillers", [])),
            noise=frozenset(" ".join(words(n)) for n in d.get("noise", [])),
            stop_endings=tuple(d.get("stop_endings", [])),
            never_final=frozenset(d.get("never_final", [])),
            holds=frozenset(" ".join(words(h)) for h in d.get("holds", [])),
        )

    def is_stop(self, tokens: list[str]) -> bool:
        """A stop phrase anywhere in ``tokens`` (its last word may carry a stop ending)."""
        for phrase in self.stop_phrases:
            n = len(phrase)
            for i in range(len(tokens) - n + 1):
                if tuple(tokens[i : i + n - 1]) == phrase[:-1] and self._stop_word(
                    tokens[i + n - 1], phrase[-1]
                ):
                    return True
        return False

    def ends_with_stop(self, tokens: list[str]) -> bool:
        """``tokens`` end with a stop phrase ("... hold on")."""
        return any(
            len(tokens) >= len(p)
            and tuple(tokens[len(tokens) - len(p) : -1]) == p[:-1]
            and self._stop_word(tokens[-1], p[-1])
            for p in self.stop_phrases
        )

    def only_holds(self, tokens: list[str]) -> bool:
        """Every word is a hesitation, a filler, a stop phrase or a request to hold on
        ("Wait.", "Um, so", "Hold on.", "잠깐만요"): the speaker is keeping the floor."""
        i = 0
        while i < len(tokens):
            for n in (3, 2, 1):
                group = tokens[i : i + n]
                if len(group) == n and (
                    " ".join(group) in self.holds
                    or " ".join(group) in self.fillers
                    or any(self._is_phrase(group, p) for p in self.stop_phrases)
                ):
                    i += n
                    break
            else:
                return False
        return bool(tokens)

    def _is_phrase(self, group: list[str], phrase: tuple[str, ...]) -> bool:
        return (
            len(group) == len(phrase)
            and tuple(group[:-1]) == phrase[:-1]
            and self._stop_word(group[-1], phrase[-1])
        )

    def _stop_word(self, token: str, word: str) -> bool:
        return token == word or (token.startswith(word) and token[len(word) :] in self.stop_endings)

    def acknowledges(self, group: str) -> bool:
        """An acknowledgement, or a sound Whisper makes words of (``noise``)."""
        return group in self.backchannels or group in self.noise


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
    text = _DOTTED.sub(lambda m: re.sub(r"[.\s]", "", m.group()), text)
    return _NOT_WORD.sub(" ", text).split()


def classify(text: str, language: str | None) -> Kind:
    """What speech over a playing reply means.

    ``stop``: a stop phrase anywhere ("wait", "잠깐만", "그만해요"). ``backchannel``: every word
    group is an acknowledgement (or a sound Whisper made words of: "Thank you."), the other
    words are one hummed word or pair over and over (``_hummed``), or there are fewer than
    ``MIN_TURN_WORDS`` other words (a lone word over a reply is an acknowledgement or a
    mishearing of one: Whisper hears "mm-hm" as "them"). ``none``: no words (a cough, a
    knock). ``turn``: anything else."""
    tokens = words(text)
    if not tokens:
        return "none"
    langs = rules_for(language)
    if any(r.is_stop(tokens) for r in langs):
        return "stop"
    others = _other_tokens(tokens, langs)
    if _only_backchannels(tokens, langs) or _hummed(others):
        return "backchannel"
    return "turn" if len(others) >= MIN_TURN_WORDS else "backchannel"


def acknowledgements_only(text: str, language: str | None) -> bool:
    """Every word group of the transcript is a known acknowledgement ("Yeah.", "Uh-huh.")."""
    tokens = words(text)
    return bool(tokens) and _only_backchannels(tokens, rules_for(language))


def other_words(text: str, language: str | None) -> int:
    """How many of the transcript's words are not acknowledgements (nor sounds: a lone
    Latin letter other than "a" and "i" is Whisper spelling a hum, "M M Z M")."""
    return _others(words(text), rules_for(language))


def _others(tokens: list[str], langs: list[LanguageRules]) -> int:
    return len(_other_tokens(tokens, langs))


def _other_tokens(tokens: list[str], langs: list[LanguageRules]) -> list[str]:
    return [
        t
        for t in tokens
        if not (len(t) == 1 and t.isascii() and t not in "ai")
        and not any(r.acknowledges(t) for r in langs)
    ]


def _hummed(tokens: list[str]) -> bool:
    """The same one or two words over and over, each with the hummed "m" in it ("Emamson
    Emamson Emamson", "Emams them Emams them"): Whisper making one made-up word of each
    "mm-hm" in a run of them, sure of it because it repeats. Words said again without an
    "m" are words ("No, no, no.", "Hello? Hello?")."""
    for unit in (1, 2):
        if (
            len(tokens) > unit
            and all(tokens[i] == tokens[i - unit] for i in range(unit, len(tokens)))
            and all("m" in t for t in tokens[:unit])
        ):
            return True
    return False


def _only_backchannels(tokens: list[str], langs: list[LanguageRules]) -> bool:
    """The tokens split into known acknowledgements (greedy, longest first, up to 3 words)."""
    i = 0
    while i < len(tokens):
        for n in (3, 2, 1):
            if any(r.acknowledges(" ".join(tokens[i : i + n])) for r in langs):
                i += n
                break
        else:
            return False
    return True


def text_completeness(text: str, language: str | None) -> float | None:
    """1.0 when the words sound finished, 0.0 when they clearly continue ("... and", "저는",
    "so um", a trailing comma), ``UNMARKED`` for words with neither cue, None for no words.

    Words that only hold the floor ("Wait.", "Hold on.", "Um.", "So?", "잠깐만요": hesitations,
    fillers, stop phrases and ``holds``) are no finished turn, whatever their punctuation:
    the rest is coming ("Wait, [pause] stop please." is one turn; Whisper writes the comma
    pause as a full stop when it hears "Wait" alone). With other words, a stop phrase at the
    end finishes them ("Can you hold on.", "Wait, stop please.").

    A question mark ends the words unless their last word cannot end a question
    (``never_final``: "and", "the", "to"): Whisper puts "?" on a question's first half ("how
    long it takes to get to?"); "Where are you from?" still ends."""
    t = _BRACKETS.sub(" ", text).strip()
    if not t:
        return None
    if t.endswith(("...", "…", ",", "-", "—", ":", ";")):
        return 0.0
    tokens = words(t)
    langs = rules_for(language)
    if tokens and any(r.only_holds(tokens) for r in langs):
        return 0.0
    if len(tokens) >= LOOP_WORDS and len(set(tokens[-LOOP_WORDS:])) == 1:
        return 0.0  # Whisper looping ("... distant distant distant distant"): a guess
    last = tokens[-1] if tokens else ""
    if t[-1] in "?!？！":
        return 0.0 if any(last in r.never_final for r in langs) else 1.0
    if tokens:
        if any(r.ends_with_stop(tokens) for r in langs):
            return 1.0  # "Can you hold on.": a request that is complete as said
        pair = " ".join(tokens[-2:])
        for r in langs:
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
