"""Tools from MCP servers (the official `mcp` SDK's client), for the agent's tool loop.

MCP_CONFIG names a JSON file in the common format::

    {"mcpServers": {
        "weather": {"command": "python", "args": ["w.py"], "env": {"K": "v"}},
        "files":   {"url": "http://127.0.0.1:9000/mcp", "headers": {"Authorization": "..."},
                    "safeTools": ["list_files"]}}}

Each server is connected in its own background task (never on a turn's path); its tools are
offered as ``<server>__<tool>`` while it is connected. A server that is down is reported in
/health/details, its tools are withdrawn, and it is retried after MCP_RECONNECT_S, the wait
doubling after each failed attempt up to MCP_RECONNECT_MAX_S; `listeners` hear every change,
so the agent offers a server's tools as soon as it comes up (services.py). Calls run
under MCP_CALL_TIMEOUT_S. Every MCP tool is consequential (the user approves each call)
unless the server's entry lists it in ``safeTools`` or says ``"consequential": false``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from server.logging import get_logger

if TYPE_CHECKING:  # the SDK (about 20 MB) is imported when the first server connects
    from mcp.client.session import ClientSession

log = get_logger(__name__)

SEPARATOR = "__"
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
Status = Literal["connecting", "connected", "down"]


class McpConfigError(ValueError):
    """MCP_CONFIG cannot be read or does not follow the format (said at start-up)."""


class ServerEntry(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    consequential: bool = True
    safe_tools: list[str] = Field(default_factory=list, alias="safeTools")

    @model_validator(mode="after")
    def one_transport(self) -> ServerEntry:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either 'command' (stdio) or 'url' (streamable HTTP)")
        return self


def load_config(path: Path) -> dict[str, ServerEntry]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise McpConfigError(f"MCP_CONFIG {path}: {e}") from None
    servers = raw.get("mcpServers") if isinstance(raw, dict) else None
    if not isinstance(servers, dict):
        raise McpConfigError(f'MCP_CONFIG {path}: expected {{"mcpServers": {{name: {{...}}}}}}')
    out: dict[str, ServerEntry] = {}
    for name, entry in servers.items():
        if not name or _UNSAFE.search(name) or SEPARATOR in name:
            raise McpConfigError(f"MCP_CONFIG: server name {name!r} must be letters, digits, _ -")
        try:
            out[name] = ServerEntry.model_validate(entry)
        except ValidationError as e:
            raise McpConfigError(f"MCP_CONFIG: server {name!r}: {e.errors()[0]['msg']}") from None
    return out


@dataclass(frozen=True)
class McpToolInfo:
    """One tool as the agent sees it."""

    name: str  # <server>__<tool>, a valid OpenAI function name
    server: str
    remote_name: str
    description: str
    input_schema: dict[str, Any]
    consequential: bool


@dataclass
class CallResult:
    ok: bool
    text: str
    structured: dict[str, Any] | None = None


def tool_name(server: str, remote: str) -> str:
    return (server + SEPARATOR + _UNSAFE.sub("_", remote))[:64]


@dataclass
class _Server:
    name: str
    entry: ServerEntry
    status: Status = "connecting"
    detail: str = ""
    session: ClientSession | None = None
    tools: dict[str, McpToolInfo] = field(default_factory=dict)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    failures: int = 0  # failed attempts in a row (the backoff)
    retry_in_s: float | None = None  # while down: the wait before the next attempt


class McpManager:
    """Keeps one client session per configured server, reconnecting in the background."""

    def __init__(
        self,
        servers: dict[str, ServerEntry],
        *,
        call_timeout_s: float = 15.0,
        connect_timeout_s: float = 10.0,
        reconnect_s: float = 30.0,
        reconnect_max_s: float = 300.0,
    ) -> None:
        self._servers = {n: _Server(n, e) for n, e in servers.items()}
        self.call_timeout_s = call_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.reconnect_s = reconnect_s
        self.reconnect_max_s = max(reconnect_max_s, reconnect_s)
        self.version = 0  # bumped whenever the offered tools change
        self.changed = asyncio.Event()
        self._closed = False
        self.listeners: list[Callable[[], None]] = []  # called on every change of status

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        for s in self._servers.values():
            s.task = asyncio.create_task(self._keep(s), name=f"mcp:{s.name}")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop every connection loop. A cancel that lands inside the MCP SDK's connect can
        be swallowed there (it came back as a failed attempt, and the loop went on: shutdown
        hung), so the loops also stop on ``_closed``, the cancel is repeated, and the wait is
        bounded."""
        self._closed = True
        pending = {s.task for s in self._servers.values() if s.task is not None}
        deadline = asyncio.get_running_loop().time() + timeout_s
        while pending:
            for t in pending:
                t.cancel()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                log.warning("mcp_close_timeout", servers=[t.get_name() for t in pending])
                return
            _, pending = await asyncio.wait(pending, timeout=min(left, 0.5))

    async def first_attempts(self, timeout_s: float) -> None:
        """Until every server connected or failed once (at most timeout_s)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while any(s.status == "connecting" for s in self._servers.values()):
                    self.changed.clear()
                    await self.changed.wait()

    async def wait_connected(self, name: str, timeout_s: float) -> None:
        """For tests and start-up checks: wait until ``name`` is connected."""
        async with asyncio.timeout(timeout_s):
            while self._servers[name].status != "connected":
                self.changed.clear()
                await self.changed.wait()

    # --- what the agent and /health see --------------------------------------------------
    def tools(self) -> list[McpToolInfo]:
        return [t for s in self._servers.values() for t in s.tools.values()]

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            s.name: {
                "status": s.status,
                "detail": s.detail,
                "tools": sorted(s.tools),
                "retry_in_s": s.retry_in_s,
            }
            for s in self._servers.values()
        }

    def backoff(self, failures: int) -> float:
        """The wait before the next attempt after ``failures`` failed ones in a row (a
        connection that was lost: MCP_RECONNECT_S)."""
        return min(self.reconnect_s * 2 ** max(0, failures - 1), self.reconnect_max_s)

    async def call(self, name: str, arguments: dict[str, Any]) -> CallResult:
        """Call a tool by its prefixed name; a down server or a timeout is a failed result
        the model reads, never an exception."""
        server_name = name.split(SEPARATOR, 1)[0]
        s = self._servers.get(server_name)
        info = s.tools.get(name) if s else None
        if s is None or info is None:
            return CallResult(False, f"There is no MCP tool named {name!r}.")
        session = s.session
        if session is None or s.status != "connected":
            return CallResult(False, f"The MCP server {server_name!r} is not reachable now.")
        try:
            async with asyncio.timeout(self.call_timeout_s):
                result = await session.call_tool(info.remote_name, arguments)
        except TimeoutError:
            return CallResult(
                False, f"{name} took longer than {self.call_timeout_s:g} s and was stopped."
            )
        except Exception as e:  # the connection broke: reconnect in the background
            log.warning("mcp_call_failed", server=server_name, tool=name, error=type(e).__name__)
            self._lose(s, f"call failed: {type(e).__name__}")
            return CallResult(False, f"The MCP server {server_name!r} failed ({type(e).__name__}).")
        text = "\n".join(getattr(c, "text", "") for c in result.content if getattr(c, "text", None))
        return CallResult(not result.is_error, text, result.structured_content)

    # --- connection loop -----------------------------------------------------------------
    def _set(self, s: _Server, status: Status, detail: str = "") -> None:
        s.status, s.detail = status, detail
        if status != "connected":
            s.session, s.tools = None, {}
        self.version += 1
        self.changed.set()
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # a listener's bug must not stop the connection loop
                log.exception("mcp_listener_failed")

    def _lose(self, s: _Server, detail: str) -> None:
        if s.status == "connected":
            self._set(s, "down", detail)
        s.lost.set()

    async def _keep(self, s: _Server) -> None:
        await asyncio.to_thread(_import_sdk)  # ~1 s of imports: not on the event loop
        while not self._closed:
            s.lost.clear()
            try:
                async with contextlib.AsyncExitStack() as stack:
                    async with asyncio.timeout(self.connect_timeout_s):
                        session = await self._open(s, stack)
                        listed = await session.list_tools()
                    s.session = session
                    s.tools = self._infos(s, listed.tools)
                    s.failures, s.retry_in_s = 0, None
                    self._set(s, "connected", f"{len(s.tools)} tools")
                    log.info("mcp_connected", server=s.name, tools=len(s.tools))
                    await self._watch(s, session)
            except asyncio.CancelledError:
                raise
            except BaseException as e:  # anyio raises groups; a server must never stop us
                me = asyncio.current_task()
                if self._closed or (me is not None and me.cancelling()):
                    return  # a cancel the SDK's task group turned into its own error
                detail = _describe(e)
                if s.status != "down" or s.detail != detail:  # once per new reason, no spam
                    log.warning("mcp_down", server=s.name, error=detail)
                s.failures += 1
                s.retry_in_s = self.backoff(s.failures)
                self._set(s, "down", detail)
            else:
                s.retry_in_s = self.backoff(0)
                self._set(s, "down", s.detail or "connection lost")
            await asyncio.sleep(s.retry_in_s)

    async def _open(self, s: _Server, stack: contextlib.AsyncExitStack) -> ClientSession:
        from mcp.client.session import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        e = s.entry
        if e.command is not None:
            params = StdioServerParameters(command=e.command, args=e.args, env=e.env, cwd=e.cwd)
            # the server's own stderr goes to ours: operators see why it fails
            read, write = await stack.enter_async_context(stdio_client(params))
        else:
            assert e.url is not None
            client = await stack.enter_async_context(create_mcp_http_client(headers=e.headers))
            read, write = await stack.enter_async_context(
                streamable_http_client(e.url, http_client=client)
            )
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        return session

    async def _watch(self, s: _Server, session: ClientSession) -> None:
        """Return when the connection is lost: a failed call says so, and a ping every
        reconnect interval finds a server that died while nobody called it."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.reconnect_s):
                    await s.lost.wait()
            if s.lost.is_set():
                return
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    await session.send_ping()
            except Exception as e:
                s.detail = f"ping failed: {_describe(e)}"
                return

    def _infos(self, s: _Server, tools: list[Any]) -> dict[str, McpToolInfo]:
        out: dict[str, McpToolInfo] = {}
        for t in tools:
            name = tool_name(s.name, t.name)
            schema = dict(t.input_schema or {})
            schema.setdefault("type", "object")
            schema.setdefault("properties", {})
            out[name] = McpToolInfo(
                name=name,
                server=s.name,
                remote_name=t.name,
                description=(t.description or t.title or t.name)[:1024],
                input_schema=schema,
                consequential=s.entry.consequential and t.name not in s.entry.safe_tools,
            )
        return out


