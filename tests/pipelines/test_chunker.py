"""SentenceChunker: sentence cuts in English and Korean, early first cut, exact text."""

from __future__ import annotations

import itertools
import random

import pytest

from server.pipelines.chunker import SentenceChunker, speakable

ENGLISH = (
    "Hi! I'm Seoa, and today I want to tell you about Mr. Kim's trip to the U.S. in 2023. "
    "He paid $3.5 million for a house, e.g. the one at https://example.com/a?b=1.x today. "
    "Isn't that wild? Well... I think so! Dr. J. K. Smith agreed, more or less.\n"
    "1. Pack light\n2. Leave early"
)
KOREAN = (
    "안녕하세요! 오늘은 날씨가 정말 좋은데, 같이 산책하러 갈까요? 저는 시장에서 사과, 배, "
    "포도를 샀어요. 버전 2.0을 설치했어요.그런데 문제가 생겼어요~ 어떻게 하죠? "
    "가격은 3,500원이었고 무게는 1.5kg이었다. 정말 놀랍지 않니?"
)
MIXED = (
    "Okay, so here's the plan: we meet at 10:30, grab coffee, and then we walk to the park "
    "where the festival is. 좋아요! 그럼 이따가 봐요. 東京へ行きました。とても楽しかったです！"
    "Bye for now…\n\nSee you."
)
TEXTS = [ENGLISH, KOREAN, MIXED]


def run(text: str, deltas: list[str], **kwargs: int) -> list[str]:
    """Feed deltas to a fresh chunker, flush, return all chunks."""
    chunker = SentenceChunker(**kwargs)
    out: list[str] = []
    for delta in deltas:
        out.extend(chunker.push(delta))
    out.extend(chunker.flush())
    return out


def random_split(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, min(30, len(text) - 1))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def assert_tiles(text: str, chunks: list[str]) -> None:
    """Chunks are the input's slices, in order, separated only by trimmed whitespace."""
    pos = 0
    for chunk in chunks:
        assert chunk, "empty chunk"
        assert chunk == chunk.strip(), f"untrimmed chunk {chunk!r}"
        while pos < len(text) and text[pos].isspace():
            pos += 1
        assert text.startswith(chunk, pos), f"{chunk!r} is not the text at {pos}"
        pos += len(chunk)
    assert text[pos:].strip() == "", f"lost tail {text[pos:]!r}"


@pytest.mark.parametrize("text", TEXTS, ids=["en", "ko", "mixed"])
def test_char_by_char_and_random_splits_give_same_chunks(text: str) -> None:
    whole = run(text, [text])
    assert len(whole) >= 3
    assert run(text, list(text)) == whole
    rng = random.Random(1234)
    for _ in range(200):
        assert run(text, random_split(text, rng)) == whole


def test_english_sentences() -> None:
    chunks = run(ENGLISH, list(ENGLISH))
    assert chunks[0] == "Hi!"  # first sentence goes out at once: first audio starts early
    assert chunks[1] == (
        "I'm Seoa, and today I want to tell you about Mr. Kim's trip to the U.S. in 2023."
    )
    assert chunks[2] == (
        "He paid $3.5 million for a house, e.g. the one at https://example.com/a?b=1.x today."
    )
    # Short sentences are merged until the chunk holds min_chars (40).
    assert chunks[3] == "Isn't that wild? Well... I think so! Dr. J. K. Smith agreed, more or less."
    # A list number at line start is not a sentence end.
    assert chunks[4:] == ["1. Pack light\n2. Leave early"]


def test_korean_sentences() -> None:
    chunks = run(KOREAN, list(KOREAN))
    assert chunks == [
        "안녕하세요!",
        "오늘은 날씨가 정말 좋은데, 같이 산책하러 갈까요? 저는 시장에서 사과, 배, 포도를 샀어요.",
        "버전 2.0을 설치했어요.그런데 문제가 생겼어요~ 어떻게 하죠? "
        "가격은 3,500원이었고 무게는 1.5kg이었다.",
        "정말 놀랍지 않니?",
    ]


