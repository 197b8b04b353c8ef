"""What the simulated user says in the turn-taking benchmarks (bench/voice_turns.py and the
in-process ones, bench/turn_model.py, bench/stt_beam.py, bench/stt_cpu.py): complete
sentences in English and Korean, sentences with a thinking pause in the middle, backchannels,
stop phrases and a question said over the reply's echo."""

from __future__ import annotations

EN = [
    "Please turn on all the kitchen lights now.",
    "Could you remind me to call my sister about the trip on Friday?",
    "I spent the whole afternoon at the library reading about big ships.",
    "What is the weather going to be like tomorrow morning?",
    "My friend and I walked along the river this morning.",
]
KO = ["오늘 날씨가 정말 좋네요.", "내일 아침에 같이 산책하러 갈까요?"]
PAUSED = [
    ("I would like to book a table for two at", "seven in the evening, please."),
    ("Tomorrow I have to go to the dentist and", "then pick up my brother from school."),
    ("Could you tell me how long it takes to get to", "the airport from here by train?"),
    ("My favourite kind of music is", "old jazz from the fifties."),
    ("I was thinking that maybe we could", "watch a movie together tonight."),
]
BACKCHANNELS = ["Mm-hmm.", "Yeah.", "Uh-huh.", "Right.", "Okay."]
STOPS = ["Wait, stop.", "Stop please.", "Hold on.", "Wait a second.", "Stop."]
USER_OVER_ECHO = "What time is it in Seoul right now?"
