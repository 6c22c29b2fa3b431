#!/usr/bin/env python3
"""A small forward proxy for tests of the HTTP client's `proxy` support (tests/integration/proxy_test.cpp).

    forward_proxy.py --port-file FILE --log FILE [--user NAME:PASSWORD]

Listens on 127.0.0.1:<free port> (written to --port-file once it listens). Per request it appends
one JSON line to --log: {"method", "target", "proxy_authorization" (the value or null),
"authorization" (true when an Authorization header came), "status" (what it answered)}.

- `CONNECT host:port`: connects there, answers 200 and pumps bytes both ways until either side
  closes (a tunnel: what passes through, TLS for an https origin, is not looked at). An origin it
  cannot reach: 502.
- `GET|HEAD http://host:port/path` (absolute form): asks the origin for /path with the headers it
  got minus Proxy-Authorization, relays the answer (header and Content-Length body) with
  `Connection: close`, and closes. Any other (origin-form) target: 400.
- With --user, a request without that `Proxy-Authorization: Basic` gets 407 with
  `Proxy-Authenticate: Basic realm="test-proxy"`.
Standard library only; one thread per connection; stopped by SIGTERM.
"""
import argparse
import base64
import json
import os
import select
import socket
import threading
import urllib.parse

lock = threading.Lock()


def log(path, entry):
    with lock, open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return (lines[0], headers), rest


def header(headers, name):
    for n, v in headers:
        if n.lower() == name:
            return v
    return None


def answer(sock, status, reason, extra=""):
    sock.sendall(f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())


def pump(a, b):
    socks = [a, b]
    while True:
        ready, _, _ = select.select(socks, [], [], 30)
        if not ready:
            return
        for s in ready:
            data = s.recv(65536)
            if not data:
                return
            (b if s is a else a).sendall(data)


def handle(conn, args):
    try:
        head, rest = read_head(conn)
        if head is None:
            return
        (line, headers) = head
        method, target, _ = line.split(" ", 2)
        entry = {"method": method, "target": target,
                 "proxy_authorization": header(headers, "proxy-authorization"),
                 "authorization": header(headers, "authorization") is not None}
        if args.user and entry["proxy_authorization"] != "Basic " + base64.b64encode(args.user.encode()).decode():
            entry["status"] = 407
            log(args.log, entry)
            return answer(conn, 407, "Proxy Authentication Required", 'Proxy-Authenticate: Basic realm="test-proxy"\r\n')
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            try:
                up = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
            except OSError:
                entry["status"] = 502
                log(args.log, entry)
                return answer(conn, 502, "Bad Gateway")
            entry["status"] = 200
            log(args.log, entry)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                up.sendall(rest)
            with up:
                pump(conn, up)
            return
        u = urllib.parse.urlsplit(target)
        if u.scheme != "http" or not u.hostname:
            entry["status"] = 400
            log(args.log, entry)
            return answer(conn, 400, "Bad Request")
        try:
            up = socket.create_connection((u.hostname, u.port or 80), timeout=5)
        except OSError:
            entry["status"] = 502
            log(args.log, entry)
            return answer(conn, 502, "Bad Gateway")
        with up:
            path = u.path or "/"
            if u.query:
                path += "?" + u.query
            out = f"{method} {path} HTTP/1.1\r\n"
            for n, v in headers:
                if n.lower() not in ("proxy-authorization", "proxy-connection", "connection"):
                    out += f"{n}: {v}\r\n"
            up.sendall((out + "Connection: close\r\n\r\n").encode("latin-1"))
            rhead, body = read_head(up)
            if rhead is None:
                return answer(conn, 502, "Bad Gateway")
            status_line, rheaders = rhead
            entry["status"] = int(status_line.split(" ")[1])
            log(args.log, entry)
            length = header(rheaders, "content-length")
            want = 0 if method == "HEAD" or length is None else int(length)
            while len(body) < want:
                chunk = up.recv(65536)
                if not chunk:
                    break
                body += chunk
            out = status_line + "\r\n"
            for n, v in rheaders:
                if n.lower() != "connection":
                    out += f"{n}: {v}\r\n"
            conn.sendall((out + "Connection: close\r\n\r\n").encode("latin-1") + body[:want])
    except OSError:
        pass
    finally:
        conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--user")
    args = p.parse_args()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.rename(tmp, args.port_file)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, args), daemon=True).start()


if __name__ == "__main__":
    main()
