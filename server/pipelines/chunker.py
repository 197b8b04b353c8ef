"""Cut streamed LLM text into chunks that are worth synthesizing on their own.

TTS sounds best on whole sentences, but waiting for the whole reply costs latency. So the
first chunk is cut early (at a clause boundary once ``first_min_chars`` arrived), later ones
at sentence ends once they hold ``min_chars``, and anything longer than ``max_chars`` is
force-cut.

Rules (positions are in the pending text, which never starts with whitespace):

* Sentence end: a run of ``. ! ? … ~ 。 ！ ？`` plus closing quotes/brackets, followed by
  whitespace; full-width ``。！？`` need no whitespace; a Korean syllable + ``.!?…`` +
  Korean syllable also counts (``했어요.그리고``). A newline is a sentence end too.
  A single ``.`` is not a sentence end after an abbreviation (``Mr.``, ``e.g.``, ``etc.``),
  an initial (``J.``) or a list number at the start of a line (``1.``). Numbers (``3.5``)
  and URLs (``example.com/a?b``) never split because their dots have no whitespace after.
* Clause boundary: ``, ; :`` followed by whitespace, or full-width ``、 ， ； ：``. After a
  Korean word, a comma only counts when the word ends in a connective ending
  (``-는데,`` ``-지만,`` ``-고,`` ``-서,`` ...), not after a listed noun (``사과,``).
* First chunk: the first sentence end, or the first clause boundary once the chunk holds
  ``first_min_chars`` characters, or (``first_words`` > 0) the first word boundary once it
  holds ``first_words`` words, whichever comes first. The reply's first audio then waits for
  a few words instead of a whole first sentence (about 80 ms sooner at 20 ms per token for
  an eight-word sentence); the sentence's rest joins the next chunk.
* Later chunks: the first sentence end where the chunk holds ``min_chars`` characters
  (shorter sentences are merged with what follows).
* Force: if no such cut exists within ``max_chars``, cut at the last sentence end, else the
  last clause boundary (any comma), else the last whitespace, else hard at ``max_chars``.
* A chunk must contain a letter or digit (``"..."`` alone is never a chunk), except the
  tail returned by :meth:`SentenceChunker.flush`; use :func:`speakable` to skip it.

Text preservation: every emitted chunk is a contiguous slice of the input with only its
leading and trailing whitespace removed, and the slices tile the input. So walking the
input, each chunk is found right after some (possibly empty) whitespace, and only
whitespace remains after the last one. Decisions depend only on the text, never on how it
was split into deltas (each cut needs at most one character of lookahead).
"""

from __future__ import annotations

import re

SENTENCE_END = frozenset(".!?…~～。！？")
FULL_WIDTH_END = frozenset("。！？")
CLOSERS = frozenset("\"'”’)]}」』》〉›»")
CLAUSE_ASCII = frozenset(",;:")
CLAUSE_FULL_WIDTH = frozenset("、，；：")
OPENERS = "\"'“‘([{「『《〈‹«"

ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "fig",
        "no", "nos", "vol", "approx", "inc", "ltd", "co", "corp", "dept", "est", "gen",
        "gov", "rev", "sgt", "capt", "lt", "col", "jan", "feb", "mar", "apr", "jun",
        "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon", "tue", "wed", "thu",
        "fri", "sat", "sun", "ave", "blvd", "min", "max", "cf", "al", "ca", "op",
    }
)  # fmt: skip
DOTTED_ABBREVIATION = re.compile(r"(?:[a-z]\.)+[a-z]")  # e.g / i.e / a.m / u.s (final dot cut)

# Korean connective endings: a comma after these closes a clause, after a noun it does not.
KOREAN_CONNECTIVES = (
    "는데", "은데", "인데", "던데", "지만", "니까", "으니", "는지", "든지", "거나",
    "다가", "도록", "려고", "으며", "면서", "어서", "아서", "해서", "여서", "라서",
    "래서", "러서", "런데", "고", "서", "면", "며", "데", "만", "니", "나", "게",
    "지", "요", "죠", "도",
)  # fmt: skip

_SENTENCE, _CLAUSE, _WEAK_CLAUSE, _SPACE = "sentence", "clause", "weak_clause", "space"


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3"


def speakable(text: str) -> bool:
    """True when ``text`` has something a TTS engine can say (a letter or digit)."""
    return any(ch.isalnum() for ch in text)


