"""The language rules (server/turns/lang/*.json) and the end-of-turn policy, on text and
numbers: what counts as a backchannel, a stop request, finished words; how long a pause
waits, and how the camera's gaze changes it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from server.providers.stt import Transcript
from server.turns.endpoint import CAPS_MS, Pause, TurnConfig, decide
from server.turns.interrupt import OverReply
from server.turns.model import SmartTurnModel, smart_turn_model_path
from server.turns.rules import classify, echo_overlap, text_completeness, words
from server.turns.semantic import words_completeness


@pytest.mark.parametrize(
    ("text", "lang", "kind"),
    [
        ("Mm-hmm.", "en", "backchannel"),
        ("M.M.", "en", "backchannel"),  # Whisper's spelling of "mm-hm", now and then
        ("Yeah.", "en", "backchannel"),
        ("Uh-huh, right.", "en", "backchannel"),
        ("Oh, I see.", None, "backchannel"),
        ("응", "ko", "backchannel"),
        ("네.", "ko", "backchannel"),
        ("아, 그렇구나.", "ko", "backchannel"),
        ("[coughs]", "en", "none"),
        ("", "en", "none"),
        ("Wait, stop please.", "en", "stop"),
        ("Hold on a second.", "en", "stop"),
        ("잠깐만요", "ko", "stop"),
        ("그만하세요.", "ko", "stop"),  # a stop word with a polite ending glued on
        ("잠깐요, 멈춰요.", "ko", "stop"),
        ("참깐만요", "ko", "stop"),  # Whisper base's "잠깐만요" (ㅈ heard as ㅊ)
        ("참시만요.", "ko", "stop"),  # ... and its "잠시만요"
        ("참가.", "ko", "stop"),  # ... and its "잠깐." over a reply (the final ㄴ lost too)
        ("그만큼 많이 먹었어요.", "ko", "turn"),  # starts like a stop word, is none
        ("음, 그렇구나.", "ko", "backchannel"),
        ("M.A.M.F.M", "en", "backchannel"),  # Whisper's letters for a hummed "mm-hm"
        ("Thank you.", "en", "backchannel"),  # what Whisper makes of a short sound
        ("Uh-uh. Right.", "en", "backchannel"),
        ("What about tomorrow morning?", "en", "turn"),
        ("내일은 어때요?", "ko", "turn"),
    ],
)
def test_classify(text: str, lang: str | None, kind: str):
    assert classify(text, lang) == kind


def test_dotted_letters_are_one_word():
    assert words("M.A.M.F.M") == ["mamfm"]
    assert words("U. S. A. trip") == ["usa", "trip"]
    assert words("Wait, stop.") == ["wait", "stop"]


def test_a_lone_word_over_a_reply_is_not_a_turn():
    assert classify("What", "en") == "backchannel"
    assert classify("them", "en") == "backchannel"  # Whisper's "mm-hm", now and then
    assert classify("What about", "en") == "turn"
    assert classify("Stop", "en") == "stop"


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("Could you call my sister?", "en", 1.0),
        ("I went to the store.", "en", 1.0),
        ("I would like to book a table for two at", "en", 0.0),
        ("So what I was thinking is, um", "en", 0.0),
        ("I went there and...", "en", 0.0),
        ("어제 친구랑 영화를 봤는데", "ko", 0.0),
        ("내일 만날까요?", "ko", 1.0),
        # Whisper's "?" on a question's first half: a question cannot end on "to"
        ("Can you tell me how long it takes to get to?", "en", 0.0),
        ("Where are you from?", "en", 1.0),
        # words that only hold the floor are no finished turn, whatever the punctuation:
        # Whisper hears the comma pause in "Wait, stop please." as "Wait."
        ("Wait.", "en", 0.0),
        ("Hold on.", "en", 0.0),
        ("Um, so?", "en", 0.0),
        ("Okay so, well.", "en", 0.0),
        ("Stop!", "en", 0.0),
        ("잠깐만요", "ko", 0.0),
        ("음, 그러니까.", "ko", 0.0),
        ("잠깐", None, 0.0),  # an undetected language: every language's lists
        # with other words a stop phrase ends them: the request is complete as said
        ("Wait, stop please.", "en", 1.0),
        ("Can you hold on.", "en", 1.0),
        ("So what do you think?", "en", 1.0),
        ("Okay.", "en", 1.0),  # an answer, not a hesitation
        # Whisper looping on a sentence's first half (bench, 5 s window): no finished turn
        ("Tomorrow I enter daughter of an distant distant distant distant distant", "en", 0.0),
        ("No, no, no.", "en", 1.0),
        ("How are you?", "en", 1.0),
        ("seven in the evening please", "en", 0.6),
        ("", "en", None),
    ],
)
def test_text_completeness(text: str, lang: str, expected: float | None):
    assert text_completeness(text, lang) == expected


def test_doubtful_words_do_not_end_a_turn():
    def heard(text: str, logprob: float) -> Transcript:
        return Transcript(text, "en", [], 2.0, 0.2, avg_logprob=logprob)

    # a sentence's first half misheard, with a full stop: Whisper was guessing
    assert (
        words_completeness(heard("Tomorrow I hand a daughter to the next distant.", -0.95), "en")
        == 0.0
    )
    assert words_completeness(heard("Please turn on all the kitchen lights.", -0.3), "en") == 1.0
    assert words_completeness(None, "en") is None


def test_words_whisper_guessed_are_no_turn_over_a_reply():
    over = OverReply("item_1", 0, "en")
    assert over.judge("Emma Cham", "", logprob=-1.4) == "backchannel"  # a hummed "mm-hm"
    assert over.judge("What about tomorrow?", "", logprob=-0.4) == "turn"
    assert over.judge("Wait stop", "", logprob=-1.4) == "stop"  # a stop word still stops
    assert over.judge("Sentence number one is here", "Sentence number one is here.") == "echo"


def test_held_speech_is_decoded_with_the_stretch_before_it():
    over = OverReply("item_2", 0, "en")
    audio = np.ones(160, dtype=np.float32)
    assert over.joined(audio) is audio
    over.prefix = np.zeros(80, dtype=np.float32)
    joined = over.joined(audio)
    assert joined.size == 240 and joined[:80].sum() == 0 and joined[80:].sum() == 160


def test_a_stretch_is_a_turn_by_its_new_words_only():
    """Held speech decoded with the stretch before it: the earlier part was judged already,
    so its misheard hum does not count twice ("mm-hm ... mm-hm" -> "Emanson. Emanson.")."""
    over = OverReply("item_2", 0, "en", prefix_text="Emanson.")
    assert over.judge("Emanson. Emanson.", "", logprob=-0.5) == "backchannel"
    assert over.judge("Emanson. What about tomorrow?", "", logprob=-0.4) == "turn"
    assert over.judge("Emanson. Stop.", "", logprob=-0.5) == "stop"
    alone = OverReply("item_3", 0, "en")
    assert alone.judge("Emanson. Amazon.", "", logprob=-0.5) == "turn"  # no stretch before
    # the same within one held speech: its words at the last pause were judged already
    alone.settled_text = "M-M-Z-M. Yeah."
    assert alone.judge("M-M-Them. Yeah. Uh-uh. Right.", "", logprob=-0.5) == "backchannel"
    assert alone.judge("M-M-Z-M. Yeah. Tell me more.", "", logprob=-0.5) == "turn"
    # Whisper spelling a hum letter by letter is no words
    assert OverReply("item_4", 0, "en").judge("M M Z M M Z M M", "", logprob=-0.5) != "turn"
    assert OverReply("item_5", 0, "en").judge("I am", "", logprob=-0.5) == "turn"


def test_a_run_of_one_hummed_word_is_no_turn():
    """Hums in a run, each heard as the same made-up word or pair (an AVX2-only CPU's Whisper:
    "Emamson Emamson Emamson" and "Emams them Emams them" cancelled replies): no turn.
    Repeated words without the hummed "m", or words that change, still are."""
    for heard in (
        "Emamson Emamson Emamson",
        "Emams them Emams them.",
        "Emanson. Emanson.",
        "Emamson, yeah, Emamson. Emamson",  # acknowledgements between them
        "Emma Cham Emma",  # the run cut mid-pair by a pause
    ):
        assert classify(heard, "en") == "backchannel", heard
        assert OverReply("item_6", 0, "en").judge(heard, "", logprob=-0.3) == "backchannel"
    for heard in ("No, no, no.", "Hello? Hello?", "Emamson, what about tomorrow?"):
        assert OverReply.interrupts(classify(heard, "en")), heard
    assert classify("Emamson. Stop. Emamson.", "en") == "stop"


def test_echo_overlap():
    spoken = "Sentence number one is here to be spoken aloud."
    assert echo_overlap("sentence number one is here", spoken) == 1.0
    assert echo_overlap("what time is it in Seoul", spoken) < 0.3


def test_complete_turn_ends_after_short_silence_incomplete_waits_up_to_the_cap():
    for eagerness, cap in (("low", 8000), ("medium", 4000), ("high", 2000), ("auto", 4000)):
        cfg = TurnConfig(eagerness=eagerness)
        assert CAPS_MS[eagerness] == cap
        done = decide(0.9, 1.0, cfg)
        assert done.complete and done.wait_ms == 200
        unsure = decide(0.1, 0.0, cfg)
        assert not unsure.complete and 200 < unsure.wait_ms <= cap
        assert decide(0.0, 0.0, cfg).wait_ms == cap
    # the words outweigh the audio model when they are clear
    assert decide(0.05, 1.0, TurnConfig()).complete
    assert not decide(0.95, 0.0, TurnConfig()).complete
    # no words: the audio decides alone
    assert decide(0.7, None, TurnConfig()).complete
    assert not decide(0.3, None, TurnConfig()).complete


def test_gaze_rule_and_switch():
    cfg = TurnConfig(eagerness="medium", gaze_away_ms=1500)
    away = decide(0.9, 1.0, cfg, gaze_on_screen=False)
    assert away.gaze_away and away.wait_ms == 1500  # thinking: more time
    assert decide(0.9, 1.0, TurnConfig(gaze=False), gaze_on_screen=False).wait_ms == 200
    assert decide(0.9, 1.0, cfg, gaze_on_screen=True).wait_ms == 200
    # looked away at an unfinished pause, then back at the screen: the turn ends at once
    p = Pause(0)
    p.audio_p, p.text_p, p.scored = 0.2, 0.0, True
    d = p.decide(cfg, False, 100)
    assert d.wait_ms > 1500
    assert not p.should_end(400, cfg, False)
    assert p.should_end(400, cfg, True) and p.looked_back
    # the cap ends any pause
    assert Pause(0).should_end(4000, cfg, None)


def test_features_match_pipecats_reference():
    """faster-whisper's extractor + waveform normalisation = Pipecat's vendored features."""
    root = smart_turn_model_path().parents[1]
    spec = importlib.util.spec_from_file_location("wf", root / "_whisper_features.py")
    assert spec is not None and spec.loader is not None
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    model = SmartTurnModel()
    audio = np.random.default_rng(1).normal(0, 0.1, 3 * 16000).astype(np.float32)
    padded = np.pad(audio, (8 * 16000 - audio.size, 0))
    np.testing.assert_allclose(
        model.features(audio), ref.compute_whisper_log_mel_features(padded), atol=1e-4
    )
    p, cpu_ms = model.timed_score(audio)
    assert 0.0 <= p <= 1.0 and cpu_ms > 0
