"""The socket ``nirvana serve`` and ``nirvana api`` listen on: Nagle off on every
accepted connection, or each small keep-alive response waits for a delayed ACK."""

from __future__ import annotations

import asyncio
import socket

from service.serve import bind_socket


def test_accepted_connections_have_tcp_nodelay() -> None:
    sock = bind_socket("127.0.0.1", 0)
    seen: list[int] = []

    async def main() -> None:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_client, sock=sock)
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.05)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert seen and seen[0] != 0