class SentenceChunker:
    """Stateful splitter for one streamed reply; :meth:`flush` ends it and resets."""

    def __init__(
        self,
        first_min_chars: int = 20,
        min_chars: int = 40,
        max_chars: int = 220,
        *,
        first_words: int = 0,
    ):
        if not 0 < first_min_chars <= max_chars or not 0 < min_chars <= max_chars:
            raise ValueError("need 0 < first_min_chars, min_chars <= max_chars")
        if first_words < 0:
            raise ValueError("need first_words >= 0 (0: no word-boundary first chunk)")
        self.first_min_chars = first_min_chars
        self.first_words = first_words
        self.min_chars = min_chars
        self.max_chars = max_chars
        self._buf = ""
        self._first = True

    def push(self, delta: str) -> list[str]:
        """Add a text delta; return the chunks that are complete now."""
        self._buf += delta
        return self._drain()

    def flush(self) -> list[str]:
        """End of the reply: return every remaining chunk and reset for the next reply."""
        out = self._drain()
        rest = self._buf.strip()
        if rest:
            out.append(rest)
        self._buf = ""
        self._first = True
        return out

    def _drain(self) -> list[str]:
        out: list[str] = []
        self._buf = self._buf.lstrip()
        while (cut := self._next_cut(self._buf)) is not None:
            chunk = self._buf[:cut].strip()
            self._buf = self._buf[cut:].lstrip()
            if chunk:
                out.append(chunk)
                self._first = False
        return out

    def _next_cut(self, text: str) -> int | None:
        """Where to cut ``text`` now, or None to wait for more text."""
        limit = self.max_chars
        first_alnum = next((i for i, ch in enumerate(text) if ch.isalnum()), len(text))
        last: dict[str, int] = {}
        for pos, kind in _candidates(text):
            if pos > limit:
                break
            if pos <= first_alnum:
                continue  # nothing to say before this cut
            size = pos
            while text[size - 1].isspace():
                size -= 1
            if kind == _SENTENCE and (self._first or size >= self.min_chars):
                return pos
            if kind == _CLAUSE and self._first and size >= self.first_min_chars:
                return pos
            if (
                kind == _SPACE
                and self._first
                and self.first_words
                and len(text[:size].split()) >= self.first_words
            ):
                return pos
            last[kind] = pos
        if len(text) <= limit:
            return None  # everything within max_chars is decided only once more text arrives
        for kind in (_SENTENCE, _CLAUSE, _WEAK_CLAUSE, _SPACE):
            if kind in last:
                return last[kind]
        return limit


def _candidates(text: str):
    """Yield (cut position, kind) in order; stop where the next decision needs lookahead."""
    n = len(text)
    i = 0
    while i < n:
        ch = text[i]
        if ch == "\n":
            yield i, _SENTENCE
            i += 1
        elif ch in SENTENCE_END:
            j = i
            while j < n and text[j] in SENTENCE_END:
                j += 1
            k = j
            while k < n and text[k] in CLOSERS:
                k += 1
            if k >= n:
                return  # the run or its closers may continue: wait
            run = text[i:j]
            nxt = text[k]
            if any(c in FULL_WIDTH_END for c in run):
                yield k, _SENTENCE
            elif nxt.isspace():
                if run == "." and _dot_is_not_an_end(text, i):
                    pass
                elif run == "~" and (i == 0 or text[i - 1].isspace()):
                    pass  # a free-standing tilde ("about ~ 5") ends nothing
                else:
                    yield k, _SENTENCE
            elif i > 0 and _is_hangul(text[i - 1]) and _is_hangul(nxt) and run != "~":
                yield k, _SENTENCE
            i = k
        elif ch in CLAUSE_FULL_WIDTH:
            yield i + 1, _CLAUSE
            i += 1
        elif ch in CLAUSE_ASCII:
            if i + 1 >= n:
                return
            if text[i + 1].isspace():
                yield i + 1, _clause_kind(text, i)
            i += 1
        elif ch.isspace():
            yield i, _SPACE
            i += 1
        else:
            i += 1


def _token_before(text: str, end: int) -> tuple[str, int]:
    """The whitespace-delimited token ending at ``end`` and its start index."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end], start


def _dot_is_not_an_end(text: str, dot: int) -> bool:
    """A lone '.' after an abbreviation, an initial or a line-leading list number."""
    token, start = _token_before(text, dot)
    word = token.lstrip(OPENERS)
    if not word:
        return False
    low = word.lower()
    if low in ABBREVIATIONS or DOTTED_ABBREVIATION.fullmatch(low):
        return True
    if len(word) == 1 and word.isupper():
        return True  # an initial: "J. K. Rowling"
    if word.isdigit() and len(word) <= 3:
        line_start = text.rfind("\n", 0, start) + 1
        return text[line_start:start].strip() == ""
    return False


def _clause_kind(text: str, comma: int) -> str:
    """Korean commas close a clause only after a connective ending."""
    if text[comma] != "," or comma == 0 or not _is_hangul(text[comma - 1]):
        return _CLAUSE
    word, _ = _token_before(text, comma)
    return _CLAUSE if word.endswith(KOREAN_CONNECTIVES) else _WEAK_CLAUSE


class EmotionTrack:
    """Which emotion each chunk of one reply carries. Marks (server/avatar/emotions.py) are
    placed between the characters of the clean text; a chunk takes the first mark from the
    end of the chunk before it to its own end (the persona marks a sentence at its start),
    else keeps the emotion the reply had so far. None until the reply marks anything."""

    def __init__(self) -> None:
        self._text = ""
        self._marks: list[tuple[int, str]] = []  # (offset in the clean text, emotion)
        self._cursor = 0  # the end of the last chunk
        self.current: str | None = None

    def feed(self, delta: str) -> None:
        self._text += delta

    def mark(self, emotion: str) -> None:
        self._marks.append((len(self._text), emotion))

    def chunk(self, text: str) -> str | None:
        """The emotion of the next chunk (``text``, as the chunker cut it: a slice of the
        fed text with its outer whitespace stripped)."""
        start = self._text.find(text, self._cursor)
        end = len(self._text) if start < 0 else start + len(text)
        inside = [e for off, e in self._marks if off < end]
        self._marks = [(off, e) for off, e in self._marks if off >= end]
        self._cursor = end
        if not inside:
            return self.current
        self.current = inside[-1]  # an unmarked sentence that follows keeps the last feeling
        return inside[0]