def _import_sdk() -> None:
    import mcp.client.session
    import mcp.client.stdio
    import mcp.client.streamable_http  # noqa: F401


def _describe(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup) and e.exceptions:
        return _describe(e.exceptions[0])
    if isinstance(e, TimeoutError):
        return "timed out connecting"
    return f"{type(e).__name__}: {e}"[:200]


class _AnyArgs(BaseModel):
    """MCP tools bring their own JSON schema; the server checks the arguments."""

    model_config = ConfigDict(extra="allow")


def agent_tools(manager: McpManager) -> list[Any]:
    """The connected servers' tools as the agent's Tools (schema from the MCP server)."""
    from server.agent.tools.base import Tool, ToolError, ToolOutcome

    @dataclass(frozen=True)
    class McpTool(Tool):
        schema: dict[str, Any] = field(default_factory=dict)

        def openai_schema(self) -> dict[str, Any]:
            return {
                "type": "function",
                "function": {
                    "name": self.name,
                    "description": self.description,
                    "parameters": self.schema,
                },
            }

    def runner(info: McpToolInfo) -> Any:
        async def run(args: BaseModel, env: Any) -> ToolOutcome:
            r = await manager.call(info.name, args.model_dump())
            if not r.ok:
                raise ToolError(r.text or f"{info.name} failed")
            result: dict[str, Any] = {"result": r.text}
            if r.structured:
                result["data"] = r.structured
            return ToolOutcome(result, f"{info.name}: {r.text[:200]}")

        return run

    return [
        McpTool(
            i.name,
            i.description,
            _AnyArgs,
            runner(i),
            consequential=i.consequential,
            schema=i.input_schema,
        )
        for i in manager.tools()
    ]