def test_every_sentence_end_with_min_chars_1() -> None:
    chunks = run(KOREAN, list(KOREAN), min_chars=1)
    assert chunks == [
        "안녕하세요!",
        "오늘은 날씨가 정말 좋은데, 같이 산책하러 갈까요?",
        "저는 시장에서 사과, 배, 포도를 샀어요.",
        "버전 2.0을 설치했어요.",  # "요." + Hangul without a space still ends; "2.0" does not
        "그런데 문제가 생겼어요~",
        "어떻게 하죠?",
        "가격은 3,500원이었고 무게는 1.5kg이었다.",
        "정말 놀랍지 않니?",
    ]
    chunks = run(MIXED, [MIXED], min_chars=1)
    assert chunks == [
        "Okay, so here's the plan:",
        "we meet at 10:30, grab coffee, and then we walk to the park where the festival is.",
        "좋아요!",
        "그럼 이따가 봐요.",
        "東京へ行きました。",
        "とても楽しかったです！",
        "Bye for now…",
        "See you.",
    ]


def test_early_first_cut_at_clause_boundary() -> None:
    text = "Well, that is a really interesting question, and I have thought about it a lot."
    chunker = SentenceChunker(first_min_chars=20)
    emitted: list[str] = []
    at_char = None
    for i, ch in enumerate(text):
        got = chunker.push(ch)
        if got and at_char is None:
            at_char = i
        emitted.extend(got)
    # "Well," is below first_min_chars; the next comma is the first cut, emitted as soon as
    # the space after it arrives (long before the sentence ends).
    assert emitted[0] == "Well, that is a really interesting question,"
    assert at_char == len(emitted[0])
    rest = chunker.flush()
    assert rest == ["and I have thought about it a lot."]


def test_first_chunk_after_a_few_words_when_the_sentence_is_long() -> None:
    """first_words: the first chunk leaves once it holds that many words (the reply's first
    audio need not wait for the first sentence); later chunks still end at sentences."""
    text = "The quick brown fox jumps over a lazy dog. Seven happy otters sing near the river."
    chunker = SentenceChunker(first_words=4)
    emitted: list[str] = []
    at_char = None
    for i, ch in enumerate(text):
        got = chunker.push(ch)
        if got and at_char is None:
            at_char = i
        emitted.extend(got)
    assert emitted[0] == "The quick brown fox"
    assert at_char == len("The quick brown fox")  # out as soon as the word ended
    emitted.extend(chunker.flush())
    assert emitted[1:] == ["jumps over a lazy dog. Seven happy otters sing near the river."]
    # a sentence or a long clause that comes first still wins; Korean words count alike
    assert run("Sure! I can do that for you today.", ["Sure! I can do that for you today."],
               first_words=4)[0] == "Sure!"  # fmt: skip
    assert run("오늘은 날씨가 정말 좋아서 산책을 했어요.", ["오늘은 날씨가 정말 좋아서 산책을 했어요."],
               first_words=4)[0] == "오늘은 날씨가 정말 좋아서"  # fmt: skip
    # off (the default): the whole first sentence
    assert run(text, [text])[0] == "The quick brown fox jumps over a lazy dog."


@pytest.mark.parametrize("text", TEXTS, ids=["en", "ko", "mixed"])
def test_word_cut_is_independent_of_delta_splits(text: str) -> None:
    whole = run(text, [text], first_words=3)
    assert len(whole[0].split()) <= 3
    assert_tiles(text, whole)
    rng = random.Random(99)
    for _ in range(100):
        assert run(text, random_split(text, rng), first_words=3) == whole


def test_only_the_first_chunk_is_cut_at_clauses() -> None:
    text = (
        "Thank you so much for asking, really. "
        "Second, I think that walking, reading, and cooking are my favourite hobbies these days."
    )
    chunks = run(text, [text])
    assert chunks == [
        "Thank you so much for asking,",
        "really. Second, I think that walking, reading, and cooking are my favourite "
        "hobbies these days.",
    ]


def test_korean_comma_needs_connective_ending_for_early_cut() -> None:
    listy = "오늘 시장에서 사과, 배, 포도, 귤을 샀는데, 정말 맛있었어요. 다음에 또 가요."
    chunks = run(listy, list(listy))
    # Commas after nouns (사과, 배, 포도) are not clause ends; "샀는데," is.
    assert chunks[0] == "오늘 시장에서 사과, 배, 포도, 귤을 샀는데,"
    english_list = "Today at the market I bought apples, pears, and grapes for us."
    assert run(english_list, [english_list])[0] == "Today at the market I bought apples,"


