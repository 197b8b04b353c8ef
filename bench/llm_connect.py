"""Client CPU per LLM request over TLS: a kept connection against a new one per request.

Why LLM_KEEPALIVE_S matters: a turn after the pool dropped its idle connection pays a TCP
and TLS handshake. An aiohttp server with a throwaway self-signed ECDSA certificate runs
in its own process on loopback (so only the client's CPU is counted); the client posts a
small request and reads a two-event SSE body, with keep-alive and then with a new
connection each time. Usage: ``uv run python -m bench.llm_connect [--requests 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

SERVER = r"""
import ssl, sys
from aiohttp import web

async def reply(request):
    await request.read()
    body = b'data: {"choices":[]}\n\ndata: [DONE]\n\n'
    return web.Response(body=body, content_type="text/event-stream")

app = web.Application()
app.router.add_post("/v1/chat/completions", reply)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[3]), ssl_context=ctx, print=None)
"""


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A one-day self-signed certificate for localhost (ECDSA P-256), as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def cpu_ms_per_request(cafile: Path, port: int, *, fresh: bool, n: int) -> float:
    """Client CPU (process time) per request; ``fresh``: a new connection each time."""
    connector = aiohttp.TCPConnector(
        ssl=ssl.create_default_context(cafile=str(cafile)), force_close=fresh
    )
    url = f"https://localhost:{port}/v1/chat/completions"
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with session.post(url, data=b"{}") as resp:
                await resp.read()

        for _ in range(5):  # warm-up, uncounted
            await one()
        t0 = time.process_time()
        for _ in range(n):
            await one()
        return (time.process_time() - t0) / n * 1000


async def wait_listening(port: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return


async def measure(args: argparse.Namespace, cert: Path, port: int) -> None:
    await wait_listening(port)
    print("| run | kept connection (ms CPU / request) | new TLS connection |")
    print("|---|---|---|")
    for run in range(1, args.runs + 1):
        kept = await cpu_ms_per_request(cert, port, fresh=False, n=args.requests)
        new = await cpu_ms_per_request(cert, port, fresh=True, n=args.requests)
        print(f"| {run} | {kept:.2f} | {new:.2f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="requests per measurement")
    ap.add_argument("--runs", type=int, default=3, help="alternated measurements")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_cert(Path(tmp))
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(cert), str(key), str(port)])
        try:
            asyncio.run(measure(args, cert, port))
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
