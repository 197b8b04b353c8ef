"""server.jsonout: whatever an event holds, the text sent is strict JSON that is valid UTF-8."""

from __future__ import annotations

import json
import math

from server import jsonout


def test_plain_events_are_unchanged():
    ev = {"type": "response.text.delta", "delta": "안녕하세요 😀", "n": [1, 2.5, None, True]}
    assert jsonout.dumps(ev) == json.dumps(ev, ensure_ascii=False)


def test_non_finite_floats_become_null_instead_of_nan_tokens():
    ev = {"type": "analysis.face", "emotion_scores": {"happy": math.nan, "sad": 0.25}}
    text = jsonout.dumps({**ev, "x": [math.inf, -math.inf]})
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {
        "type": "analysis.face",
        "emotion_scores": {"happy": None, "sad": 0.25},
        "x": [None, None],
    }


def test_lone_surrogates_are_replaced_and_pairs_kept():
    text = jsonout.dumps({"type": "pong", "id": "a\ud800b", "ok": "\ud83d\ude00", "\udc00k": 1})
    text.encode("utf-8")  # would raise UnicodeEncodeError in the socket writer
    assert json.loads(text) == {"type": "pong", "id": "a\ufffdb", "ok": "😀", "\ufffdk": 1}


def test_flat_frames_are_the_same_json_and_a_lone_surrogate_is_replaced():
    delta = {"type": "response.output_text.delta", "output_index": 0, "delta": '안녕 😀 "x"'}
    assert json.loads(jsonout.dumps_flat(delta)) == delta
    text = jsonout.dumps_flat({"type": "response.text.delta", "delta": "a\ud800b"})
    text.encode("utf-8")
    assert json.loads(text) == {"type": "response.text.delta", "delta": "a\ufffdb"}
