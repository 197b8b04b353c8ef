"""The pause decode's beam (issue 19, "end of speech -> first reply audio"): decode time and
word accuracy of the final Whisper decode at beam 1 / 2 / 5, in process, on the audio the
pause decode sees.

Why: the decode that starts 96 ms into a pause usually becomes the final transcript, and the
turn's reply waits for it; beam search is most of its time. This measures what a smaller
beam costs in words.

Audio: espeak-ng sentences (English, and Korean reported), each with 300 ms of silence
before and two trailing paddings (the VAD's cut: 30 ms and 200 ms), a little room noise
(-60 dBFS), through ``WhisperSTT`` exactly as the server builds it (5 s window floor,
temperature fallback), the Whisper base model of the tests.

Rows per beam: decode ms p50 / p95 (interleaved, so load hits every beam alike), exact
transcripts (normalised words equal to the text), word error rate (mean), transcripts that
differ from beam 5's.

``--floors 5,3``: also the encoder window's floor (``STT_WINDOW_MIN_S``, the same for
partials: ``STT_PARTIAL_WINDOW_MIN_S``), each beam at each floor; "differ" is then against
the largest beam at the largest floor.

``--sure -0.3,-0.4``: sure quick words (``TURN_QUICK_FINAL_LOGPROB``): the greedy pass as
``WhisperSTT.transcribe_twice`` runs it, taken as the final words when its mean token
log-probability is above the threshold (and it is no repetition loop); per threshold, how
many clips skip the beam pass and how many of those differ from the largest beam's words.

Usage: ``uv run python -m bench.stt_beam [--beams 1,2,5] [--floors 5] [--sure -0.3]
[--repeat 1]`` (about 2 min per floor)."""

from __future__ import annotations

import argparse
import os
import re

import numpy as np

from bench.stats import p50_p95
from bench.turn_phrases import EN, KO, PAUSED
from server.providers.stt import WhisperSTT
from tests.speech import speak, whisper_base_dir, with_silence

MORE_EN = [
    "The quick brown fox jumps over the lazy dog.",
    "Can you play some relaxing music while I cook dinner?",
    "I need to buy eggs, milk and bread on the way home.",
    "How far is the nearest train station from here?",
    "Remind me to water the plants every Sunday morning.",
    "What did you think about the movie we watched yesterday?",
    "Let's meet at the coffee shop near the park at noon.",
    "My computer has been running really slowly all week.",
    "Tell me a short story about a dragon who loves books.",
    "I forgot my umbrella and now I am completely soaked.",
    "Could you set an alarm for six thirty tomorrow?",
    "The meeting has been moved to Thursday afternoon.",
    "I think I will go to bed early tonight.",
    "Do you know any good recipes for chicken soup?",
    "We should plan a trip to the mountains this summer.",
    "Please read me the latest news about the football game.",
    "My sister just started a new job at the hospital.",
    "How many cups of water should I drink every day?",
    "I'm feeling a bit tired, so let's keep this short.",
    "Turn off the music and open the window, please.",
    "Where did I leave my keys this morning?",
    "Thank you for helping me with my homework yesterday.",
    "It's going to rain all weekend, isn't it?",
    "Wait, stop please, I have a question.",
    "What time is it in Seoul right now?",
]
MORE_KO = ["그래서 제가 생각하기에는", "안녕하세요, 만나서 반갑습니다.", "지금 몇 시예요?"]
PADS_MS = (30, 200)
NOISE_DBFS = -60


def words(text: str) -> list[str]:
    """Lower-case words without punctuation ("six thirty" and "6:30" stay different)."""
    return re.sub(r"[^\w\s']", " ", text.casefold()).replace("'", "").split()


def wer(ref: list[str], hyp: list[str]) -> float:
    """Word error rate: edit distance over the reference's length."""
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[-1] / max(len(ref), 1)


def cer(ref: str, hyp: str) -> float:
    """Character error rate on the text without spaces or punctuation (Korean)."""
    strip = lambda s: re.sub(r"[\W_]", "", s)  # noqa: E731
    return wer(list(strip(ref)), list(strip(hyp)))


