"""Settings from the environment (and an optional .env file). Every field is documented in
.env.example; names map 1:1 to upper-case environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.url_settings import HttpUrlSetting

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    # --- server / storage -------------------------------------------------------------
    data_dir: Path = Path("data")
    personas_dir: Path = ROOT / "personas"
    static_dir: Path = ROOT / "static"
    default_persona: str = "이서아"
    mongodb_uri: SecretStr | None = None
    mongodb_db: str = "desktopmate"
    # how long a MongoDB call waits for a reachable server (and the start-up check)
    mongodb_timeout_s: float = Field(default=5.0, gt=0, le=120)
    auth_tokens: SecretStr | None = Field(
        default=None,
        description="'token:user_id,...'. Unset = local mode: the token is the user's name.",
    )
    cors_origins: str = ""  # older name for ALLOWED_ORIGINS; both lists are merged

    # --- web security: who may call from a browser (server/security.py) ----------------
    public_hosts: str = ""  # Host names besides loopback, comma-separated; "*" = any
    allowed_origins: str = ""  # browser origins besides the server's own and Tauri's
    allow_insecure_local_bind: bool = False  # local mode on a non-loopback address

    # --- JWT auth (server/auth.py): HS256 secret and/or a JWKS URL (RS256/ES256) ---------
    jwt_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None  # required "aud" when set (Supabase: authenticated)
    jwt_issuer: str | None = None  # required "iss" when set
    jwt_leeway_s: float = Field(default=10.0, ge=0.0)  # clock skew allowed on exp/nbf
    jwt_jwks_timeout_s: float = Field(default=5.0, gt=0.0)
    jwt_jwks_cache_s: float = Field(default=300.0, gt=0.0)  # keys are re-read after this

    # --- durability and crash recovery (docs/protocol.md "Crash recovery") --------------
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    instance_id: str = ""  # who serves a live session; unset = this machine's host name
    session_heartbeat_s: float = Field(default=30.0, ge=0.0)  # 0: no heartbeat, no sweep

    # --- many replicas (server/replicas.py; README.md "Many replicas") ------------------
    replica_mode: Literal["single", "multi"] = "single"  # multi: shared stores required
    # how often a replica asks the store which of its live sessions were resumed elsewhere
    session_takeover_check_s: float = Field(default=1.0, ge=0.0)  # 0: never
    # mem0's vector store: embedded Qdrant on disk (default), a Qdrant server, pgvector or a
    # Chroma server
    memory_vector_store: Literal["qdrant", "pgvector", "chroma"] = "qdrant"
    memory_qdrant_url: HttpUrlSetting = ""  # a Qdrant server (http://qdrant:6333); "": embedded
    memory_qdrant_api_key: SecretStr | None = None
    memory_pgvector_url: SecretStr | None = None  # postgresql://user:pass@host:5432/db
    memory_pgvector_index: Literal["hnsw", "none"] = "hnsw"  # none: exact scans, no index
    memory_chroma_url: HttpUrlSetting = ""  # a Chroma server (http://chroma:8000)
    memory_collection: str = "desktopmate_memories"

    # --- logging ----------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    log_pii: bool = False
    # the JSON-lines log file beside the console (server/logging.py), rotated by size
    log_file_path: str = ""  # unset: DATA_DIR/logs/server.log; "off": console only
    log_max_bytes: int = Field(default=10_485_760, ge=1024)
    log_backup_count: int = Field(default=5, ge=0)

    # --- LLM --------------------------------------------------------------------------
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_temperature: float = 0.7
    llm_max_tokens: int = 512
    llm_timeout_s: float = 60.0
    llm_max_retries: int = 2  # retries after the first try: 3 tries in all
    history_messages: int = 24  # recent messages in each prompt (and kept in the graph state)

    # --- text streaming cadence (issue 16: server/providers/sse.py Cadence) --------------
    # After a reply's first text delta (never held), its text is read from the model and
    # sent at most every this many ms, several tokens a delta: one wake-up and one frame
    # for several tokens. 0: each token as it arrives. Replies with audio keep per-token flow.
    stream_flush_ms: float = Field(default=0.0, ge=0, le=1000)

    # --- VLM (defaults to the LLM endpoint) --------------------------------------------
    vlm_base_url: str | None = None
    vlm_api_key: SecretStr | None = None
    vlm_model: str | None = None
    vlm_enabled: bool = True  # false: never describe screens, even via the LLM endpoint
    vlm_timeout_s: float = 30.0

    # --- screen perception ------------------------------------------------------------
    vision_wait_s: float = 3.0  # a screen question waits this long for a fresh description
    vlm_min_interval_s: float = 2.0  # per session, between screen descriptions
    # Mean absolute difference of 64x36 gray thumbnails, as a fraction of full scale (0..1)
    # (0.04 ~ 10 grey levels on average); a 1/16 cell changing by 0.15 counts too.
    screen_change_threshold: float = Field(default=0.04, gt=0.0, le=1.0)
    screen_capture: bool = False  # desktop mode: capture this machine's screen with mss
    screen_capture_interval_s: float = Field(default=2.0, gt=0.0)
    screen_monitor: int = Field(default=1, ge=0)  # mss index: 0 = all monitors, 1 = primary
    vision_cache_size: int = Field(default=256, ge=0)  # descriptions kept by image hash
    vision_cache_ttl_s: float = Field(default=600.0, gt=0.0)  # a cached description's life
    max_image_bytes: int = 8_000_000  # decoded size limit for POST /v1/analyze/screen

    # --- screen tasks (server/tasks, seed 001) -----------------------------------------
    task_max_retries: int = Field(default=3, ge=0, le=10)  # MAX_RETRIES per step
    task_screen_wait_s: float = Field(default=5.0, gt=0.0)  # wait for the after-action screen
    task_change_threshold: float = Field(default=0.01, gt=0.0, le=1.0)  # mean diff: changed
    task_cell_threshold: float = Field(default=0.03, gt=0.0, le=1.0)  # or one 1/144 cell
    task_max_chars: int = Field(default=500, ge=1)  # task description length
    task_keep_screenshots: bool = True  # keep each step's screen under DATA_DIR/tasks/

    # --- screen tasks, desktop mode (server/tasks/desktop.py) ------------------------------
    task_desktop_execute: bool = False  # the server clicks and types approved actions itself
    task_desktop_settle_ms: int = Field(default=2000, ge=0, le=10_000)  # wait for a change

    # --- MCP tools and approvals (server/agent/mcp.py, approvals.py; issue 20) ---------
    mcp_config: Path | None = None  # {"mcpServers": {...}} JSON file; unset: no MCP tools
    mcp_call_timeout_s: float = Field(default=15.0, gt=0.0)  # one MCP tool call
    mcp_connect_timeout_s: float = Field(default=10.0, gt=0.0)  # connect + list tools
    mcp_reconnect_s: float = Field(default=30.0, gt=0.0)  # retry a down server / ping a live one
    mcp_reconnect_max_s: float = Field(default=300.0, gt=0.0)  # retries back off up to this
    approval_timeout_s: float = Field(default=120.0, gt=0.0)  # unanswered: rejected (expired)
    # a screen task's approval nobody expired on time (its runner gone: a restart, or the
    # session left this replica and nobody picked the task up) is expired this much later
    task_expiry_grace_s: float = Field(default=10.0, gt=0.0, le=600.0)

    # --- approvals across replicas (server/agent/approval_fleet.py) ----------------------
    # REPLICA_MODE=multi: a turn waiting for a decision also reads the store this often
    approval_poll_s: float = Field(default=1.0, gt=0.0, le=60.0)

    # --- a screen task's lease across replicas (server/tasks/lease.py) --------------------
    # REPLICA_MODE=multi: the server holding a running task renews its lease every third of
    # this; a lease this old means that server died, and another pauses the task
    task_lease_s: float = Field(default=6.0, ge=1.0, le=300.0)

    # --- proactive speech (server/initiative; issue 20) --------------------------------
    proactive_mode: Literal["off", "quiet", "normal", "chatty"] = "normal"  # default per user
    proactive_idle_s: float = Field(default=300.0, gt=0.0)  # normal mode; quiet x2, chatty /2
    proactive_cooldown_s: float = Field(default=600.0, ge=0.0)  # between two proactive turns
    proactive_quiet_hours: str = ""  # "23:00-07:00" in PROACTIVE_TIMEZONE: never speak first
    proactive_timezone: str = "UTC"  # IANA name; a user's settings may name their own
    proactive_tick_s: float = Field(default=1.0, gt=0.0)  # how often triggers are checked
    proactive_focus_s: float = Field(default=3000.0, gt=0.0)  # unbroken focus: suggest a break
    proactive_away_s: float = Field(default=120.0, gt=0.0)  # away this long, then back: greet
    proactive_error_screen_s: float = Field(default=30.0, gt=0.0)  # error dialog shown this long
    proactive_negative_s: float = Field(default=20.0, gt=0.0)  # strong negative affect this long
    # "strong": the face analysis' confidence in the negative emotion (its share, 0..1)
    proactive_negative_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    proactive_dir: Path = ROOT / "personas" / "proactive"  # trigger prompts and schedules

    # --- long-term memory (mem0) ------------------------------------------------------
    memory_enabled: bool = True
    embed_base_url: str | None = None
    embed_api_key: SecretStr | None = None
    embed_model: str = "text-embedding-3-small"
    embed_dims: int = 1536
    memory_search_limit: int = 5
    memory_max_concurrent_adds: int = 3
    worker_threads: int = 32

    # --- the acting agent: tool calls and the memory it manages (server/agent/tools/) ---
    llm_tools: Literal["auto", "on", "off"] = "auto"  # auto: fall back when tools are refused
    agent_max_tool_rounds: int = Field(default=4, ge=1, le=20)  # model -> tools -> model loops
    agent_tool_timeout_s: float = Field(default=15.0, gt=0.0)  # one tool call's time limit
    memory_tiers: bool = True  # fresh/old memory tiers with sequential probing
    memory_old_after_days: float = Field(default=30.0, gt=0.0)  # cleanup moves older to old
    memory_cleanup_interval_s: float = Field(default=86_400.0, ge=0.0)  # 0: never in-server
    memory_vocabulary_max: int = Field(default=200, ge=1)  # categories the vocabulary may hold
    memory_list_max: int = Field(default=500, ge=1)  # GET /v1/memories returns at most this

    # --- voice in (VAD + STT) ----------------------------------------------------------
    stt_enabled: bool = True  # false: no speech recognition (utterances get stt_unavailable)
    stt_model: str = "base"
    stt_device: str = "cpu"
    stt_compute_type: str = "int8"  # float32: 2x slower on AVX2 (bench/stt_cpu.py)
    stt_cpu_threads: int = 0  # 0: one per core, at most 4
    stt_language: str | None = None
    stt_partial_interval_ms: int = 700
    stt_max_segment_s: float = 30.0
    stt_window_min_s: float = 5.0  # encoder window floor; 0 = Whisper's full 30 s window
    stt_partial_window_min_s: float = 5.0  # the same for partials; 0 = STT_WINDOW_MIN_S
    # --- the final decode's beam (issue 19: end of speech -> first reply audio) ----------
    # The pause's decode is a final decode and the reply waits for it: beam 2 is ~20% faster
    # and keeps beam 5's words on clean speech, but loses words over echo and noise
    # (providers/stt.py); 1 loses words even on clean speech (bench/stt_beam.py).
    stt_final_beam_size: int = Field(default=5, ge=1, le=10)
    # --- remote speech recognition (STT_PROVIDER=openai) -------------------------------
    stt_provider: Literal["local", "openai"] = "local"
    stt_base_url: HttpUrlSetting | None = None  # OpenAI-compatible /v1: /audio/transcriptions
    stt_api_key: SecretStr | None = None
    stt_remote_model: str = "whisper-1"
    stt_timeout_s: float = Field(default=30.0, gt=0.0)
    stt_max_concurrency: int = Field(default=4, ge=1)  # requests in flight per process
    vad_threshold: float = 0.5
    vad_min_speech_ms: int = 250
    vad_silence_ms: int = 500
    vad_prefix_pad_ms: int = 300
    # --- where the VAD places the end of speech (issue 19 latency, bench/vad_lag.py) ------
    vad_end_by_energy: bool = True  # the pause starts where the voice's energy fell
    barge_in_min_ms: int = 300
    audio_queue_frames: int = 500

    # --- turn taking (server/turns/, issue 19) ------------------------------------------
    turn_detection: Literal["semantic", "server_vad", "none"] = "semantic"
    turn_eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    turn_complete_silence_ms: int = Field(default=200, ge=0, le=2000)
    turn_gaze: bool = True  # the camera's gaze lengthens / shortens the wait at a pause
    turn_gaze_away_ms: int = Field(default=1500, ge=0, le=8000)
    # a client that sends no audio in a pause: its silence counts in wall time only after
    # this long (shorter gaps are network stalls whose audio is still coming)
    turn_stall_grace_ms: int = Field(default=500, ge=0, le=5000)
    # words: speech over a reply interrupts only when its words do (not "mm-hm", not the
    # reply's own echo); duration: any BARGE_IN_MIN_MS of speech does
    barge_in_mode: Literal["words", "duration"] = "words"
    echo_cancel: bool = True  # remove the reply's own audio from the mic (WebRTC AEC3)

    # --- preemptive generation (server/hub/preemptive.py, issue 19) ----------------------
    # semantic turns: the reply starts on a pause's words before the turn is confirmed,
    # held unseen until the turn ends with the same words (else discarded and counted)
    turn_preemptive: bool = True

    # --- quick words for the preemptive start (pipelines/pause_decode.py, issue 19) -------
    # semantic turns: a pause's decode starts this far into it; it first decodes greedily
    # and offers those words to the preemptive start, then decodes the final words (beam)
    # from the same encoder output: the LLM's wait runs during the final decode
    turn_words_after_ms: int = Field(default=96, ge=32, le=500)
    turn_quick_words: bool = True
    # quick words whose mean token log-probability is above this are the final words too:
    # greedy was sure: on bench/stt_beam.py's 90 espeak clips, 35 at -0.3 (0 differ from the
    # beam), 57 at -0.4 (1 differs); -0.4 cut "a table for two at" into "a table for 2." in
    # one full-suite run (espeak's audio varies), so -0.3. 0 = always decode with the beam
    turn_quick_final_logprob: float = Field(default=-0.3, le=0.0)

    # --- model files (server/models: `desktopmate models download|list|import`) ----------
    models_dir: Path | None = None  # unset: DATA_DIR/models
    model_cache_dir: Path | None = None  # older name of MODELS_DIR, still honoured
    models_auto_download: bool = True  # fetch a missing model on first use (else: say how)
    models_mirror_url: str | None = None  # files from {url}/{stt/base|vad|face}/{file} instead
    models_download_timeout_s: float = Field(default=30.0, gt=0.0)  # connect/read, per request

    # --- sidecar (`desktopmate serve --sidecar`) ------------------------------------------
    # Set per launch by --sidecar (random) and then required on every request.
    sidecar_token: SecretStr | None = None

    # --- voice out (TTS) --------------------------------------------------------------
    tts_provider: Literal["edge", "espeak", "fish"] = "edge"
    tts_fallback: bool = True
    default_output_audio: Literal["mp3", "pcm16", "none"] = "mp3"
    fish_speech_url: str | None = None
    fish_speech_api_key: SecretStr | None = None
    tts_max_chars: int = 2000
    voice_max_bytes: int = 10_000_000
    played_report_wait_ms: int = 800
    # --- TTS audio cache (seed 004): whole sentences, keyed by provider, voice and text ---
    tts_cache_ttl_s: float = Field(default=86_400.0, gt=0.0)
    tts_cache_max_bytes: int = Field(default=32 * 1024 * 1024, ge=0)  # 0 turns it off
    # --- the reply's first audio (issue 19 latency): speak after a few words, not a sentence
    # unset: the engine's own (espeak-ng 2, edge-tts and Fish Speech 4); 0: clause/sentence
    tts_first_chunk_words: int | None = Field(default=None, ge=0, le=50)
    playback_grace_ms: int = 300

    # --- face perception --------------------------------------------------------------
    face_enabled: bool = True  # false: no server-side model (client landmarks still work)
    face_model_path: Path | None = None  # unset: cache dir, downloaded once from the URL
    face_model_url: str = (
        "https://storage.googleapis.com/mediapipe-models/face_landmarker/"
        "face_landmarker/float16/1/face_landmarker.task"
    )
    face_events_per_s: float = Field(default=4.0, gt=0.0)  # analysis.face per session
    face_sample_interval_ms: int = Field(default=1000, ge=100)  # stored face timeline step
    camera_max_fps: float = Field(default=15.0, gt=0.0)  # camera frames analysed per second
    face_affect_max_age_s: float = 5.0  # older face readings are not shown to the persona
    voice_analyze_max_s: float = 120.0  # POST /v1/voice/analyze decodes at most this much

    # --- WebSocket limits -------------------------------------------------------------
    ws_max_text_bytes: int = 65_536
    ws_max_binary_bytes: int = 1_048_576
    ws_max_messages_per_s: float = 200.0
    ws_outbound_queue: int = 256
    ws_send_timeout_s: float = 10.0
    ws_compression: bool = False  # permessage-deflate: saves bandwidth, costs CPU per frame
    max_input_chars: int = 4000
    # Frames a little over a limit get `message_too_large` from the session; only frames
    # beyond the largest limit + this margin are closed by the transport with 1009.
    ws_transport_margin_bytes: int = Field(default=65_536, ge=0)

    # --- Outbound text deltas (lean turns) -------------------------------------------
    # Deltas of one reply still waiting in the outbound queue are sent as one frame of at
    # most this many characters (0: one frame per delta). Nothing waits for this: an idle
    # writer sends each delta at once.
    ws_delta_coalesce_chars: int = Field(default=4096, ge=0)

    # --- Event loop (lean turns) -------------------------------------------------------
    # auto: uvloop where it is installed (Linux, macOS), else asyncio's own loop.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"

    # --- LLM connection pool (one per process, shared by every session's turns) --------
    # An idle connection is kept this long for the next turn: a new one costs a TCP (and,
    # against a remote API, a TLS) handshake. Below the usual 60 s idle limit of load
    # balancers, so the server rarely closes one as it is reused.
    llm_keepalive_s: float = Field(default=45.0, gt=0.0)
    llm_max_connections: int = Field(default=256, ge=1)  # streams at once; more wait their turn

    # --- model services fail honestly (docs/protocol.md, "Errors and warnings") ----------
    llm_first_token_timeout_s: float = Field(default=30.0, gt=0.0)  # from the turn's start
    llm_stream_idle_timeout_s: float = Field(default=20.0, gt=0.0)  # between streamed pieces
    memory_search_timeout_s: float = Field(default=5.0, gt=0.0)  # then reply without memories
    memory_add_timeout_s: float = Field(default=120.0, gt=0.0)  # a background save gives up
    memory_rest_timeout_s: float = Field(default=10.0, gt=0.0)  # /v1/memories then answers 503

    # --- other wire protocols (docs/protocol-dmp.md, docs/protocol-realtime.md) ---------
    dmp_ping_interval_s: float = Field(default=30.0, gt=0.0)  # /v1/chat/stream heartbeat
    dmp_pong_timeout_s: float = Field(default=10.0, gt=0.0)  # no pong by then: close 4000
    # 'agent_or_persona_id=our persona id,...': DMP ids that name one of our personas.
    persona_aliases: str = ""
    avatar_visemes: bool = True  # mouth keyframes from the reply audio (docs/avatar.md)

    # --- per-user abuse limits (docs/protocol.md, "Rate and size limits") ---------------
    ws_user_max_messages_per_s: float = Field(default=400.0, gt=0.0)  # all sockets together
    ws_max_sessions_per_user: int = Field(default=8, ge=1)  # open at once, in this process

    # --- reminders --------------------------------------------------------------------
    reminder_max_chars: int = Field(default=500, ge=1)
    reminders_max_pending: int = Field(default=100, ge=1)  # per user
    reminder_max_days: int = Field(default=366, ge=1)  # how far ahead due_at may be
    reminder_check_s: float = Field(default=30.0, gt=0.0)  # re-read the store at least this often
    reminder_max_attempts: int = Field(default=3, ge=1)  # then the reminder is marked failed
    reminder_retry_backoff_s: float = Field(default=5.0, gt=0.0)  # doubles per failed attempt

    # --- reminders across replicas: a claim outlives its socket write (WS_SEND_TIMEOUT_S)
    # by this much; when the claiming replica died, another delivers after that
    reminder_lease_margin_s: float = Field(default=20.0, gt=0.0)

    @field_validator("data_dir", "personas_dir", "static_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    # --- derived ----------------------------------------------------------------------
    @property
    def models_root(self) -> Path:
        """MODELS_DIR, else the older MODEL_CACHE_DIR, else DATA_DIR/models."""
        return (self.models_dir or self.model_cache_dir or self.data_dir / "models").expanduser()

    @property
    def persona_alias_map(self) -> dict[str, str]:
        """PERSONA_ALIASES as {alias: persona id}."""
        pairs = (p.split("=", 1) for p in self.persona_aliases.split(",") if "=" in p)
        return {a.strip(): pid.strip() for a, pid in pairs if a.strip() and pid.strip()}

    @property
    def ws_max_image_text_bytes(self) -> int:
        """An input_image text frame: a base64 binary frame (x 4/3) plus its JSON fields."""
        return self.ws_max_binary_bytes * 4 // 3 + 1024

    @property
    def ws_transport_max_bytes(self) -> int:
        """uvicorn's ws_max_size (desktopmate serve and the tests' servers)."""
        largest = max(
            self.ws_max_text_bytes, self.ws_max_binary_bytes, self.ws_max_image_text_bytes
        )
        return largest + self.ws_transport_margin_bytes

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url or self.llm_api_key)

    @property
    def vlm_configured(self) -> bool:
        """A vision endpoint: VLM_* when set, else the LLM endpoint (unless disabled)."""
        endpoint = self.vlm_base_url or self.vlm_api_key or self.llm_configured
        return self.vlm_enabled and bool(endpoint)

    def vlm_endpoint(self) -> tuple[str | None, str | None, str]:
        """(base_url, api_key, model) for the VLM, each falling back to the LLM's.

        The LLM key is only reused for the LLM's own endpoint, never sent to another host."""
        own_host = self.vlm_base_url is not None and self.vlm_base_url != self.llm_base_url
        key = secret(self.vlm_api_key) or (None if own_host else secret(self.llm_api_key))
        return self.vlm_base_url or self.llm_base_url, key, self.vlm_model or self.llm_model

    @property
    def embedder_configured(self) -> bool:
        return bool(self.embed_base_url or self.llm_base_url or self.embed_api_key)

    @property
    def log_file(self) -> Path | None:
        if self.log_file_path.strip().lower() == "off":
            return None
        return (
            Path(self.log_file_path).expanduser()
            if self.log_file_path
            else (self.data_dir / "logs" / "server.log")
        )

    @property
    def jwt_configured(self) -> bool:
        return bool(self.jwt_secret or self.jwt_jwks_url)

    @property
    def auth_configured(self) -> bool:
        """False = local mode: the token is the user's name."""
        return bool(self.auth_tokens) or self.jwt_configured

    @cached_property
    def token_map(self) -> dict[str, str] | None:
        """token -> user_id, or None in local mode."""
        if not self.auth_tokens:
            return None
        pairs = (p.split(":", 1) for p in self.auth_tokens.get_secret_value().split(",") if p)
        return {t.strip(): u.strip() for t, u in pairs}


def secret(v: SecretStr | None) -> str | None:
    return v.get_secret_value() if v else None
