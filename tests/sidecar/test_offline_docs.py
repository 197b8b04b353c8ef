"""/docs and /redoc work with no network: every asset they load is served by this server."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.conftest import make_settings
from tests.server_harness import running_server


async def test_docs_pages_load_only_local_assets(tmp_path: Path) -> None:
    with running_server(make_settings(tmp_path, None)) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            for page in ("/docs", "/redoc"):
                html = (await http.get(page)).text
                urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
                urls += re.findall(r"""url: *['"]([^'"]+)['"]""", html)
                assets = [u for u in urls if u.endswith((".js", ".css"))]
                assert assets, html
                for url in assets:
                    assert url.startswith("/"), f"{page} loads {url} from another host"
                    r = await http.get(url)
                    assert r.status_code == 200 and len(r.content) > 1000, url
            spec = (await http.get("/openapi.json")).json()
            assert spec["info"]["title"] == "DesktopMate-Plus"
