#!/usr/bin/env python3
"""A static HTTP file server whose responses are paced by the server.

Usage: scripts/paced-http.py PORT DIRECTORY BYTES_PER_SECOND

Serves DIRECTORY as `python3 -m http.server` does (one thread per client),
but writes every response body at BYTES_PER_SECOND at most, in 20 writes a
second. End-to-end tests use it for downloads that must last through a
failover: the client reads at full speed, so its ACKs — the only packets a
DR director sees — flow at a steady rate for the whole transfer, and
nothing depends on the client's receive buffer (curl's --limit-rate reads
slowly but lets the kernel buffer megabytes, so the server could finish
early and the connection go quiet).
"""

import functools
import sys
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class PacedHandler(SimpleHTTPRequestHandler):
    rate = 0

    def copyfile(self, source, outputfile):
        chunk = max(1024, self.rate // 20)
        start = time.monotonic()
        sent = 0
        while True:
            buf = source.read(chunk)
            if not buf:
                return
            outputfile.write(buf)
            sent += len(buf)
            ahead = sent / self.rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)

    def log_message(self, format, *args):
        pass


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2])
    port, directory, rate = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    if rate <= 0:
        sys.exit("paced-http: BYTES_PER_SECOND must be positive")
    PacedHandler.rate = rate
    handler = functools.partial(PacedHandler, directory=directory)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("", port), handler).serve_forever()


if __name__ == "__main__":
    main()
