"""A real MCP client (the official Python SDK) for the integration tests.

    python mcp_client.py URL TOKEN STEPS_JSON

URL is the gateway's /mcp (streamable HTTP), or stdio:GATEHOUSE_BINARY:SERVER to start
`gatehouse mcp --server SERVER` with GATEHOUSE_TOKEN=TOKEN and speak to it on stdin and stdout.

STEPS_JSON is a list of steps, run in one MCP session: {"list": true} lists the tools,
{"resources": true} the resources, {"read": URI} reads one,
{"call": NAME, "arguments": {...}, "progress": true} calls one. Each step prints one JSON line:
the tool names, or the call's is_error, text, structured content and the progress messages heard.
A TOKEN of "-" sends no Authorization header.
"""

import asyncio
import json
import sys

import contextlib
import os

import httpx

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client


@contextlib.asynccontextmanager
async def transport(url, token):
    if url.startswith("stdio:"):
        _, binary, server = url.split(":", 2)
        params = StdioServerParameters(
            command=binary, args=["mcp", "--server", server],
            env={"GATEHOUSE_TOKEN": token, "PATH": "/usr/bin:/bin", "HOME": "/tmp"})
        async with stdio_client(params) as (read, write):
            yield read, write
    else:
        headers = {} if token == "-" else {"Authorization": f"Bearer {token}"}
        extra = {}
        local = os.environ.get("MCP_LOCAL_ADDRESS")
        if local:
            # Connect from another loopback address, as an agent on another host would come from its own.
            def factory(headers=None, timeout=None, auth=None):
                return httpx.AsyncClient(
                    headers=headers, timeout=timeout, auth=auth,
                    transport=httpx.AsyncHTTPTransport(local_address=local))
            extra["httpx_client_factory"] = factory
        async with streamablehttp_client(
                url, headers=headers, timeout=30, sse_read_timeout=300, **extra) as (read, write, _):
            yield read, write


async def main(url, token, steps):
    async with transport(url, token) as (read, write):
        async with ClientSession(read, write) as session:
            info = await session.initialize()
            print(json.dumps({"server": info.serverInfo.name}), flush=True)
            for step in steps:
                if step.get("resources"):
                    listed = await session.list_resources()
                    print(json.dumps({"resources": sorted(str(r.uri) for r in listed.resources)}), flush=True)
                    continue
                if "read" in step:
                    try:
                        read = await session.read_resource(step["read"])
                        print(json.dumps({"contents": [c.text for c in read.contents]}), flush=True)
                    except Exception as error:
                        print(json.dumps({"read_error": str(error)}), flush=True)
                    continue
                if step.get("list"):
                    tools = await session.list_tools()
                    query = next((t for t in tools.tools if t.name == "query"), None)
                    connections = query.inputSchema["properties"]["connection"]["enum"] if query else []
                    print(json.dumps({"tools": sorted(t.name for t in tools.tools), "connections": connections}), flush=True)
                    continue
                heard = []

                async def progress(value, total, message):
                    heard.append(message)
                    print(json.dumps({"progress": message}), flush=True)

                result = await session.call_tool(
                    step["call"], step.get("arguments", {}),
                    progress_callback=progress if step.get("progress") else None)
                text = "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
                print(json.dumps({
                    "is_error": bool(result.isError), "text": text,
                    "structured": result.structuredContent, "progress": heard,
                }), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
    except BaseException as error:  # an ExceptionGroup from the SDK's task group, unwrapped for the test
        while isinstance(error, BaseExceptionGroup) and error.exceptions:
            error = error.exceptions[0]
        print(json.dumps({"failed": f"{type(error).__name__}: {error}"}), flush=True)
        sys.exit(3)
