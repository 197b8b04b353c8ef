"""Word choice of a user's turn: positive, negative, empathetic and polite expressions.

Lexicon-based and deterministic, so feedback reports can show exactly which words counted.
The lexicons live in analysis/lexicons/<lang>.json (their "about" field explains the entry
syntax). Korean is matched per eojeol on stems and endings, so 감사 covers 감사합니다 and
감사해요, and -요 / -ㅂ니다 catch the polite speech level. Both lexicons run on every text
(Korean entries only match Hangul, English entries only Latin words), so code-switched
speech is handled. Formulas: docs/analysis.md ("Word choice").
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

LEXICON_DIR = Path(__file__).with_name("lexicons")
CATEGORIES = ("empathetic", "polite", "positive", "negative")  # priority on overlap
_FLIP = {"positive": "negative", "negative": "positive"}

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LATIN = re.compile(r"[A-Za-z]")
_EN_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
_CLAUSE_SPLIT = re.compile(r"[.,;:!?…\n]+|\s[-–—]\s")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?…。！？])\s+|\n+")
_PUNCT = "\"'“”‘’«»()[]{}<>.,;:!?…~·-–—。！？、"

# Hangul compatibility jamo -> index of the same consonant as a syllable's final (jongseong).
_JONG = {
    c: i
    for i, c in enumerate(" ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ")
    if c != " "
}


@dataclass(frozen=True, slots=True)
class WordChoice:
    """Expression counts for one text; ratios are per word (eojeol for Korean)."""

    language: str | None
    words: int
    sentences: int
    positive: int
    negative: int
    empathetic: int
    polite: int
    positive_ratio: float
    negative_ratio: float
    empathetic_ratio: float
    polite_ratio: float
    sentiment: float  # (positive - negative) / (positive + negative), 0 when neither
    polite_sentence_ratio: float  # sentences in polite speech (ko: polite ending; en: marker)
    matches: dict[str, list[str]] = field(default_factory=dict)


def analyze_words(text: str, language: str | None = None) -> WordChoice:
    """Count expressions in `text`; `language` is detected from Hangul presence if None."""
    text = unicodedata.normalize("NFC", text or "").replace("’", "'").replace("‘", "'")
    lang = language or detect_language(text)
    found: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    sentences = [s for s in _SENTENCE_SPLIT.split(text) if s.strip()]
    polite_sentences = 0
    words = 0
    for sentence in sentences:
        words += sum(1 for t in sentence.split() if any(ch.isalnum() for ch in t))
        ko_hits, ko_polite_end = _match_korean(sentence, _korean())
        en_hits = _match_english(sentence, _english())
        for category, term in (*ko_hits, *en_hits):
            found[category].append(term)
        english_polite = any(c == "polite" for c, _ in en_hits)
        korean_polite = any(c == "polite" for c, _ in ko_hits)
        if ko_polite_end or (lang != "ko" and (english_polite or korean_polite)):
            polite_sentences += 1
    counts = {c: len(found[c]) for c in CATEGORIES}
    per_word = {c: (counts[c] / words if words else 0.0) for c in CATEGORIES}
    pos, neg = counts["positive"], counts["negative"]
    return WordChoice(
        language=lang,
        words=words,
        sentences=len(sentences),
        positive=pos,
        negative=neg,
        empathetic=counts["empathetic"],
        polite=counts["polite"],
        positive_ratio=per_word["positive"],
        negative_ratio=per_word["negative"],
        empathetic_ratio=per_word["empathetic"],
        polite_ratio=per_word["polite"],
        sentiment=(pos - neg) / (pos + neg) if pos + neg else 0.0,
        polite_sentence_ratio=polite_sentences / len(sentences) if sentences else 0.0,
        matches={c: v for c, v in found.items() if v},
    )


def detect_language(text: str) -> str | None:
    """'ko' when the text has any Hangul, 'en' when it has Latin letters, else None."""
    if _HANGUL.search(text):
        return "ko"
    if _LATIN.search(text):
        return "en"
    return None


# --------------------------------------------------------------------------- lexicons


@dataclass(frozen=True)
class _KoLexicon:
    phrases: dict[str, list[tuple[str, ...]]]  # category -> entries, longest first
    endings: dict[str, list[str]]
    infixes: dict[str, list[str]]
    regexes: dict[str, list[re.Pattern[str]]]
    exclude: dict[str, frozenset[str]]
    neg_before: frozenset[str]
    neg_prefix: tuple[str, ...]
    neg_after_endings: tuple[str, ...]
    neg_after: tuple[str, ...]


@dataclass(frozen=True)
class _EnLexicon:
    entries: dict[str, list[tuple[tuple[str, ...], ...]]]  # category -> alternatives/token
    negators: tuple[tuple[str, ...], ...]
    window: int


def load_lexicon(language: str) -> dict[str, Any]:
    """The raw lexicon JSON for a language (for reports and tests)."""
    path = LEXICON_DIR / f"{language}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [c for c in CATEGORIES if c not in data.get("categories", {})]
    if missing:
        raise ValueError(f"{path} lacks categories {missing}")
    return data


@lru_cache(maxsize=1)
def _korean() -> _KoLexicon:
    data = load_lexicon("ko")
    phrases: dict[str, list[tuple[str, ...]]] = {}
    endings: dict[str, list[str]] = {}
    infixes: dict[str, list[str]] = {}
    regexes: dict[str, list[re.Pattern[str]]] = {}
    for category in CATEGORIES:
        entries = data["categories"][category]
        phrases[category] = sorted(
            (tuple(e.split()) for e in entries if not e.startswith(("-", "~", "re:"))),
            key=lambda p: (-len(p), -len("".join(p))),
        )
        endings[category] = sorted((e[1:] for e in entries if e.startswith("-")), key=len)[::-1]
        infixes[category] = [e[1:] for e in entries if e.startswith("~")]
        regexes[category] = [re.compile(e[3:]) for e in entries if e.startswith("re:")]
    neg = data["negators"]
    return _KoLexicon(
        phrases=phrases,
        endings=endings,
        infixes=infixes,
        regexes=regexes,
        exclude={k: frozenset(v) for k, v in data.get("exclude", {}).items()},
        neg_before=frozenset(neg["before"]),
        neg_prefix=tuple(neg["prefix"]),
        neg_after_endings=tuple(neg["after_endings"]),
        neg_after=tuple(neg["after"]),
    )


@lru_cache(maxsize=1)
def _english() -> _EnLexicon:
    data = load_lexicon("en")

    def parse(entry: str) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(tok.split("|")) for tok in entry.lower().split())

    entries = {
        c: sorted((parse(e) for e in data["categories"][c]), key=lambda p: -len(p))
        for c in CATEGORIES
    }
    negators = tuple(tuple(n.split("|")) for n in data["negators"])
    return _EnLexicon(entries, negators, int(data.get("negation_window", 3)))


# --------------------------------------------------------------------------- Korean matching


def _strip(token: str) -> str:
    return token.strip(_PUNCT)


def _ends_with(word: str, ending: str) -> bool:
    """Suffix test where a leading jamo must be the final consonant of the syllable before."""
    if ending and ending[0] in _JONG:
        rest = ending[1:]
        if not word.endswith(rest) or len(word) <= len(rest):
            return False
        syllable = word[len(word) - len(rest) - 1]
        if not "\uac00" <= syllable <= "\ud7a3":
            return False
        return (ord(syllable) - 0xAC00) % 28 == _JONG[ending[0]]
    return word.endswith(ending) and len(word) > 0


def _match_korean(sentence: str, lex: _KoLexicon) -> tuple[list[tuple[str, str]], bool]:
    """(category, matched text) pairs, and whether the sentence ends in a polite ending."""
    raw = [t for t in sentence.split() if _HANGUL.search(t)]
    words = [_strip(t) for t in raw]
    n = len(words)
    used = [False] * n
    polite_at = [False] * n
    hits: list[tuple[str, str]] = []
    for category in CATEGORIES:
        for i in range(n):
            if used[i] or not words[i]:
                continue
            span = _korean_match_at(words, raw, used, i, category, lex)
            if span is None:
                continue
            length, negated = span
            a, b = i, i + length
            if negated:  # show the negator too: "안 좋아", "좋지 않아"
                a -= int(i > 0 and words[i - 1] in lex.neg_before)
                b += int(_negated_after(words, b - 1, lex))
            label = " ".join(words[a:b])
            final = _FLIP[category] if negated and category in _FLIP else category
            hits.append((final, label))
            for k in range(i, i + length):
                used[k] = True
                if category == "polite":
                    polite_at[k] = True
    excluded = lex.exclude.get("polite", frozenset())
    for i, w in enumerate(words):
        if polite_at[i] or not w or w in excluded:
            continue
        ending = next((e for e in lex.endings["polite"] if _ends_with(w, e)), None)
        if ending is not None:
            hits.append(("polite", f"-{ending} ({w})"))
            polite_at[i] = True
    last = next((i for i in range(n - 1, -1, -1) if words[i]), None)
    ends_polite = (
        last is not None
        and words[last] not in excluded
        and any(_ends_with(words[last], e) for e in lex.endings["polite"])
    )
    return hits, ends_polite


def _korean_match_at(
    words: list[str],
    raw: list[str],
    used: list[bool],
    i: int,
    category: str,
    lex: _KoLexicon,
) -> tuple[int, bool] | None:
    """Match length in eojeol at position i, and whether a negator flips it."""
    w = words[i]
    for phrase in lex.phrases[category]:
        k = len(phrase)
        if i + k > len(words):
            continue
        if any(used[i : i + k]):
            continue
        if all(words[i + j] == phrase[j] for j in range(k - 1)) and words[i + k - 1].startswith(
            phrase[-1]
        ):
            return k, _korean_negated(words, i, i + k - 1, lex)
    for phrase in lex.phrases[category]:  # 안좋아, 못했어: negator glued to a one-word stem
        if len(phrase) == 1 and category in _FLIP:
            for p in lex.neg_prefix:
                if w.startswith(p) and w[len(p) :].startswith(phrase[0]):
                    return 1, not _korean_negated(words, i, i, lex)
    if any(x in w for x in lex.infixes[category]):
        return 1, _korean_negated(words, i, i, lex)
    if any(r.search(raw[i]) for r in lex.regexes[category]):
        return 1, False
    return None


def _korean_negated(words: list[str], first: int, last: int, lex: _KoLexicon) -> bool:
    """안/못 before the match, or 지 않/지 못/지 말 after it (glued or spaced)."""
    before = first > 0 and words[first - 1] in lex.neg_before
    w = words[last]
    glued = any(f"{e}{a}" in w for e in lex.neg_after_endings for a in lex.neg_after)
    return before or glued or _negated_after(words, last, lex)


def _negated_after(words: list[str], last: int, lex: _KoLexicon) -> bool:
    return (
        words[last].endswith(lex.neg_after_endings)
        and last + 1 < len(words)
        and words[last + 1].startswith(lex.neg_after)
    )


# --------------------------------------------------------------------------- English matching


def _tok_match(token: str, alternatives: tuple[str, ...]) -> bool:
    for alt in alternatives:
        if alt.endswith("*") and token.startswith(alt[:-1]):
            return True
        if alt.startswith("*") and token.endswith(alt[1:]):
            return True
        if token == alt:
            return True
    return False


def _match_english(sentence: str, lex: _EnLexicon) -> list[tuple[str, str]]:
    hits: list[tuple[str, str]] = []
    for clause in _CLAUSE_SPLIT.split(sentence.lower()):
        tokens = _EN_TOKEN.findall(clause)
        used = [False] * len(tokens)
        for category in CATEGORIES:
            for i in range(len(tokens)):
                if used[i]:
                    continue
                for entry in lex.entries[category]:
                    k = len(entry)
                    if i + k > len(tokens) or any(used[i : i + k]):
                        continue
                    if all(_tok_match(tokens[i + j], entry[j]) for j in range(k)):
                        final, start = category, i
                        negator = _english_negator(tokens, i, lex) if category in _FLIP else None
                        if negator is not None:  # "not good" counts as negative
                            final, start = _FLIP[category], negator
                        hits.append((final, " ".join(tokens[start : i + k])))
                        for j in range(i, i + k):
                            used[j] = True
                        break
    return hits


def _english_negator(tokens: list[str], i: int, lex: _EnLexicon) -> int | None:
    """Index of a negator within the window before token i, if any."""
    for j in range(max(0, i - lex.window), i):
        if any(_tok_match(tokens[j], n) for n in lex.negators):
            return j
    return None
