"""The gaze timeline turn taking reads (server/turns/gaze.py) and the look-back rule of the
end-of-turn policy, on numbers: when a change of gaze counts, and what it does to a pause."""

from __future__ import annotations

from server.turns.endpoint import Pause, TurnConfig, decide
from server.turns.gaze import LOOK_AWAY_MIN_MS, Gaze, GazeTimeline


def test_timeline_knows_a_look_back_from_a_glance():
    g = GazeTimeline()
    assert g.at(0.0, 1.5) is None  # no face yet
    g.update(True, 0.0)
    assert g.at(0.1, 1.5) == Gaze(True, None)  # on screen all along: no look back
    g.update(False, 1.0)
    assert g.at(1.2, 1.5) == Gaze(False)
    g.update(True, 2.0)  # away for 1 s, back at 2.0
    back = g.at(2.25, 1.5)
    assert back is not None and back.on_screen and back.back_ms == 250.0
    g.update(True, 2.5)
    assert g.at(2.5, 1.5) == Gaze(True, 500.0)  # still counted from the moment it came back
    assert g.at(4.1, 1.5) is None  # no face for more than max_age: nothing known
    # a glance away shorter than LOOK_AWAY_MIN_MS is tracker noise, not a look back
    g.update(False, 5.0)
    g.update(True, 5.0 + LOOK_AWAY_MIN_MS / 2000)
    assert g.at(5.3, 1.5) == Gaze(True, None)
    # the gaze as it was when older audio arrived (the voice input may lag behind)
    assert g.at(5.3, 1.5, when=1.5) == Gaze(False)
    assert g.at(5.3, 1.5, when=2.25) == Gaze(True, 250.0)
    assert g.at(5.3, 1.5, when=-1.0) is None  # before the first face


def test_looking_back_ends_an_unfinished_pause():
    cfg = TurnConfig(eagerness="medium")
    unfinished = decide(0.2, 0.0, cfg, gaze_on_screen=True)
    assert unfinished.wait_ms > 3000 and not unfinished.looked_back
    back = decide(0.2, 0.0, cfg, gaze_on_screen=True, looked_back=True)
    assert back.looked_back and back.wait_ms == cfg.complete_ms and not back.complete
    # switched off, or looking away now: no effect
    assert decide(0.2, 0.0, TurnConfig(gaze=False), True, looked_back=True).wait_ms > 3000
    assert decide(0.2, 0.0, cfg, gaze_on_screen=False, looked_back=True).gaze_away
    # a look back during the wait of a pause decided without one ends it too
    p = Pause(0)
    p.audio_p, p.text_p, p.scored = 0.2, 0.0, True
    p.decide(cfg, True, 100)
    assert not p.should_end(400, cfg, True)
    assert p.should_end(400, cfg, True, looked_back=True) and p.looked_back
    # ... even before the words and the model are in: they would not change it
    undecided = Pause(0)
    assert not undecided.should_end(100, cfg, True, looked_back=True)
    assert undecided.should_end(200, cfg, True, looked_back=True) and undecided.decision is None
    assert not Pause(0).should_end(400, cfg, True)
