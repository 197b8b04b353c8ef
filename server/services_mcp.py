"""Tools from MCP servers (MCP_CONFIG): connected in the background, their state in
/health/details, their tools offered to the agent as servers come and go. Mixed into
Services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.agent.mcp import McpConfigError, McpManager, agent_tools, load_config
from server.agent.tools import ToolRegistry, default_registry
from server.services_base import ServicesBase, log

if TYPE_CHECKING:
    from server.agent.graph import Agent


class McpServices(ServicesBase):
    mcp: McpManager | None
    agent: Agent

    async def _start_mcp(self) -> None:
        """Connect to the MCP servers in the background: a slow or dead server never holds
        start-up or a turn (its tools are offered once it answers)."""
        s = self.settings
        if s.mcp_config is None:
            return
        try:
            servers = load_config(s.mcp_config)
        except McpConfigError as e:
            self.set_status("mcp", "error", str(e))
            return
        self.mcp = McpManager(
            servers,
            call_timeout_s=s.mcp_call_timeout_s,
            connect_timeout_s=s.mcp_connect_timeout_s,
            reconnect_s=s.mcp_reconnect_s,
            reconnect_max_s=s.mcp_reconnect_max_s,
        )
        self.mcp.listeners.append(self._mcp_changed)
        self.mcp.start()
        # Give the servers one connection attempt (bounded by MCP_CONNECT_TIMEOUT_S) so the
        # first turns have their tools; a server that is down then is skipped (reported in
        # /health/details), retried in the background, and its tools join when it is up.
        await self.mcp.first_attempts(s.mcp_connect_timeout_s)
        self._mcp_status()

    def _mcp_changed(self) -> None:
        """An MCP server connected or went down: status now, and the agent offers exactly
        the connected servers' tools from its next model call."""
        self._mcp_status()
        agent = getattr(self, "agent", None)
        if agent is None or self.mcp is None:
            return
        offered = {t.name for t in agent.tools}
        wanted = {t.name for t in self._tools()}
        if offered != wanted:
            agent.use_tools(self._tools())
            log.info("mcp_tools_changed", tools=len(wanted))

    def _mcp_status(self) -> None:
        if self.mcp is None:
            return
        st = self.mcp.status()
        down = sorted(n for n, v in st.items() if v["status"] != "connected")
        detail = "; ".join(
            f"{n}: {v['status']} ({v['detail']}"
            + (f"; retry in {v['retry_in_s']:g} s)" if v["retry_in_s"] is not None else ")")
            for n, v in sorted(st.items())
        )
        self.set_status("mcp", "degraded" if down else "ready", detail)

    def _tools(self) -> ToolRegistry:
        registry = default_registry()
        for tool in agent_tools(self.mcp) if self.mcp is not None else []:
            registry.register(tool)
        return registry