@pytest.mark.parametrize(
    "text",
    [
        "The value was 3.5 and then it rose to 4.25 by the end of the year in the lab test.",
        "Mr. Smith and Mrs. Jones met Dr. Lee at 5 p.m. on Jan. 3 for the quarterly review.",
        "Use tools, e.g. hammers, i.e. the heavy ones, etc. for this job at the old workshop.",
        "Open https://example.com/path?q=1&r=2.html or www.test.org/a.b now before the end.",
        "버전 3.5.1은 https://예시.kr/a?b=1 에서 받을 수 있고 가격은 1.5달러 입니다.",
    ],
)
def test_numbers_abbreviations_urls_are_not_split(text: str) -> None:
    chunker = SentenceChunker(first_min_chars=200, min_chars=200, max_chars=220)
    chunks = [c for ch in text for c in chunker.push(ch)] + chunker.flush()
    assert chunks == [text]


def test_force_cut_at_max_chars_on_whitespace() -> None:
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod " * 8
    chunks = run(words, list(words), max_chars=100)
    assert len(chunks) >= 5
    assert all(len(c) <= 100 for c in chunks)
    assert all(not c.endswith(("lor", "ips")) for c in chunks)  # never inside a word
    source_words = words.split()
    assert [w for c in chunks for w in c.split()] == source_words
    assert_tiles(words, chunks)


def test_force_cut_prefers_sentence_then_clause() -> None:
    walk = "and then we walked on and on " * 10
    # After the first chunk, "Ok." is below min_chars; when nothing else ends within
    # max_chars, the forced cut takes that short sentence rather than a random space.
    chunks = run(
        "Hello there, my friend. Ok. " + walk,
        list("Hello there, my friend. Ok. " + walk),
        max_chars=120,
    )
    assert chunks[:2] == ["Hello there, my friend.", "Ok."]
    clausy = "Hi. We walked on and on, " + "further and further along the river bank " * 4
    chunks = run(clausy, [clausy], max_chars=100)
    assert chunks[:2] == ["Hi.", "We walked on and on,"]
    assert all(len(c) <= 100 for c in chunks)


def test_hard_cut_without_whitespace() -> None:
    text = "가" * 500
    chunks = run(text, list(text), max_chars=220)
    assert [len(c) for c in chunks] == [220, 220, 60]


def test_punctuation_only_is_not_a_chunk_until_flush() -> None:
    chunker = SentenceChunker()
    assert chunker.push("... ") == []
    assert chunker.push("!! ") == []
    got = chunker.push("Oh! Really? ")
    assert got == ["... !! Oh!"]
    assert chunker.flush() == ["Really?"]
    assert chunker.push("😊") == []
    tail = chunker.flush()
    assert tail == ["😊"] and not speakable(tail[0])


def test_flush_resets_for_next_reply() -> None:
    chunker = SentenceChunker()
    first = [*chunker.push("Hello there, my dear friend. How was it"), *chunker.flush()]
    second = [*chunker.push("Hello there, my dear friend. How was it"), *chunker.flush()]
    assert first == second == ["Hello there, my dear friend.", "How was it"]


def test_concatenation_property_random_text() -> None:
    rng = random.Random(20240601)
    alphabet = [
        *"abcdefghij 가나다라마바사 0123456789",
        ". ", "! ", "? ", "... ", ", ", "; ", ": ", "\n", "。", "、", "요. ", "다. ", "까? ",
        "3.5", "Mr. ", "e.g. ", "https://x.io/a?b=1 ", "  ", "\t", "~ ", "」", "\"",
    ]  # fmt: skip
    for trial in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        kwargs = {
            "first_min_chars": rng.randint(1, 40),
            "min_chars": rng.randint(1, 80),
            "max_chars": rng.randint(80, 240),
            "first_words": rng.choice((0, 0, 1, 3, 4)),
        }
        whole = run(text, [text], **kwargs)
        assert_tiles(text, whole)
        assert all(len(c) <= kwargs["max_chars"] for c in whole), trial
        assert all(speakable(c) for c in whole[:-1]), trial
        assert run(text, random_split(text, rng) if len(text) > 1 else [text], **kwargs) == whole


def test_rejects_bad_limits() -> None:
    with pytest.raises(ValueError):
        SentenceChunker(first_words=-1)
    with pytest.raises(ValueError):
        SentenceChunker(first_min_chars=300, max_chars=220)
