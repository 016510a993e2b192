#!/usr/bin/env python3
"""A guest file server: the "other server" of the tests, written the way the
exercise's Python servers are (PROTOCOL.md, with their quirks), so that our
client and sweep are tested against a server that is not ours. Standard
library only (Python 3.11).

usage:
  file_server.py --mode thread|process --workers N --port P [--host H] [--root DIR]
                 [--idle-timeout S] [--corrupt-download] [--truncate-upload]
                 [--never-ready] [--ignore-sigterm]

It prints nothing on stdout; it logs to stderr. It exits 0 on SIGTERM or
SIGINT once the requests in flight are answered, 2 on a usage error, 3 when
it cannot bind its address.

Serving:
  thread   one acceptor thread hands each connection to a ThreadPoolExecutor
           of N threads (a connection holds a thread until it closes);
  process  N worker processes forked at start, each accepting on the shared
           listening socket and serving one connection at a time; a worker
           that dies is replaced.

What it says, and how it differs from fsbench's own server:
  LIST           {"status": "OK", "data": [names]}
  GET name       {"data_file": "<base64>", "status": "OK", "data_namafile": name,
                  "ukuran": <bytes>}  -- the content FIRST, an extra key
  DELETE name    {"status": "ok", "message": ...}  -- status in lower case
  UPLOAD [name]  READY TO RECEIVE FILE, base64 lines, ENDUPLOAD; a plain
                 UPLOAD is stored under the MD5 of the content (not SHA-256)
                 plus the extension PROTOCOL.md detects; the answer is
                 {"status": "OK", "message": "File uploaded successfully",
                  "data": {"file_path": stored name}}
  anything else  {"status": "ERROR", "data": "request tidak dikenali"} (STATS too)
Errors carry a reason in Indonesian. Every JSON answer is written with one
send and its terminator "\\r\\n\\r\\n" with another. Requests end with "\\n"
or "\\r\\n"; a connection carries any number of them.

Memory is bounded: GET reads and encodes the file 192 KiB at a time, an
upload is decoded one base64 line (at most 16 MiB of text) at a time into a
hidden temporary file (".upload-*.part", never listed), renamed into place
once complete.

Faults, each off by default, for the tests:
  --corrupt-download  every GET flips the byte at offset size // 2;
  --truncate-upload   uploads are stored without their last byte, and the
                      answer still says OK;
  --never-ready       binds and listens (so a connect succeeds, from the
                      kernel's backlog) but never accepts nor answers;
  --ignore-sigterm    SIGTERM is ignored (SIGINT still stops it, SIGKILL kills it);
  --stall-get         a GET is never answered: its connection waits until the
                      client closes it or the server stops (a transfer that
                      lasts as long as a test needs, with no clock in it).

Shutdown: a connection waiting for its next request is closed; one in the
middle of a request is answered first. In process mode the parent closes the
write end of a pipe every worker holds: a worker reads its end at EOF and
exits after its connection, so the workers also go when the parent is
killed. Workers ignore SIGINT and SIGTERM (a Ctrl-C reaches the whole
process group; the parent alone decides).
"""

import argparse
import base64
import binascii
import hashlib
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import socket
import stat
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

TERMINATOR = b"\r\n\r\n"
READY = b"READY TO RECEIVE FILE" + TERMINATOR
UNKNOWN = "request tidak dikenali"
NOT_FOUND = "file tidak ditemukan"

RECV_SIZE = 256 * 1024
# Raw bytes read and encoded at a time by GET: a multiple of 3, so that the
# pieces of base64 join into one text with padding only at its end.
GET_CHUNK = 192 * 1024
MAX_LINE = 64 * 1024
MAX_UPLOAD_LINE = 16 * 1024 * 1024
MAX_UPLOAD = 1 << 30
# How long the parent waits for its workers to finish at shutdown.
DRAIN_SECONDS = 30

EXIT_USAGE = 2
EXIT_BIND = 3

_temp_counter = itertools.count()


def log(msg):
    sys.stderr.write("guest[%d]: %s\n" % (os.getpid(), msg))
    sys.stderr.flush()


class LineTooLong(Exception):
    pass


class Stopped(Exception):
    """The server stops and the connection is between two requests."""


class Faults:
    def __init__(self, args):
        self.corrupt_download = args.corrupt_download
        self.truncate_upload = args.truncate_upload
        self.stall_get = args.stall_get


class Stop:
    """A stop request, readable by poll() in every thread: a pipe that is
    written once and never drained. Safe to trigger from a signal handler."""

    def __init__(self):
        self.r, self.w = os.pipe()
        self.set = False

    def trigger(self):
        if not self.set:
            self.set = True
            os.write(self.w, b"x")


