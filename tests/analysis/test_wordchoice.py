"""Word-choice counts on crafted Korean and English sentences."""

from __future__ import annotations

import re

import pytest

from analysis.wordchoice import CATEGORIES, analyze_words, detect_language, load_lexicon


def test_korean_polite_speech_and_gratitude() -> None:
    r = analyze_words("안녕하세요. 오늘 정말 감사합니다! 덕분에 너무 좋았어요.")
    assert r.language == "ko"
    assert (r.words, r.sentences) == (7, 3)
    assert r.polite == 3  # 안녕하세요, 감사합니다 (one each, not twice), -요 of 좋았어요
    assert r.matches["polite"][:2] == ["안녕하세요", "감사합니다"]
    assert r.positive == 1 and r.negative == 0
    assert r.polite_sentence_ratio == 1.0
    assert r.polite_ratio == pytest.approx(3 / 7)
    assert r.sentiment == 1.0


def test_korean_informal_speech_is_not_polite_speech_level() -> None:
    r = analyze_words("고마워! 진짜 재밌었어")
    assert r.polite == 1 and r.matches["polite"] == ["고마워"]  # gratitude, informal
    assert r.polite_sentence_ratio == 0.0
    assert r.positive == 1


@pytest.mark.parametrize(
    ("word", "polite"),
    [
        ("합니다", True),
        ("먹었습니다", True),
        ("갑니까", True),
        ("갑시다", True),
        ("하세요", True),
        ("그렇죠", True),
        ("필요해요", True),
        ("다니다", False),  # ends in 니다 but 다 has no ㅂ final
        ("그러니까", False),
        ("필요", False),
        ("중요", False),
        ("했어", False),
    ],
)
def test_korean_polite_endings(word: str, polite: bool) -> None:
    assert (analyze_words(word).polite == 1) is polite


def test_korean_empathy_takes_precedence_over_sentiment() -> None:
    r = analyze_words("그렇구나, 많이 힘들었겠다. 괜찮아?")
    assert r.empathetic == 3
    assert r.matches["empathetic"] == ["그렇구나", "많이 힘들었겠다", "괜찮아"]
    assert r.negative == 0  # 힘들 inside an empathy phrase is not the speaker's complaint


def test_korean_conjecture_ending_and_honorifics() -> None:
    r = analyze_words("할머니께서 오셨습니다. 그럴 수 있어요. 속상했겠네요")
    assert r.empathetic == 2
    assert "그럴 수 있어요" in r.matches["empathetic"]
    assert "할머니께서" in r.matches["polite"]
    assert r.polite_sentence_ratio == 1.0


@pytest.mark.parametrize(
    ("text", "positive", "negative", "label"),
    [
        ("기분이 안 좋아.", 0, 1, "안 좋아"),
        ("안좋아", 0, 1, "안좋아"),
        ("좋지 않아요", 0, 1, "좋지 않아요"),
        ("좋지않아", 0, 1, "좋지않아"),
        ("싫진 않아", 1, 0, "싫진 않아"),
        ("정말 좋아", 1, 0, "좋아"),
        ("짜증나고 피곤해", 0, 2, "짜증나고"),
    ],
)
def test_korean_negation_flips_sentiment(
    text: str, positive: int, negative: int, label: str
) -> None:
    r = analyze_words(text)
    assert (r.positive, r.negative) == (positive, negative)
    assert label in r.matches.get("positive", []) + r.matches.get("negative", [])


def test_english_empathy() -> None:
    r = analyze_words("I understand, that must be really hard. I'm sorry to hear that.")
    assert r.language == "en"
    assert r.empathetic == 3
    assert r.matches["empathetic"] == ["i understand", "that must be", "i'm sorry to hear"]
    assert r.polite == 0  # "sorry to hear" is empathy, not an apology


def test_english_politeness_negation_and_sentiment() -> None:
    r = analyze_words(
        "Thank you so much! Could you please send it? This is not good, I hate waiting."
    )
    assert r.polite == 3
    assert r.matches["negative"] == ["not good", "hate"]
    assert r.positive == 0 and r.sentiment == -1.0
    assert r.polite_sentence_ratio == pytest.approx(2 / 3)
    s = analyze_words("I don’t like it. It's not bad though. Don't worry, take your time.")
    assert s.matches["negative"] == ["don't like it"]
    assert s.matches["positive"] == ["not bad"]
    assert s.empathetic == 2 and s.sentiment == 0.0


def test_english_wildcards_and_word_boundaries() -> None:
    r = analyze_words("Thanks, I really appreciated it and I loved the window view.")
    assert r.polite == 2  # thanks, appreciated
    assert r.matches["positive"] == ["loved"]  # 'window' is not 'win*'
    assert r.positive_ratio == pytest.approx(1 / r.words)


def test_code_switched_text_uses_both_lexicons() -> None:
    r = analyze_words("오늘 meeting 정말 good 이었어요, thank you")
    assert r.language == "ko"
    assert r.matches["positive"] == ["good"]
    assert sorted(r.matches["polite"]) == sorted(["-요 (이었어요)", "thank you"])


@pytest.mark.parametrize("text", ["", "   ", "... !!", "12345"])
def test_empty_or_wordless_text(text: str) -> None:
    r = analyze_words(text)
    assert r.positive == r.negative == r.empathetic == r.polite == 0
    assert r.sentiment == 0.0 and r.polite_ratio == 0.0
    assert r.matches == {}


def test_language_detection_and_override() -> None:
    assert detect_language("그렇구나") == "ko"
    assert detect_language("hello 친구") == "ko"
    assert detect_language("hello") == "en"
    assert detect_language("!!!") is None
    assert analyze_words("감사합니다", language="ko-KR").language == "ko-KR"


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_lexicons_are_well_formed_and_moderate(lang: str) -> None:
    data = load_lexicon(lang)
    assert data["language"] == lang and data["about"]
    script = re.compile(r"[\uac00-\ud7a3ㄱ-ㅎ]") if lang == "ko" else re.compile(r"^[a-z' |*]+$")
    for category in CATEGORIES:
        entries = data["categories"][category]
        assert 20 <= len(entries) <= 150, category
        assert len(entries) == len(set(entries)), f"duplicates in {lang}/{category}"
        for e in entries:
            body = e[3:] if e.startswith("re:") else e
            assert script.search(body), f"{lang}/{category}: {e!r}"
            if e.startswith("re:"):
                re.compile(body)
