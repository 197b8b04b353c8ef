"""Turn-taking: when the user is done (end-of-turn model + text cues + gaze), which sounds
over a reply are not interruptions (backchannels), the companion's own voice removed from
the mic (echo canceller), and replies started before the turn is confirmed (preemptive).

``server/pipelines/audio.py`` asks these modules; they never call back into the hub."""
