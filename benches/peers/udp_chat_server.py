#!/usr/bin/env python3
"""A classic UDP group chat server, kept as a peer for `udpchat bench`.

It is the design udpchat grew from, as the student chat rooms build it: one
socket bound to an address; the first datagram from an address is that
member's nickname (answered with a welcome); every later datagram is a line,
relayed as "nick: text" to every other known address; "QUIT" leaves. There
is no acknowledgement, retransmission, ordering or flow control: whatever
the network or a full socket buffer drops is lost.

The one change from the classic servers is --quiet, which turns off the
per-line console print, so that a benchmark measures relaying and not
terminal output. Loopback by default; benches/compare.sh starts it.

    python3 udp_chat_server.py --host 127.0.0.1 --port 0 --quiet
"""

import argparse
import signal
import socket
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free one)")
    parser.add_argument("--quiet", action="store_true", help="do not print every line on the console")
    args = parser.parse_args()

    server = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((args.host, args.port))
    # The port is read from this line by whoever started us.
    print(f"listening on {args.host}:{server.getsockname()[1]}", flush=True)
    # SIGTERM ends the loop like Ctrl-C does, without a traceback.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    clients = {}  # address -> nickname
    try:
        while True:
            data, address = server.recvfrom(2048)
            text = data.decode("utf-8", "replace")
            if address not in clients:
                nick = text.strip() or f"{address[0]}:{address[1]}"
                clients[address] = nick
                server.sendto(f"Server: Welcome {nick}, you can send messages now.".encode(), address)
                if not args.quiet:
                    print(f"-- {nick} joined from {address[0]}:{address[1]}", flush=True)
                continue
            nick = clients[address]
            if text.strip() == "QUIT":
                del clients[address]
                if not args.quiet:
                    print(f"-- {nick} left", flush=True)
                continue
            if not args.quiet:
                print(f"{nick}: {text}", flush=True)
            out = f"{nick}: {text}".encode()
            for other in clients:
                if other != address:
                    try:
                        server.sendto(out, other)
                    except OSError:
                        # A vanished member must not stop the others' chat.
                        pass
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
