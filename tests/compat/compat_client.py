#!/usr/bin/env python3
"""A compatibility client, written from PROTOCOL.md, that behaves as the old
Python file clients do: one request per connection, requests terminated by
"\\n", responses read in 1 MiB chunks, each chunk decoded on its own (which is
why the server's JSON must be ASCII only), until the terminator "\\r\\n\\r\\n"
has arrived; an upload waits for READY, then sends the base64 in 1 MiB lines
and ENDUPLOAD. Standard library only.

It exists so the tests can check that the Rust server still serves those
clients; it must not learn anything the old clients did not do.

usage:
  compat_client.py [--host H] --port P list
  compat_client.py [--host H] --port P get NAME OUT
  compat_client.py [--host H] --port P upload PATH [--name NAME] [--lines whole|chunks]
  compat_client.py [--host H] --port P delete NAME
  compat_client.py [--host H] --port P raw LINE

--lines whole   (the old client) base64 of the whole file, the text cut into
                1 MiB lines: padding only at the very end;
--lines chunks  each 1 MiB of the file encoded on its own: every line ends
                with its own padding.

Prints the server's JSON answer on stdout (for GET without "data_file", whose
decoded content goes to OUT, plus "bytes"). Exit status: 0 the server answered
OK, 1 it answered ERROR (or something unexpected), 2 usage error.
"""

import argparse
import base64
import json
import socket
import sys

CHUNK = 1024 * 1024
TERMINATOR = "\r\n\r\n"
TIMEOUT = 60


def connect(args):
    return socket.create_connection((args.host, args.port), timeout=TIMEOUT)


def receive(sock):
    """Reads 1 MiB chunks until the terminator is seen, decoding each chunk on
    its own as the old clients did; returns the text before the terminator."""
    received = ""
    while True:
        data = sock.recv(CHUNK)
        if not data:
            break
        text = data.decode()  # one chunk on its own: a split character would fail here
        # Only the newest chunk (with the 3 characters before it, in case the
        # terminator is split) can hold the terminator.
        tail = received[-3:]
        received += text
        if TERMINATOR in tail + text:
            break
    if TERMINATOR not in received:
        raise RuntimeError("connection closed before the terminator: %r" % received[:200])
    return received.split(TERMINATOR, 1)[0]


def request(args, line):
    """One request on its own connection; returns the parsed JSON answer."""
    with connect(args) as sock:
        sock.sendall((line + "\n").encode())
        return json.loads(receive(sock))


def upload(args):
    line = "UPLOAD" if args.name is None else "UPLOAD " + args.name
    with connect(args) as sock:
        sock.sendall((line + "\n").encode())
        first = sock.recv(CHUNK).decode()
        if "READY" not in first:
            # An ERROR instead of READY: read the rest of it if it came in pieces.
            if TERMINATOR not in first:
                first += receive(sock)
            return json.loads(first.split(TERMINATOR, 1)[0])
        with open(args.path, "rb") as f:
            if args.lines == "whole":
                text = base64.b64encode(f.read()).decode()
                for i in range(0, len(text), CHUNK):
                    sock.sendall((text[i:i + CHUNK] + "\n").encode())
            else:
                while True:
                    raw = f.read(CHUNK)
                    if not raw:
                        break
                    sock.sendall(base64.b64encode(raw) + b"\n")
        sock.sendall(b"ENDUPLOAD\n")
        return json.loads(receive(sock))


def main():
    p = argparse.ArgumentParser(description="old-style client for the file protocol")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    g = sub.add_parser("get")
    g.add_argument("name")
    g.add_argument("out")
    u = sub.add_parser("upload")
    u.add_argument("path")
    u.add_argument("--name")
    u.add_argument("--lines", choices=["whole", "chunks"], default="whole")
    d = sub.add_parser("delete")
    d.add_argument("name")
    r = sub.add_parser("raw")
    r.add_argument("line")
    args = p.parse_args()

    if args.cmd == "list":
        answer = request(args, "LIST")
    elif args.cmd == "get":
        answer = request(args, "GET " + args.name)
        if answer.get("status") == "OK":
            content = base64.b64decode(answer.pop("data_file"), validate=True)
            with open(args.out, "wb") as f:
                f.write(content)
            answer["bytes"] = len(content)
    elif args.cmd == "upload":
        answer = upload(args)
    elif args.cmd == "delete":
        answer = request(args, "DELETE " + args.name)
    else:
        answer = request(args, args.line)

    json.dump(answer, sys.stdout)
    sys.stdout.write("\n")
    return 0 if answer.get("status") == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
