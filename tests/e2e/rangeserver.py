#!/usr/bin/env python3
"""A small HTTP server for the e2e tests: serves files of ROOT with Range support, and can stall.

    rangeserver.py ROOT PORT STATE_DIR

While STATE_DIR/stall exists, a GET waits (after writing STATE_DIR/stalled) until the file is
removed: a test can catch the daemon with a fetch in flight. Every GET is appended to
STATE_DIR/requests as "path first-last".

STATE_DIR/mode, if present, makes GETs misbehave (HEADs still answer, so mounts work):
    500         answer 500 Internal Server Error
    stall-body  send the 206 header and the first 1000 bytes of the body, then nothing while the
                mode stays (at most 120 s), then close the connection
"""
import http.server
import os
import re
import sys
import time

root, port, state = sys.argv[1], int(sys.argv[2]), sys.argv[3]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _file(self):
        name = self.path.lstrip("/")
        if "/" in name or name.startswith("."):
            return None
        path = os.path.join(root, name)
        return path if os.path.isfile(path) else None

    def _mode(self):
        try:
            with open(os.path.join(state, "mode")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    def do_HEAD(self):
        path = self._file()
        if not path:
            return self._empty(404)
        self.send_response(200)
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def _empty(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        path = self._file()
        if not path:
            return self._empty(404)
        size = os.path.getsize(path)
        first, last = 0, size - 1
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            first = int(m.group(1))
            last = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            if first > last:
                return self._empty(416)
        with open(os.path.join(state, "requests"), "a") as f:
            f.write(f"{self.path} {first}-{last}\n")
        mode = self._mode()
        if mode == "500":
            return self._empty(500)
        if mode == "stall-body":
            with open(path, "rb") as f:
                f.seek(first)
                body = f.read(last - first + 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body[:1000])
                self.wfile.flush()
                end = time.monotonic() + 120
                while self._mode() == "stall-body" and time.monotonic() < end:
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return
        stall = os.path.join(state, "stall")
        if os.path.exists(stall):
            open(os.path.join(state, "stalled"), "w").close()
            while os.path.exists(stall):
                time.sleep(0.05)
        with open(path, "rb") as f:
            f.seek(first)
            body = f.read(last - first + 1)
        self.send_response(206 if m else 200)
        if m:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


http.server.ThreadingHTTPServer.daemon_threads = True
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
open(os.path.join(state, "listening"), "w").close()
srv.serve_forever()
