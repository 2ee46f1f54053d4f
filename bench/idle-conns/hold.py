#!/usr/bin/env python3
"""Open N keep-alive client connections to a proxy, serve one request on each, hold them all open
idle, and report the proxy's memory (VmRSS, VmHWM) and socket count before and with them.

Used by bench/idle-conns/run.sh; can be run alone against any listener:

  hold.py --port 8085 --pids 1234 [--n 10000] [--batch 500] [--hold 0]

--pids: the process(es) whose memory is measured (comma separated; summed), e.g. the nginx worker.
The process running this needs an open-file limit above N.
"""
import argparse
import asyncio
import os
import resource
import sys
import time


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[k] = int(v.split()[0])  # kB (Threads: a count)
    return out


def socket_fds(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def tcp_breakdown(inodes, port):
    """Established TCP sockets among inodes: (accepted on local :port, others e.g. upstream)."""
    client = other = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            f = open(path)
        except OSError:
            continue
        with f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[9] not in inodes or fields[3] != "01":  # 01 = ESTABLISHED
                    continue
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    client += 1
                else:
                    other += 1
    return client, other


def snapshot(pids, port):
    tot = {"VmRSS": 0, "VmHWM": 0, "RssAnon": 0, "sockets": 0}
    inodes = set()
    for pid in pids:
        st = proc_status(pid)
        for k in ("VmRSS", "VmHWM", "RssAnon"):
            tot[k] += st.get(k, 0)
        tot["sockets"] += socket_fds(pid)
        inodes |= socket_inodes(pid)
    tot["client"], tot["upstream"] = tcp_breakdown(inodes, port)
    return tot


async def one_request(reader, writer, host_hdr):
    writer.write(b"GET / HTTP/1.1\r\nHost: " + host_hdr + b"\r\nUser-Agent: drover-bench-idle-conns\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        raise RuntimeError("response has neither Content-Length nor chunked body: cannot stay keep-alive")
    if status != 200:
        raise RuntimeError(f"status {status}")
    if "close" in headers.get("connection", ""):
        raise RuntimeError("server answered Connection: close")


async def open_one(host, port, timeout):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        await asyncio.wait_for(one_request(reader, writer, f"{host}:{port}".encode()), timeout)
    except BaseException:
        writer.close()
        raise
    return reader, writer


def mib(kb):
    return kb / 1024.0


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pids", required=True, help="comma-separated PIDs whose memory is measured (summed)")
    p.add_argument("--label", default="target")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--settle", type=float, default=2.0, help="seconds to wait before measuring")
    p.add_argument("--hold", type=float, default=0.0, help="seconds to keep the connections after measuring")
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()
    pids = [int(x) for x in a.pids.split(",") if x]

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.n + 100:
        sys.exit(f"open-file limit {soft} is too low for {a.n} connections (raise ulimit -n)")

    before = snapshot(pids, a.port)
    conns, errors = [], {}
    t0 = time.monotonic()
    for start in range(0, a.n, a.batch):
        k = min(a.batch, a.n - start)
        res = await asyncio.gather(*(open_one(a.host, a.port, a.timeout) for _ in range(k)),
                                   return_exceptions=True)
        for r in res:
            if isinstance(r, BaseException):
                key = f"{type(r).__name__}: {r}"[:120]
                errors[key] = errors.get(key, 0) + 1
            else:
                conns.append(r)
    t_open = time.monotonic() - t0
    await asyncio.sleep(a.settle)

    live = sum(1 for r, w in conns if not r.at_eof() and not w.is_closing())
    with_conns = snapshot(pids, a.port)
    d_sock = with_conns["sockets"] - before["sockets"]
    d_rss = with_conns["VmRSS"] - before["VmRSS"]

    print(f"target: {a.label} (127.0.0.1:{a.port}), measured PIDs: {','.join(map(str, pids))}")
    print(f"opened {len(conns)}/{a.n} connections in {t_open:.1f} s (batches of {a.batch}), "
          f"each served one keep-alive GET /; {live} still open after {a.settle:.0f} s idle")
    for k, v in sorted(errors.items(), key=lambda kv: -kv[1]):
        print(f"  failed: {v} x {k}")
    print(f"sockets held by the target: {before['sockets']} before, {with_conns['sockets']} with connections "
          f"(+{d_sock}); established client connections on :{a.port}: {with_conns['client']} "
          f"(expected {live}); other established (upstream) connections: {before['upstream']} before, "
          f"{with_conns['upstream']} with")
    print(f"RSS before (idle, no connections): {mib(before['VmRSS']):.1f} MiB (VmHWM {mib(before['VmHWM']):.1f} MiB, "
          f"RssAnon {mib(before['RssAnon']):.1f} MiB)")
    print(f"RSS with {live} connections: {mib(with_conns['VmRSS']):.1f} MiB (VmHWM {mib(with_conns['VmHWM']):.1f} MiB, "
          f"RssAnon {mib(with_conns['RssAnon']):.1f} MiB)")
    if live:
        print(f"per connection: {d_rss / live:.1f} KiB RSS "
              f"({(with_conns['VmHWM'] - before['VmRSS']) / live:.1f} KiB at the high-water mark)")
    print(f"{a.label} RSS with {live} idle keep-alive connections: {mib(with_conns['VmRSS']):.1f} MiB "
          f"(VmHWM {mib(with_conns['VmHWM']):.1f} MiB)")

    ok = live >= 0.99 * a.n and with_conns["client"] >= 0.99 * live and d_sock >= 0.95 * live
    if not ok:
        print(f"CHECK FAILED: wanted ~{a.n} open connections, have {live} live on the client, "
              f"{with_conns['client']} established in the target, +{d_sock} sockets")
    if a.hold > 0:
        await asyncio.sleep(a.hold)
    for _, w in conns:
        w.close()
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