def clips() -> list[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(19)
    texts = [(t, "en-us") for t in EN + MORE_EN] + [(a + " " + b, "en-us") for a, b in PAUSED]
    texts += [(a, "en-us") for a, _ in PAUSED] + [(t, "ko") for t in KO + MORE_KO]
    out = []
    for text, voice in texts:
        speech = speak(text, voice)
        for pad in PADS_MS:
            audio = with_silence(speech, 300, pad)
            audio = audio + rng.normal(0, 10 ** (NOISE_DBFS / 20), audio.size).astype(np.float32)
            out.append((text, voice, audio))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--beams", default="1,2,5")
    ap.add_argument("--floors", default="5", help="encoder window floors (s), e.g. 5,3")
    ap.add_argument("--sure", default="", help="quick-words thresholds, e.g. -0.3,-0.4")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    floors = [float(f) for f in args.floors.split(",")]
    beams = [(int(b), f) for f in floors for b in args.beams.split(",")]
    stt = WhisperSTT(whisper_base_dir(), local_files_only=True)
    stt.load()
    data = clips()
    stt.transcribe(data[0][2], "en")  # warm-up
    ms: dict[tuple[int, float], list[float]] = {b: [] for b in beams}
    texts: dict[tuple[int, float], list[str]] = {b: [] for b in beams}
    for rep in range(args.repeat):
        for _text, voice, audio in data:
            lang = "ko" if voice == "ko" else "en"
            for b in beams if rep % 2 == 0 else beams[::-1]:
                t = stt.transcribe(audio, lang, beam_size=b[0], window_s=b[1])
                ms[b].append(t.elapsed_s * 1000)
                if rep == 0:
                    texts[b].append(t.text)
    base = max(beams, key=lambda b: (b[1], b[0]))
    en = [i for i, (_, v, _) in enumerate(data) if v != "ko"]
    ko = [i for i, (_, v, _) in enumerate(data) if v == "ko"]
    print(f"load average {os.getloadavg()[0]:.1f}; {len(en)} English, {len(ko)} Korean clips")
    print(
        f"{'beam':>4} | floor | decode ms p50 / p95, EN | KO | EN exact | EN WER | KO CER"
        f" | differ from beam {base[0]} at {base[1]:g} s"
    )
    for b in beams:
        exact = sum(words(texts[b][i]) == words(data[i][0]) for i in en)
        w = np.mean([wer(words(data[i][0]), words(texts[b][i])) for i in en])
        c = np.mean([cer(data[i][0], texts[b][i]) for i in ko]) if ko else float("nan")
        differ = sum(words(texts[b][i]) != words(texts[base][i]) for i in range(len(data)))
        n = len(data)
        en_ms = [m for k, m in enumerate(ms[b]) if k % n in en]
        ko_ms = [m for k, m in enumerate(ms[b]) if k % n in ko]
        print(
            f"{b[0]:>4} | {b[1]:>5g} | {p50_p95(en_ms):>22} | {p50_p95(ko_ms):>11}"
            f" | {exact:>3} / {len(en)} | {w:6.3f} | {c:6.3f} | {differ} of {n}"
        )
    for b in beams:
        if b == base:
            continue
        for i, (text, _, _) in enumerate(data):
            if words(texts[b][i]) != words(texts[base][i]):
                print(f"  {b}: {texts[b][i]!r} | {base}: {texts[base][i]!r} | {text!r}")
    if args.sure:
        sure_words(stt, data, texts[base], [float(x) for x in args.sure.split(",")])


def sure_words(stt: WhisperSTT, data: list, finals: list[str], thresholds: list[float]) -> None:
    """Greedy words taken as final (``TURN_QUICK_FINAL_LOGPROB``) against the beam's."""
    greedy = [
        stt.transcribe(a, "ko" if v == "ko" else "en", partial=True, beam_size=1)
        for _, v, a in data
    ]
    print(f"{'sure above':>10} | skip the beam | of those, words differ from the beam")
    for th in thresholds:
        stt.quick_final_logprob = th
        taken = [i for i, g in enumerate(greedy) if stt._sure(g)]
        differ = [i for i in taken if words(greedy[i].text) != words(finals[i])]
        print(f"{th:>10g} | {len(taken):>4} of {len(data)} | {len(differ)}")
        for i in differ:
            lp = greedy[i].avg_logprob or 0.0
            print(f"  {lp:.3f} greedy {greedy[i].text!r} | beam {finals[i]!r}")


if __name__ == "__main__":
    main()
