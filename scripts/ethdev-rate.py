#!/usr/bin/env python3
"""Per-second TX rate of one port of a running DPDK process, read from
outside through its telemetry socket (what `echo /ethdev/stats,PORT |
dpdk-telemetry.py -f PREFIX` shows, sampled without starting Python per
sample). For processes that print no rates of their own (DPDK's l3fwd), in
scripts/bench.sh.

Usage: ethdev-rate.py FILE_PREFIX PORT INTERVALS [--wait S]

Waits up to S seconds (default 120: l3fwd inserts its rules first) for the
socket and for the port's first transmitted packet, then prints INTERVALS
lines, each the port's opackets rate over one second in Mpps (the packet
count difference over the monotonic-clock difference). Exits 1 when the
process goes away or never starts forwarding.
"""

import json
import os
import socket
import sys
import time


def main():
    args = sys.argv[1:]
    wait = 120.0
    if "--wait" in args:
        i = args.index("--wait")
        wait = float(args[i + 1])
        del args[i : i + 2]
    prefix, port, intervals = args[0], int(args[1]), int(args[2])
    run_dir = os.environ.get("RUNTIME_DIRECTORY", "/var/run/dpdk")
    path = os.path.join(run_dir, prefix, "dpdk_telemetry.v2")
    deadline = time.monotonic() + wait

    sock = None
    while sock is None:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(path)
            sock = s
        except OSError:
            if time.monotonic() > deadline:
                print(f"ethdev-rate: no telemetry socket {path}", file=sys.stderr)
                return 1
            time.sleep(0.2)
    hello = json.loads(sock.recv(1024).decode())
    max_len = int(hello.get("max_output_len", 16384))

    def opackets():
        sock.send(f"/ethdev/stats,{port}".encode())
        reply = sock.recv(max_len)
        if not reply:
            raise EOFError
        return int(json.loads(reply.decode())["/ethdev/stats"]["opackets"])

    try:
        while opackets() == 0:
            if time.monotonic() > deadline:
                print(f"ethdev-rate: port {port} sent nothing in {wait} s", file=sys.stderr)
                return 1
            time.sleep(0.1)
        t0, n0 = time.monotonic(), opackets()
        start = t0
        for k in range(1, intervals + 1):
            # sleep to the next whole second since t0, not 1 s after the
            # last read: the reads' own time does not stretch the run
            time.sleep(max(0.0, start + k - time.monotonic()))
            t1, n1 = time.monotonic(), opackets()
            print(f"{(n1 - n0) / (t1 - t0) / 1e6:.4f}", flush=True)
            t0, n0 = t1, n1
    except (OSError, EOFError, KeyError, ValueError) as e:
        print(f"ethdev-rate: telemetry read failed: {e!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
