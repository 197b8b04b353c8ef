"""Speech in and out: TTS (with its offline fallback and cache, a user's cloned voice
reference), the VAD, STT (local, found or downloaded in the background, or an
OpenAI-compatible server) and the end-of-turn model. Mixed into Services."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.config import secret
from server.models.ensure import ensure_model
from server.models.manager import locate
from server.providers.cpu_info import cpu_model, simd_flags
from server.providers.stt import STTError, WhisperSTT
from server.providers.stt_remote import RemoteSTT
from server.providers.tts.base import TTSProvider
from server.providers.vad import SileroVAD, VADUnavailable
from server.services_base import ServicesBase, log
from server.turns.model import SmartTurnModel, TurnModelUnavailable


class VoiceServices(ServicesBase):
    vad: SileroVAD | None
    stt: WhisperSTT | RemoteSTT | None
    tts: TTSProvider | None
    turn_model: SmartTurnModel | None
    _turn_model_loading: bool

    def voice_path(self, user_id: str) -> Path:
        """Where a user's voice reference (for cloning) lives."""
        return self.settings.data_dir / "voices" / f"{user_id}.wav"

    async def load_voice(self, user_id: str | None) -> bytes | None:
        path = self.voice_path(user_id or "local")
        return await asyncio.to_thread(path.read_bytes) if path.is_file() else None

    def make_tts(self) -> TTSProvider:
        from server.providers.tts.espeak import EspeakTTS
        from server.providers.tts.fallback import FallbackTTS

        s = self.settings
        offline = EspeakTTS()
        primary: TTSProvider
        if s.tts_provider == "espeak":
            return offline
        if s.tts_provider == "fish":
            from server.providers.tts.fish import FishSpeechTTS

            if not s.fish_speech_url:
                raise ValueError("TTS_PROVIDER=fish needs FISH_SPEECH_URL")
            primary = FishSpeechTTS(
                s.fish_speech_url, secret(s.fish_speech_api_key), reference_loader=self.load_voice
            )
        else:
            from server.providers.tts.edge import EdgeTTS

            primary = EdgeTTS()
        if s.tts_fallback:
            primary = FallbackTTS(
                primary,
                offline,
                on_degraded=lambda why: self.set_status("tts", "degraded", why),
                on_recovered=lambda: self.set_status("tts", "ready"),
            )
        if s.tts_cache_max_bytes <= 0:
            return primary
        from server.providers.tts.cache import CachedTTS

        return CachedTTS(
            primary,
            ttl_s=s.tts_cache_ttl_s,
            max_bytes=s.tts_cache_max_bytes,
            scope=self._voice_reference_scope if s.tts_provider == "fish" else None,
            on_lookup=self._count_tts_lookup,
        )

    def _voice_reference_scope(self, user_id: str | None) -> str:
        """A cloned voice's audio depends on the user's reference (and its version)."""
        path = self.voice_path(user_id or "local")
        try:
            return f"{user_id}:{path.stat().st_mtime_ns}"
        except OSError:
            return f"{user_id}:none"

    def _count_tts_lookup(self, user_id: str | None, hit: bool) -> None:
        name = "tts_cache_hits" if hit else "tts_cache_misses"
        self.background(self.store.incr_usage(user_id or "local", {name: 1}))

    async def _start_voice(self) -> None:
        try:
            self.tts = self.make_tts()
            self.set_status("tts", "ready")
        except (ValueError, OSError) as e:
            self.set_status("tts", "error", str(e))
        vad_path = await ensure_model(self.settings, "vad", "stt", self.status, lambda st, d: None)
        try:
            if vad_path is None:
                raise VADUnavailable(locate(self.settings, "vad").message())
            self.vad = await asyncio.to_thread(
                SileroVAD, vad_path, end_by_energy=self.settings.vad_end_by_energy
            )
        except VADUnavailable as e:
            self.set_status("stt", "error", f"VAD: {e}")
            return
        s = self.settings
        if not s.stt_enabled:
            self.set_status("stt", "disabled", "STT_ENABLED=false: speech is not transcribed")
            return
        if s.stt_provider == "openai":
            self._start_remote_stt()
            return
        self.set_status("stt", "loading")
        state = locate(s, "stt")
        # Built now (sessions opened while the model downloads hold it), loaded once the
        # files are there: an explicit or installed folder, never a hub download by name.
        self.stt = WhisperSTT(
            state.path,
            device=s.stt_device,
            compute_type=s.stt_compute_type,
            cpu_threads=s.stt_cpu_threads,
            window_min_s=s.stt_window_min_s or None,
            partial_window_min_s=s.stt_partial_window_min_s or None,
            final_beam_size=s.stt_final_beam_size,
            quick_final_logprob=s.turn_quick_final_logprob,
        )
        self.background(self._load_stt(local=True))

    def turn_model_now(self) -> SmartTurnModel | None:
        """The end-of-turn model, loaded in the background on first use (start-up never
        waits for it); until then, or if it cannot load, semantic turns decide on the words
        and the cap."""
        if self.turn_model is None and not self._turn_model_loading:
            self._turn_model_loading = True
            self.background(self.load_turn_model())
        return self.turn_model

    async def load_turn_model(self) -> None:
        self._turn_model_loading = True
        try:
            self.turn_model = await asyncio.to_thread(SmartTurnModel)
        except TurnModelUnavailable as e:
            log.warning("turn_model_unavailable", error=str(e))

    def _start_remote_stt(self) -> None:
        s = self.settings
        if not s.stt_base_url:
            self.set_status(
                "stt", "error", "STT_PROVIDER=openai needs STT_BASE_URL (an OpenAI-compatible /v1)"
            )
            return
        self.stt = RemoteSTT(
            s.stt_base_url,
            secret(s.stt_api_key),
            s.stt_remote_model,
            timeout_s=s.stt_timeout_s,
            max_concurrency=s.stt_max_concurrency,
        )
        self.stt.on_health = self._remote_stt_health
        self.set_status("stt", "loading")
        self.background(self._load_stt())

    def _remote_stt_health(self, problem: str | None) -> None:
        """The transcription server started or stopped answering: the status follows it
        (a box down at start-up is ready once a request gets through)."""
        if problem is None:
            self.set_status("stt", "ready")
            log.info("stt_remote_answering")
        else:
            self.set_status("stt", "error", problem)
            log.warning("stt_remote_failing", error=problem)

    async def _load_stt(self, *, local: bool = False) -> None:
        """Load the STT model; a local one is first found or downloaded (with progress)."""
        assert self.stt is not None
        if local:
            report = self._reporter("stt")
            if await ensure_model(self.settings, "stt", "stt", self.status, report) is None:
                return
        try:
            await self.stt.aload()
            self.set_status("stt", "ready")
            if isinstance(self.stt, WhisperSTT):  # what the pause decode's speed depends on
                log.info(
                    "stt_cpu",
                    compute_type=self.stt.compute_type,
                    threads=self.stt.cpu_threads,
                    cpu=cpu_model(),
                    simd=" ".join(simd_flags()) or "unknown",
                )
        except STTError as e:
            self.set_status("stt", "error", str(e))
            log.warning("stt_unavailable", error=str(e))
        except Exception as e:  # a broken install: a missing module, a bad native library
            self._broken("stt", e, "STT_PROVIDER=openai with STT_BASE_URL")
