"""Proactive speech (issue 20): the persona speaks first on idle, schedules, a webhook and
what the camera and screen show; the user's mode, quiet hours and a cooldown decide whether
it may, and the model decides what (it may call stay_silent)."""