# ---------------------------------------------------------------------------
# One connection


class Conn:
    """A client connection: buffered line reads that also watch the stop
    descriptors between requests, and answers written as the exercise's
    servers write them (the JSON, then the terminator in a send of its own)."""

    def __init__(self, sock, stop_fds, idle_timeout):
        self.sock = sock
        self.buf = bytearray()
        self.scanned = 0
        self.idle_timeout = idle_timeout
        # Two pollers: the socket alone (inside a request, which is always
        # finished), and the socket with the stop descriptors (between two
        # requests). A stop pipe stays readable once written, so it is only
        # watched where it ends the wait.
        self.sock_only = select.poll()
        self.sock_only.register(sock.fileno(), select.POLLIN)
        self.with_stop = select.poll()
        self.with_stop.register(sock.fileno(), select.POLLIN)
        for fd in stop_fds:
            self.with_stop.register(fd, select.POLLIN)

    def _wait(self, between_requests):
        """Waits until the socket is readable. Raises Stopped if the server
        stops while nothing of a next request has arrived, TimeoutError after
        the idle timeout."""
        idle = between_requests and not self.buf
        poller = self.with_stop if idle else self.sock_only
        events = dict(poller.poll(self.idle_timeout * 1000))
        if self.sock.fileno() in events:
            return
        if events:
            raise Stopped()
        raise TimeoutError("idle for %s s" % self.idle_timeout)

    def read_line(self, limit, between_requests=False):
        """The next line without its "\\n" (and a "\\r" before it), or None
        when the client has closed."""
        while True:
            i = self.buf.find(b"\n", self.scanned)
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 1]
                self.scanned = 0
                return line[:-1] if line.endswith(b"\r") else line
            self.scanned = len(self.buf)
            if len(self.buf) > limit:
                raise LineTooLong()
            self._wait(between_requests)
            data = self.sock.recv(RECV_SIZE)
            if not data:
                return None
            self.buf += data

    def send(self, data):
        self.sock.sendall(data)

    def answer(self, obj):
        # json.dumps writes ASCII only (ensure_ascii), as PROTOCOL.md asks.
        self.sock.sendall(json.dumps(obj).encode("ascii"))
        self.sock.sendall(TERMINATOR)

    def error(self, reason):
        self.answer({"status": "ERROR", "data": reason})


def split_words(text):
    """Splits a request line into words: spaces or tabs between them, double
    quotes around a word with spaces, \\" and \\\\ inside quotes."""
    words, cur, i, quoted, in_word = [], [], 0, False, False
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
                cur.append(text[i + 1])
                i += 1
            elif c == '"':
                quoted = False
            else:
                cur.append(c)
        elif c in " \t":
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
        elif c == '"':
            quoted = in_word = True
        else:
            cur.append(c)
            in_word = True
        i += 1
    if quoted:
        raise ValueError("unclosed quote")
    if in_word:
        words.append("".join(cur))
    return words


def bad_name(name):
    """Why a name is refused (PROTOCOL.md, "Names"), or None."""
    if not name or len(name.encode("utf-8")) > 255:
        return "nama file tidak valid"
    if name.startswith(".") or "/" in name or "\\" in name:
        return "nama file tidak valid"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "nama file tidak valid"
    return None


def detect_extension(head):
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpeg"
    if head.startswith(b"%PDF"):
        return ".pdf"
    if head.startswith(b"GIF87a") or head.startswith(b"GIF89a"):
        return ".gif"
    if head.startswith(b"PK\x03\x04"):
        return ".zip"
    if head.startswith(b"ID3") or head.startswith(b"\xff\xfb"):
        return ".mpeg"
    return ""


