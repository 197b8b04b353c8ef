# syntax=docker/dockerfile:1.7
# DesktopMate-Plus server image.
#   docker build -t desktopmate-plus .         (or: docker compose up --build)
#   docker run -p 8000:8000 --env-file .env -v desktopmate-data:/data desktopmate-plus
# It listens on 0.0.0.0, which local mode refuses (docs/api.md "Security model"): configure
# AUTH_TOKENS or JWT_* in .env, or publish on loopback only and accept it:
#   docker run -p 127.0.0.1:8000:8000 -e ALLOW_INSECURE_LOCAL_BIND=true ... desktopmate-plus
#
# Two stages on the same base (so the venv's interpreter path is identical): the builder
# resolves the locked dependencies with uv; the runtime stage gets only /app (venv + source)
# and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.13-slim

# ---- builder -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# uv pinned to the version the lock file was written with.
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /uvx /bin/

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# 1) Dependencies only: this layer is rebuilt only when pyproject.toml / uv.lock change.
COPY pyproject.toml uv.lock .python-version ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project

# 2) The project itself. Installed editable (uv's default) on purpose: server/config.py finds
#    personas/ and static/ relative to the source tree, which is /app.
COPY README.md ./
COPY server/ server/
COPY analysis/ analysis/
COPY personas/ personas/
COPY static/ static/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev \
 && .venv/bin/python -m compileall -q server analysis

# ---- runtime -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# System libraries the wheels link against beyond glibc/libstdc++/zlib (checked with ldd over
# every .so in the venv): only mediapipe's libmediapipe.so needs libEGL.so.1 + libGLESv2.so.2
# (glvnd; CPU inference never opens a GL context). ctranslate2 bundles its libgomp,
# onnxruntime, opencv-python-headless and PyAV (ffmpeg) bundle theirs, espeakng-loader ships
# libespeak-ng and its data. ca-certificates: TLS to hosted LLM / TTS endpoints.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libegl1 libgles2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
        --shell /usr/sbin/nologin app \
 && mkdir -p /data \
 && chown app:app /data

COPY --from=builder /app /app

# DATA_DIR holds SQLite files (when no MongoDB is configured), mem0's Qdrant store and
# history, and downloaded models (HF_HOME). Mount a volume there.
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/app \
    DATA_DIR=/data \
    MEM0_TELEMETRY=False \
    MEM0_DIR=/data/mem0 \
    HF_HOME=/data/cache/huggingface

WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000

# /health answers 503 (urlopen raises) when a required module is not ready or a configured
# one is in error (docs/api.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]

CMD ["desktopmate", "serve", "--host", "0.0.0.0", "--port", "8000"]
