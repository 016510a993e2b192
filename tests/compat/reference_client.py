#!/usr/bin/env python3
"""A client in the style of the course's reference file client and the
clients built from it: one request per connection, sent with ONE sendall and
NO line end at all, then recv(16) until "\\r\\n\\r\\n" (their server took each
recv() as one request). Standard library only.

It exists so the tests can check that the server serves such clients after its
unterminated wait (PROTOCOL.md, "Unterminated requests"); it must not learn
anything those clients did not do.

usage:
  reference_client.py [--host H] --port P list
  reference_client.py [--host H] --port P get NAME OUT
  reference_client.py [--host H] --port P upload PATH NAME [--length N|right]
  reference_client.py [--host H] --port P delete NAME

upload sends "UPLOAD NAME <base64>", or with --length "UPLOAD NAME N <base64>"
(--length right: the base64's true length).

Prints one JSON object on stdout: "answer" (the server's JSON; for GET
without "data_file", whose decoded content goes to OUT, and "bytes" its
length) and "seconds", the time from the send to the terminator. Exit status:
0 the server answered OK, 1 it answered ERROR (or nothing), 2 usage error.
"""

import argparse
import base64
import json
import socket
import sys
import time

TERMINATOR = b"\r\n\r\n"
TIMEOUT = 60


def request(args, data):
    """One request without a line end on its own connection: returns the
    parsed answer and the seconds from the send to the terminator."""
    with socket.create_connection((args.host, args.port), timeout=TIMEOUT) as sock:
        t0 = time.monotonic()
        sock.sendall(data)
        chunks = []
        tail = b""
        while True:
            data = sock.recv(16)
            if not data:
                raise RuntimeError("connection closed before the terminator")
            chunks.append(data)
            # Only the newest chunk and the 3 bytes before it can end the answer.
            if TERMINATOR in tail + data:
                break
            tail = (tail + data)[-3:]
        seconds = time.monotonic() - t0
    text = b"".join(chunks).decode()
    return json.loads(text.split("\r\n\r\n", 1)[0]), seconds


def main():
    p = argparse.ArgumentParser(description="reference-style client: requests without line ends")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    g = sub.add_parser("get")
    g.add_argument("name")
    g.add_argument("out")
    u = sub.add_parser("upload")
    u.add_argument("path")
    u.add_argument("name")
    u.add_argument("--length")
    d = sub.add_parser("delete")
    d.add_argument("name")
    args = p.parse_args()

    if args.cmd == "list":
        answer, seconds = request(args, b"LIST")
    elif args.cmd == "get":
        answer, seconds = request(args, ("GET " + args.name).encode())
        if answer.get("status") == "OK":
            content = base64.b64decode(answer.pop("data_file"), validate=True)
            with open(args.out, "wb") as f:
                f.write(content)
            answer["bytes"] = len(content)
    elif args.cmd == "upload":
        with open(args.path, "rb") as f:
            text = base64.b64encode(f.read())
        head = "UPLOAD " + args.name + " "
        if args.length is not None:
            n = len(text) if args.length == "right" else int(args.length)
            head += str(n) + " "
        answer, seconds = request(args, head.encode() + text)
    else:
        answer, seconds = request(args, ("DELETE " + args.name).encode())

    json.dump({"answer": answer, "seconds": seconds}, sys.stdout)
    sys.stdout.write("\n")
    return 0 if answer.get("status") == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
