"""Emotion marks cut from a streamed reply: the result never depends on how the stream was
chunked (every split point, and one character at a time), ordinary text survives, and each
sentence the chunker cuts gets the mark that starts it."""

from __future__ import annotations

import pytest

from server.avatar.emotions import Mark, MarkFilter, expression, marks_prompt, strip_marks
from server.pipelines.chunker import EmotionTrack, SentenceChunker

EMOJI = {"happy": "😊", "sad": "😢", "relaxed": "☺️"}


def run(pieces: list[str], marks: dict[str, str] | None = None) -> tuple[str, list[tuple]]:
    """Feed ``pieces``; the clean text and (offset, emotion) of every mark."""
    f = MarkFilter(marks)
    text, where = "", []
    for out in [p for d in pieces for p in f.push(d)] + f.flush():
        if isinstance(out, Mark):
            where.append((len(text), out.emotion))
        else:
            text += out
    return text, where


def every_split(s: str) -> list[list[str]]:
    return [[s[:i], s[i:j], s[j:]] for i in range(len(s) + 1) for j in range(i, len(s) + 1)]


TAGGED = "[happy] Hello there! [sad] I lost my kite. [Surprised]Oh, wait."


def test_tags_are_cut_wherever_the_stream_splits_them() -> None:
    want = (
        "Hello there! I lost my kite. Oh, wait.",
        [(0, "happy"), (13, "sad"), (29, "surprised")],
    )
    assert run([TAGGED]) == want
    assert run(list(TAGGED)) == want  # one character per chunk
    for pieces in every_split(TAGGED):
        assert run(pieces) == want, pieces


def test_persona_emoji_marks_with_and_without_the_presentation_selector() -> None:
    s = "😊 Good morning! ☺️ Tea is ready. ☺ And cake."
    want = (
        "Good morning! Tea is ready. And cake.",
        [(0, "happy"), (14, "relaxed"), (28, "relaxed")],
    )
    for pieces in every_split(s):
        assert run(pieces, EMOJI) == want, pieces
    # a tag still works for a persona that writes emoji, other emoji stay text
    assert run(["[sad]Oh. 🎈 ok"], EMOJI) == ("Oh. 🎈 ok", [(0, "sad")])


def test_ordinary_brackets_and_unknown_tags() -> None:
    # not a tag: kept as written, even when the stream ends inside it
    for s in ("Item [1] costs 3.", "See [a b].", "An open [bracket", "[", "x [hap"):
        for pieces in every_split(s):
            assert run(pieces) == (s, []), pieces
    # a tag we do not know, where marks go (a sentence start), is never read out and sets
    # no emotion; inside a sentence it is text
    assert run(["[whispers] Come closer."]) == ("Come closer.", [(0, None)])
    assert run(["Done.\n[sighs] Bye."]) == ("Done.\nBye.", [(6, None)])
    for s in ("Press [Enter] to go on.", "Click [OK], then [Save]."):
        for pieces in every_split(s):
            assert run(pieces) == (s, []), pieces
    assert run(["Press [Enter]. [Sad] Oh."]) == ("Press [Enter]. Oh.", [(15, "sad")])
    assert run(["[excited] Yes! [annoyed] No."]) == ("Yes! No.", [(0, "happy"), (5, "angry")])
    assert run(["[기", "쁨] 좋아요! [슬픔]아쉽네요."]) == (
        "좋아요! 아쉽네요.",
        [(0, "happy"), (5, "sad")],
    )


def test_strip_marks_and_expression_and_prompt() -> None:
    assert strip_marks("[happy] Hi! 😢 Bye.", EMOJI) == "Hi! Bye."
    assert strip_marks("A [sad]sentence.") == "A sentence."
    assert expression("happy") == {"happy": 1.0} and expression(None) == {}
    prompt = marks_prompt(EMOJI)
    assert "😊 happy" in prompt and "never spoken" in prompt


@pytest.mark.parametrize("size", [1, 3, 7, 100])
def test_each_sentence_gets_the_mark_that_starts_it(size: int) -> None:
    reply = (
        "[happy] That is wonderful news, I am so glad for you! It really is. "
        "[sad] But I will miss our walks by the river every single morning. "
        "They were the best part of my week."
    )
    f, chunker, track = MarkFilter(), SentenceChunker(), EmotionTrack()
    got: list[tuple[str, str | None]] = []
    for i in range(0, len(reply), size):
        for piece in f.push(reply[i : i + size]):
            if isinstance(piece, Mark):
                track.mark(piece.emotion)
            else:
                track.feed(piece)
                got += [(c, track.chunk(c)) for c in chunker.push(piece)]
    got += [(c, track.chunk(c)) for c in chunker.flush()]
    text = " ".join(c for c, _ in got)
    assert "[" not in text and text.startswith("That is wonderful")
    emotions = [e for _, e in got]
    assert emotions[0] == "happy"
    sad_from = next(i for i, (c, _) in enumerate(got) if "miss" in c)
    assert all(e == "happy" for e in emotions[:sad_from])
    assert all(e == "sad" for e in emotions[sad_from:])  # the unmarked last one keeps it


def test_a_reply_without_marks_has_no_emotion() -> None:
    track = EmotionTrack()
    track.feed("Hello there. How are you?")
    assert [track.chunk("Hello there."), track.chunk("How are you?")] == [None, None]
