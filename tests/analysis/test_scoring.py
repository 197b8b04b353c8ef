"""analysis.scoring on constructed sessions: exact values where the documented formulas give
them (docs/analysis.md, "Session report scoring"), directions where they are heuristics."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from analysis.face.expression import EMOTIONS
from analysis.report_inputs import count_words, is_question
from analysis.report_model import COMPONENTS, Message, TimelineSample
from analysis.scoring import MAX_TIMELINE_POINTS, WEIGHTS, blink_score, score_session

FACE_COMPONENTS = ("concentration", "gaze_stability", "blinking", "posture", "expression")


def emotions(**scores: float) -> dict[str, float]:
    """Eight emotion scores; the unnamed rest goes to neutral so they sum to 1."""
    out = dict.fromkeys(EMOTIONS, 0.0) | scores
    out["neutral"] = max(0.0, 1.0 - sum(v for k, v in out.items() if k != "neutral"))
    return out


def face(
    t_ms: float,
    *,
    concentration: float = 80.0,
    posture: float = 75.0,
    blink: float | None = 15.0,
    on_screen: bool = True,
    stability: float = 0.9,
    scores: dict[str, float] | None = None,
) -> TimelineSample:
    scores = scores or emotions(happiness=0.3)
    return TimelineSample(
        t_ms,
        {
            "emotion": max(scores, key=scores.__getitem__),
            "emotion_scores": scores,
            "blink_rate_per_min": blink,
            "gaze_on_screen": on_screen,
            "gaze_stability": stability,
            "head_pose": {"yaw": 2.0, "pitch": -3.0, "roll": 1.0},
            "posture_score": posture,
            "concentration": concentration,
        },
    )


def voice(t_ms: float, **over: float | None) -> TimelineSample:
    data = {
        "pitch_hz": 190.0,
        "pitch_var": 2.4,
        "rate_wps": 2.6,
        "volume_db": -24.0,
        "pause_ratio": 0.12,
        "energy": 0.6,
        "warmth": 0.7,
        "words": {"words": 6, "positive": 1, "negative": 0, "empathetic": 0, "polite": 1},
    } | over
    return TimelineSample(t_ms, data)


def faces_for(seconds: int, **kw: object) -> list[TimelineSample]:
    return [face(i * 1000.0, **kw) for i in range(seconds)]  # type: ignore[arg-type]


CHAT = [
    Message("user", "안녕하세요! 오늘 날씨가 정말 좋네요. 주말에 뭐 하셨어요?"),
    Message("assistant", "저는 책을 읽었어요. 어떤 책 좋아하세요?"),
    Message("user", "저는 소설을 좋아해요. 요즘 읽는 책 추천해 주실래요?"),
    Message("assistant", "물론이죠! 따뜻한 이야기 좋아하시면 좋을 거예요."),
]


# --------------------------------------------------------------------------- blinking


def test_healthy_blink_rate_scores_higher_than_rare_or_frequent_blinking():
    assert blink_score(15) == 100.0
    assert blink_score(15) > blink_score(2)
    assert blink_score(15) > blink_score(40)
    # the documented trapezoid: 100 on [10, 20], 0 at 0 and at 45 per minute
    assert blink_score(10) == blink_score(20) == 100.0
    assert blink_score(2) == pytest.approx(20.0)
    assert blink_score(5) == pytest.approx(50.0)
    assert blink_score(40) == pytest.approx(20.0)
    assert blink_score(0) == 0.0 and blink_score(45) == 0.0 and blink_score(80) == 0.0


def test_blinking_component_uses_settled_rates_only():
    # the first 20 s read 60/min (a short window inflates one early blink), then 15/min
    samples = [face(i * 1000.0, blink=60.0 if i < 20 else 15.0) for i in range(40)]
    r = score_session([], samples, [])
    assert r.metrics["blink_rate_per_min"] == 15.0
    assert r.scores.blinking == 100.0
    # a face timeline shorter than the settle time cannot tell a blink rate: no score
    short = score_session([], [face(i * 1000.0, blink=2.0) for i in range(20)], [])
    assert short.scores.blinking is None and short.metrics["blink_rate_per_min"] is None
    assert short.scores.concentration is not None
    rare = score_session([], [face(i * 1000.0, blink=2.0) for i in range(21)], [])
    assert rare.scores.blinking == pytest.approx(20.0)


# --------------------------------------------------------------------------- face


def test_face_means_pass_through():
    samples = [
        face(0, concentration=60, posture=50, stability=0.6, on_screen=True),
        face(1000, concentration=80, posture=70, stability=0.8, on_screen=False),
        face(2000, concentration=70, posture=90, stability=1.0, on_screen=True),
    ]
    r = score_session([], samples, [])
    assert r.scores.concentration == 70.0
    assert r.scores.posture == 70.0
    # gaze stability = 100 * (0.5 * mean stability + 0.5 * on-screen share)
    assert r.scores.gaze_stability == pytest.approx(100 * (0.5 * 0.8 + 0.5 * 2 / 3), abs=0.05)
    assert r.metrics["gaze_on_screen_ratio"] == pytest.approx(2 / 3, abs=1e-3)
    assert [p.value for p in r.timelines.concentration] == [60.0, 80.0, 70.0]


def test_expression_rewards_positive_expressive_faces():
    def expr(scores: dict[str, float]) -> float | None:
        return score_session([], faces_for(10, scores=scores), []).scores.expression

    flat = expr(emotions())  # neutral 1.0: expressiveness 0, positivity 0.5
    assert flat == pytest.approx(100 * 0.6 * 0.5)
    happy = expr(emotions(happiness=0.6))
    angry = expr(emotions(anger=0.6))
    assert happy == 100.0  # expressive (non-neutral 0.6 >= 0.5) and positive (0.5 + 0.6 > 1)
    assert happy > flat and happy > angry  # type: ignore[operator]
    # anger 0.6: expressiveness 1, positivity clip(0.5 - 0.6) = 0
    assert angry == pytest.approx(40.0)


def test_emotion_distribution_counts_top_labels():
    samples = faces_for(3, scores=emotions(happiness=0.7)) + [
        face(3000 + i * 1000.0, scores=emotions(surprise=0.2)) for i in range(1)
    ]
    r = score_session([], samples, [])
    dist = r.timelines.emotion_distribution
    assert set(dist) == set(EMOTIONS)
    assert dist["happiness"] == 0.75 and dist["neutral"] == 0.25
    assert sum(dist.values()) == pytest.approx(1.0)
    assert r.metrics["dominant_emotion"] == "happiness"
    assert r.timelines.emotion_mean_scores["happiness"] == pytest.approx(0.525)


def test_samples_with_missing_or_bad_fields_are_skipped_field_by_field():
    bad = TimelineSample(
        500,
        {
            "concentration": float("nan"),
            "posture_score": None,
            "gaze_on_screen": "yes",
            "gaze_stability": True,  # a bool is not a number
            "blink_rate_per_min": "fast",
            "emotion_scores": {"happiness": 0.5},  # incomplete, and no label
        },
    )
    r = score_session([], [face(0, concentration=50, posture=40), bad], [])
    assert r.scores.concentration == 50.0
    assert r.scores.posture == 40.0
    assert r.counts["face_samples"] == 2
    assert sum(r.timelines.emotion_distribution.values()) == pytest.approx(1.0)
    assert r.scores.total is None  # half a second of camera is too little for a total


def test_concentration_timeline_is_downsampled_in_order():
    samples = [face(i * 1000.0, concentration=float(i % 100)) for i in range(3000)]
    samples.reverse()  # input order does not matter
    r = score_session([], samples, [])
    pts = r.timelines.concentration
    assert len(pts) == MAX_TIMELINE_POINTS
    assert [p.t_ms for p in pts] == sorted(p.t_ms for p in pts)
    mean_of_points = sum(p.value for p in pts) / len(pts)
    assert mean_of_points == pytest.approx(r.scores.concentration, abs=0.5)


# --------------------------------------------------------------------------- turns


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("뭐 해?", True),
        ("어디 가니", True),
        ("같이 갈까", True),
        ("요즘 잘 지내나요", True),
        ("What do you think", True),
        ("is it raining", True),
        ("밥 먹었어요", False),
        ("I think so.", False),
        ("좋아", False),
    ],
)
def test_question_detection(text: str, expected: bool):
    assert is_question(text) is expected


def test_word_count_matches_wordchoice_definition():
    assert count_words("안녕하세요, 반가워요 !") == 2
    assert count_words("I don't know ...") == 3


def test_plain_short_answers_score_low_initiative_exactly():
    msgs = [
        Message("assistant", "오늘 어땠어요?"),
        Message("user", "좋았어요"),
        Message("assistant", "무엇을 했어요?"),
        Message("user", "산책"),
    ]
    r = score_session(msgs, [], [])
    # every user turn is a plain answer (A = 0) and none asks (Q = 0);
    # words per turn 1 -> 1/8; assistant 2 words per turn -> ratio 0.5 -> full
    length = 0.5 * (1 / 8) + 0.5 * 1.0
    assert r.parts["initiative"] == {
        "not_just_answers": 0.0,
        "questions": 0.0,
        "length": pytest.approx(length, abs=1e-3),
    }
    assert r.scores.initiative == pytest.approx(100 * 0.3 * length, abs=0.05)
    assert r.metrics["plain_answers"] == 2 and r.metrics["user_questions"] == 0


def test_asking_and_leading_scores_higher_initiative():
    leading = score_session(CHAT, [], [])
    passive = score_session(
        [
            Message("assistant", "주말에 뭐 했어요?"),
            Message("user", "그냥 집에"),
            Message("assistant", "어떤 책 좋아하세요?"),
            Message("user", "소설요"),
        ],
        [],
        [],
    )
    assert leading.scores.initiative == 100.0  # both turns ask, and they are long
    assert passive.scores.initiative < 30  # type: ignore[operator]
    assert leading.metrics["user_questions"] == 2


# --------------------------------------------------------------------------- voice, words


def test_tone_exact_for_one_utterance_without_polar_words():
    r = score_session([], [], [voice(1000, energy=0.5, pitch_var=1.5)])
    # energy 0.5 (w .35), liveliness 1.5/3 = 0.5 (w .25); no loudness spread from one
    # utterance and no words: those terms drop out and the weights renormalise
    assert r.scores.tone == pytest.approx(50.0)
    assert r.parts["tone"]["volume_steadiness"] is None
    assert r.parts["tone"]["word_sentiment"] is None


def test_lively_steady_positive_voice_has_better_tone():
    good = score_session(
        [Message("user", "정말 재미있고 행복했어요")],
        [],
        [voice(1000, energy=0.7, pitch_var=3.0, volume_db=-22), voice(5000, volume_db=-24)],
    )
    bad = score_session(
        [Message("user", "너무 피곤하고 짜증나요")],
        [],
        [
            voice(1000, energy=0.2, pitch_var=0.6, volume_db=-40),
            voice(5000, energy=0.2, pitch_var=0.6, volume_db=-20),
        ],
    )
    assert good.scores.tone > bad.scores.tone + 30  # type: ignore[operator]
    assert good.parts["tone"]["volume_steadiness"] == pytest.approx(0.9)  # std 1 dB
    assert bad.parts["tone"]["volume_steadiness"] == 0.0  # std 10 dB


def test_warm_words_and_smiles_raise_likability():
    warm = score_session(
        [Message("user", "정말 고마워요. 많이 힘들었겠다, 괜찮아요?")],
        faces_for(5, scores=emotions(happiness=0.5)),
        [voice(1000, warmth=0.8)],
    )
    cold = score_session(
        [Message("user", "싫어. 짜증나. 별로야.")],
        faces_for(5, scores=emotions()),
        [voice(1000, warmth=0.2)],
    )
    assert warm.scores.likability > cold.scores.likability + 40  # type: ignore[operator]
    assert warm.parts["likability"]["smile"] == 1.0  # mean happiness 0.5 >= 0.4
    assert cold.parts["likability"]["smile"] == 0.0
    assert cold.parts["likability"]["kind_words"] == 0.0  # only negative words
    assert warm.metrics["empathetic_words"] >= 1  # type: ignore[operator]


def test_too_short_audio_fields_are_none_and_ignored():
    r = score_session(
        [],
        [],
        [voice(1000, pitch_hz=None, pitch_var=None, rate_wps=None, energy=None, warmth=None)],
    )
    assert r.counts["voice_samples"] == 1
    assert r.scores.tone is None and r.scores.likability is None
    assert r.timelines.voice[0].pitch_hz is None and r.timelines.voice[0].volume_db == -24.0


# --------------------------------------------------------------------------- total, summary


def test_missing_modalities_are_none_and_excluded_from_total():
    r = score_session(CHAT, [], [])
    for name in FACE_COMPONENTS:
        assert getattr(r.scores, name) is None
    present = {k: getattr(r.scores, k) for k in COMPONENTS if getattr(r.scores, k) is not None}
    assert set(present) == {"likability", "initiative", "tone"}
    expected = sum(WEIGHTS[k] * v for k, v in present.items()) / sum(WEIGHTS[k] for k in present)
    assert r.scores.total == pytest.approx(expected, abs=0.06)
    assert "No camera data" in r.summary.en and "카메라 데이터가 없어" in r.summary.ko


def test_face_only_session_total_is_weighted_mean_of_face_scores():
    r = score_session([], faces_for(30, concentration=90, posture=60), [])
    assert r.scores.initiative is None and r.scores.tone is None
    assert r.scores.likability is not None  # smiles alone
    present = {k: getattr(r.scores, k) for k in COMPONENTS if getattr(r.scores, k) is not None}
    expected = sum(WEIGHTS[k] * v for k, v in present.items()) / sum(WEIGHTS[k] for k in present)
    assert r.scores.total == pytest.approx(expected, abs=0.06)


def test_three_word_session_gets_no_total_and_says_why():
    r = score_session(
        [Message("user", "hi how are"), Message("assistant", "I'm fine, thanks! And you?")],
        [],
        [voice(1000)],
    )
    assert r.scores.tone is not None  # the readings are there...
    assert r.scores.total is None and r.enough_data is False  # ...but no confident total
    assert "Too little data" in r.summary.en and "1 turn(s), 3 word(s)" in r.summary.en
    assert "부족" in r.summary.ko


def test_the_minimum_conversation_gets_a_total():
    msgs = [
        Message("user", "hello there, how was your day today?"),
        Message("assistant", "Lovely, thanks! Yours?"),
        Message("user", "pretty good, I went hiking"),
    ]
    r = score_session(msgs, [], [])
    assert r.metrics["user_words"] >= 10 and r.counts["user_turns"] == 2
    assert r.scores.total is not None and r.enough_data is True


def test_empty_session_has_no_scores_and_says_so():
    r = score_session([], [], [])
    assert all(getattr(r.scores, k) is None for k in (*COMPONENTS, "total"))
    assert r.enough_data is False
    assert "not enough data" in r.summary.en and "부족" in r.summary.ko
    d = r.to_dict()
    json.dumps(d)  # JSON-ready
    assert d["timelines"] == {
        "concentration": [],
        "emotion_distribution": {},
        "emotion_mean_scores": {},
        "voice": [],
    }


def test_summary_names_strengths_and_the_weakest_area():
    r = score_session(
        CHAT, faces_for(30, concentration=92, posture=20, stability=0.95), [voice(1000)]
    )
    assert r.scores.posture == 20.0
    assert "To improve — posture (20)" in r.summary.en
    assert "개선점 — 자세(20점)" in r.summary.ko
    assert "Strengths:" in r.summary.en and "강점은" in r.summary.ko
    assert f"Overall score {math.floor(r.scores.total + 0.5)}/100" in r.summary.en  # type: ignore[operator]


def test_suggestion_targets_the_weakest_part_of_the_weakest_area():
    flat_voice = [voice(i * 4000.0, pitch_var=0.3, energy=0.9, volume_db=-24.0) for i in range(3)]
    r = score_session(CHAT, [], flat_voice)
    assert r.parts["tone"]["pitch_liveliness"] == pytest.approx(0.1)
    assert r.scores.tone == min(
        v for v in (r.scores.likability, r.scores.initiative, r.scores.tone) if v is not None
    )
    assert "monotone" in r.summary.en and "억양" in r.summary.ko


def test_blinking_suggestion_quotes_the_rate():
    r = score_session([], faces_for(30, blink=3.0, concentration=95, posture=95), [])
    assert r.scores.blinking == pytest.approx(30.0)
    assert "blinked only 3 times a minute" in r.summary.en
    assert "분당 3회" in r.summary.ko


def test_analysis_scoring_imports_no_server_code():
    code = "import sys, analysis.scoring; print(any(m.startswith('server') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
