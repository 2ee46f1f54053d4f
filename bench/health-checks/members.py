#!/usr/bin/env python3
"""Many tiny HTTP members for bench/health-checks/run.sh (python3 stdlib only).

Listens on COUNT consecutive ports of 127.0.0.1 starting at BASE and answers every request
`HTTP/1.1 200 OK` with a small body containing "OK" (and a Content-Length). Keep-alive is kept
unless the request says `Connection: close` (or is HTTP/1.0 without keep-alive). Prints "ready"
on stdout once every port listens.

It counts the requests it answered, per member port. `GET /count` on the control port
(default BASE-1) answers JSON, not counted itself:
    {"requests": <total>, "per_port": [<requests on BASE>, <on BASE+1>, ...]}
The totals are also printed to stderr on exit (SIGTERM / SIGINT).

Usage: members.py --base 20000 --count 1000 [--control-port 19999]
"""

import argparse
import asyncio
import json
import resource
import signal
import sys

BODY = b"OK\n"
HEAD_LIMIT = 16 * 1024


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            print(f"members.py: cannot raise RLIMIT_NOFILE to {hard}: {e}", file=sys.stderr)
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def response(close):
    conn = b"Connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
        + str(len(BODY)).encode()
        + b"\r\n"
        + conn
        + b"\r\n"
        + BODY
    )


RESP_KEEP = response(False)
RESP_CLOSE = response(True)


def wants_close(head):
    """True if the request head asks to close the connection after the answer."""
    lines = head.split(b"\r\n")
    version = lines[0].rsplit(b" ", 1)[-1].upper() if lines else b""
    conn = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"connection":
            conn = value.strip().lower()
    if conn is not None and b"close" in conn:
        return True
    if version == b"HTTP/1.0":
        return conn is None or b"keep-alive" not in conn
    return False


async def read_head(reader):
    """The request head (without the blank line), or None at end of stream / on a bad request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    return head[:-4]


def skip_body(head):
    """Content-Length of a request body (health checks send none)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return int(value.strip())
            except ValueError:
                return 0
    return 0


class Members:
    def __init__(self, base, count):
        self.base = base
        self.per_port = [0] * count

    def handler(self, index):
        async def handle(reader, writer):
            try:
                while True:
                    head = await read_head(reader)
                    if head is None:
                        break
                    length = skip_body(head)
                    if length:
                        await reader.readexactly(length)
                    self.per_port[index] += 1
                    close = wants_close(head)
                    writer.write(RESP_CLOSE if close else RESP_KEEP)
                    await writer.drain()
                    if close:
                        break
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        return handle

    async def control(self, reader, writer):
        try:
            head = await read_head(reader)
            if head is not None and head.startswith(b"GET /count "):
                body = json.dumps({"requests": sum(self.per_port), "per_port": self.per_port})
                status = b"200 OK"
            else:
                body, status = "GET /count\n", b"404 Not Found"
            data = body.encode()
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(data)).encode() + b"\r\nConnection: close\r\n\r\n" + data
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=int, default=20000, help="first member port (default 20000)")
    ap.add_argument("--count", type=int, default=1000, help="number of member ports (default 1000)")
    ap.add_argument("--control-port", type=int, default=None, help="port of GET /count (default BASE-1)")
    args = ap.parse_args()
    control_port = args.base - 1 if args.control_port is None else args.control_port
    if args.count < 1 or args.base < 1 or args.base + args.count - 1 > 65535:
        ap.error("ports out of range")

    nofile = raise_nofile()
    if nofile < args.count + 100:
        print(f"members.py: open-file limit {nofile} is too low for {args.count} ports", file=sys.stderr)
        sys.exit(1)

    members = Members(args.base, args.count)
    servers = []
    try:
        servers.append(await asyncio.start_server(members.control, "127.0.0.1", control_port))
        for i in range(args.count):
            port = args.base + i
            servers.append(
                await asyncio.start_server(members.handler(i), "127.0.0.1", port, backlog=128)
            )
    except OSError as e:
        print(f"members.py: cannot listen on 127.0.0.1:{port if servers else control_port}: {e}", file=sys.stderr)
        sys.exit(1)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for s in servers:
        s.close()
    counts = members.per_port
    print(
        f"members.py: {sum(counts)} requests answered on {args.count} ports "
        f"(per port min {min(counts)}, max {max(counts)})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    asyncio.run(main())