class Handler:
    """Serves the requests of one connection after another."""

    def __init__(self, root, faults, idle_timeout):
        self.root = root
        self.faults = faults
        self.idle_timeout = idle_timeout

    def serve(self, sock, stop_fds):
        try:
            sock.setblocking(True)
            sock.settimeout(self.idle_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Conn(sock, stop_fds, self.idle_timeout)
            while self.one_request(conn):
                pass
        except Stopped:
            pass
        except (OSError, TimeoutError) as e:
            log("connection ends: %s" % e)
        except Exception as e:  # a bug of ours: log it, keep the worker
            log("connection failed: %r" % e)
        finally:
            sock.close()

    def one_request(self, conn):
        """Serves one request; False when the connection is to be closed."""
        try:
            line = conn.read_line(MAX_LINE, between_requests=True)
        except LineTooLong:
            conn.error("request terlalu panjang")
            return False
        if line is None:
            return False
        if not line.strip():
            return True
        try:
            words = split_words(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            conn.error(UNKNOWN)
            return True
        command, args = words[0].upper(), words[1:]
        if command == "LIST" and not args:
            self.list(conn)
        elif command == "GET" and len(args) == 1:
            self.get(conn, args[0])
        elif command == "DELETE" and len(args) == 1:
            self.delete(conn, args[0])
        elif command == "UPLOAD" and len(args) <= 1:
            return self.upload(conn, args[0] if args else None)
        else:
            conn.error(UNKNOWN)
        return True

    def list(self, conn):
        with os.scandir(self.root) as entries:
            names = sorted(
                e.name
                for e in entries
                if not e.name.startswith(".") and e.is_file(follow_symlinks=False)
            )
        conn.answer({"status": "OK", "data": names})

    def open_regular(self, name):
        """A descriptor of the regular file `name` of the store, or None."""
        try:
            fd = os.open(os.path.join(self.root, name), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd

    def get(self, conn, name):
        if self.faults.stall_get:
            # Until the client goes (EOF or reset) or the server stops.
            try:
                while conn._wait(True) is None and conn.sock.recv(65536):
                    pass
            except (OSError, TimeoutError, Stopped):
                pass
            raise Stopped()
        reason = bad_name(name)
        if reason:
            conn.error(reason)
            return
        fd = self.open_regular(name)
        if fd is None:
            conn.error(NOT_FOUND)
            return
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            flip_at = size // 2 if self.faults.corrupt_download and size > 0 else -1
            conn.send(b'{"data_file": "')
            pos = 0
            while True:
                chunk = f.read(GET_CHUNK)
                if not chunk:
                    break
                if pos <= flip_at < pos + len(chunk):
                    chunk = bytearray(chunk)
                    chunk[flip_at - pos] ^= 0xFF
                conn.send(base64.b64encode(chunk))
                pos += len(chunk)
        tail = '", "status": "OK", "data_namafile": %s, "ukuran": %d}' % (json.dumps(name), pos)
        conn.send(tail.encode("ascii"))
        conn.send(TERMINATOR)

    def delete(self, conn, name):
        reason = bad_name(name)
        if reason:
            conn.error(reason)
            return
        path = os.path.join(self.root, name)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise FileNotFoundError(path)
            os.unlink(path)
        except FileNotFoundError:
            conn.error(NOT_FOUND)
            return
        except OSError as e:
            conn.error("file tidak bisa dihapus: %s" % e.strerror)
            return
        # The quirk our client must take: a status word in lower case.
        conn.answer({"status": "ok", "message": "File deleted successfully"})

    def upload(self, conn, name):
        """A streamed upload; False when the connection is to be closed (the
        body could not be read to its end)."""
        if name is not None:
            reason = bad_name(name)
            if reason:
                conn.error(reason)
                return True
        tmp = os.path.join(
            self.root,
            ".upload-%d-%d-%d.part" % (os.getpid(), threading.get_ident(), next(_temp_counter)),
        )
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            conn.error("file tidak bisa disimpan: %s" % e.strerror)
            return True
        stored = None
        try:
            with os.fdopen(fd, "wb") as f:
                conn.send(READY)
                md5, head, size = hashlib.md5(), b"", 0
                while True:
                    try:
                        line = conn.read_line(MAX_UPLOAD_LINE)
                    except LineTooLong:
                        conn.error("baris upload terlalu panjang")
                        return False
                    if line is None:
                        log("upload: the client went away")
                        return False
                    if line == b"ENDUPLOAD":
                        break
                    try:
                        data = binascii.a2b_base64(line, strict_mode=True)
                    except binascii.Error:
                        conn.error("data base64 tidak valid")
                        return False
                    size += len(data)
                    if size > MAX_UPLOAD:
                        conn.error("file terlalu besar")
                        return False
                    if len(head) < 8:
                        head += data[: 8 - len(head)]
                    md5.update(data)
                    f.write(data)
                if self.faults.truncate_upload and size > 0:
                    f.flush()
                    f.truncate(size - 1)
            final = name if name is not None else md5.hexdigest() + detect_extension(head)
            os.rename(tmp, os.path.join(self.root, final))
            stored = final
        finally:
            if stored is None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        conn.answer(
            {
                "status": "OK",
                "message": "File uploaded successfully",
                "data": {"file_path": stored},
            }
        )
        return True


# ---------------------------------------------------------------------------
# The pools


def wait_readable(fds, timeout=None):
    """The descriptors of `fds` that are readable (or hung up)."""
    p = select.poll()
    for fd in fds:
        p.register(fd, select.POLLIN)
    return {fd for fd, _ in p.poll(None if timeout is None else timeout * 1000)}


def run_thread_mode(listener, handler, workers, stop):
    # A signal sent to the process may be delivered to any thread that does
    # not block it; only the main thread runs Python's handlers, and it sits
    # in poll(): the workers block SIGINT and SIGTERM, so the signal reaches
    # the main thread and wakes its poll.
    pool = ThreadPoolExecutor(
        max_workers=workers,
        thread_name_prefix="worker",
        initializer=signal.pthread_sigmask,
        initargs=(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}),
    )
    while True:
        ready = wait_readable([listener.fileno(), stop.r])
        if stop.r in ready:
            break
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            continue
        pool.submit(handler.serve, sock, [stop.r])
    listener.close()
    log("stopping: waiting for the connections in service")
    pool.shutdown(wait=True)


def worker_main(listener, alive_r, alive_w, stop, handler, index):
    """A worker process: accepts on the shared listener and serves one
    connection at a time, until the parent closes (or loses) its end of the
    alive pipe."""
    signal.set_wakeup_fd(-1)  # the parent's stop pipe is not ours to write
    os.close(alive_w)
    os.close(stop.r)
    os.close(stop.w)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        ready = wait_readable([listener.fileno(), alive_r])
        if alive_r in ready:
            break
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            continue  # another worker took it
        handler.serve(sock, [alive_r])
    listener.close()


def run_process_mode(listener, handler, workers, stop):
    alive_r, alive_w = os.pipe()
    fork = multiprocessing.get_context("fork")

    def start(i):
        p = fork.Process(
            target=worker_main,
            args=(listener, alive_r, alive_w, stop, handler, i),
            name="worker-%d" % i,
        )
        p.start()
        return p, time.monotonic()

    procs = [start(i) for i in range(workers)]
    log("workers: %s" % " ".join(str(p.pid) for p, _ in procs))
    while not stop.set:
        ready = multiprocessing.connection.wait([stop.r] + [p.sentinel for p, _ in procs])
        for i, (p, started) in enumerate(procs):
            if p.sentinel in ready and not stop.set:
                p.join()
                log("worker %d (pid %d) died with %s; replacing it" % (i, p.pid, p.exitcode))
                if time.monotonic() - started < 1:
                    wait_readable([stop.r], timeout=1)  # one that dies at start: not in a loop
                procs[i] = start(i)
    listener.close()
    os.close(alive_w)  # every worker sees EOF: it finishes its connection and exits
    log("stopping: waiting for the workers")
    deadline = time.monotonic() + DRAIN_SECONDS
    for p, _ in procs:
        p.join(max(0, deadline - time.monotonic()))
        if p.exitcode is None:
            log("worker pid %d still busy after %d s: killed" % (p.pid, DRAIN_SECONDS))
            p.kill()
            p.join()


def parse_args(argv):
    ap = argparse.ArgumentParser(description="A guest file server for fsbench's tests.")
    ap.add_argument("--mode", choices=["thread", "process"], required=True)
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--root", default="files")
    ap.add_argument("--idle-timeout", type=float, default=60.0)
    ap.add_argument("--corrupt-download", action="store_true")
    ap.add_argument("--truncate-upload", action="store_true")
    ap.add_argument("--never-ready", action="store_true")
    ap.add_argument("--ignore-sigterm", action="store_true")
    ap.add_argument("--stall-get", action="store_true")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error("--workers must be at least 1")
    if not 0 < args.port < 65536:
        ap.error("--port must be 1 to 65535")
    return args


def main(argv):
    args = parse_args(argv)
    os.makedirs(args.root, exist_ok=True)
    stop = Stop()
    on_signal = lambda signum, frame: stop.trigger()  # noqa: E731
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if args.ignore_sigterm else on_signal)
    # Whichever thread the kernel gives a signal to, its C-level handler
    # writes a byte here: the stop pipe becomes readable and every poll() on
    # it wakes up at once (a Python handler runs only in the main thread, and
    # only once that thread is awake).
    os.set_blocking(stop.w, False)
    signal.set_wakeup_fd(stop.w, warn_on_full_buffer=False)

    listener = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, args.port))
    except OSError as e:
        log("cannot bind %s:%d: %s" % (args.host, args.port, e))
        return EXIT_BIND
    listener.listen(128)
    # Non-blocking: the workers of process mode race for each connection.
    listener.setblocking(False)
    log(
        "listening on %s:%d, %s mode, %d workers%s"
        % (
            args.host,
            args.port,
            args.mode,
            args.workers,
            " (never ready)" if args.never_ready else "",
        )
    )

    if args.never_ready:
        wait_readable([stop.r])
    else:
        handler = Handler(args.root, Faults(args), args.idle_timeout)
        run = run_thread_mode if args.mode == "thread" else run_process_mode
        run(listener, handler, args.workers, stop)
    listener.close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
