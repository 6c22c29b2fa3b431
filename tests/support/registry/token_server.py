#!/usr/bin/env python3
"""Token server for docker-registry's token auth (the Docker Registry v2 "Bearer" flow), for tests.

  token_server.py --cert CERT --key KEY --issuer ISS --service SVC --user NAME:PASSWORD [...]
                  [--bind 127.0.0.1] [--port 0] [--port-file FILE] [--log FILE]
                  [--expires-in 300] [--pull-only NAME ...] [--exp-in SEC] [--deny-file FILE]

Serves GET /token?service=SVC&scope=repository:NAME:ACTIONS[&scope=...] (any path works). The
client authenticates with HTTP Basic; every user given with --user gets the actions it asked for on
every repository ("pull", "push"; a --pull-only user gets only "pull"). No Authorization header, a
malformed one or a wrong user/password gets 401 with `WWW-Authenticate: Basic`; a request for
another service gets 400. The answer is {"token", "access_token", "expires_in", "issued_at"}.

Tokens are RS256 JWTs signed with KEY by the openssl CLI (`openssl dgst -sha256 -sign`), with
CERT (PEM; may hold a chain, leaf first) in the `x5c` header as base64 DER, which is what
docker-registry's `auth.token.rootcertbundle` check wants: the chain must lead to a certificate of
that bundle (a self-signed CERT that is itself the bundle is fine). Claims: iss, sub (the user),
aud (the service), exp, nbf, iat, jti, access [{type, name, actions}].

Failure injection: --exp-in SEC sets the token's exp claim to now + SEC (default: --expires-in)
without changing the expires_in the client is told. docker-registry accepts a token up to 60 s
after its exp (clock-skew leeway), so --exp-in -55 gives tokens the registry refuses (401,
error="invalid_token") about 5 s after issue while the client believes them good for --expires-in:
a token revoked under the client.
While --deny-file FILE exists, every token request gets 401 as if the password were wrong
(credentials revoked, or changed on the server).

--log FILE gets one JSON line per request, appended and flushed before the answer is sent:
{"time", "status", "user", "scopes", "granted"} (never the password or the token). Tests count
token requests with it. --port 0 (default) takes a free port; the bound port is written to
--port-file (atomically, via rename) once the server listens, and printed on stdout.

Python 3 standard library and the openssl CLI only. Stops on SIGTERM/SIGINT.
"""

import argparse
import base64
import datetime
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pem_chain_to_der(path):
    """The certificates of a PEM file, in order, as DER bytes (via the openssl CLI)."""
    with open(path, "r", encoding="ascii") as f:
        text = f.read()
    blocks, cur = [], None
    for line in text.splitlines():
        if line.startswith("-----BEGIN CERTIFICATE-----"):
            cur = [line]
        elif cur is not None:
            cur.append(line)
            if line.startswith("-----END CERTIFICATE-----"):
                blocks.append("\n".join(cur) + "\n")
                cur = None
    if not blocks:
        raise SystemExit(f"token_server: no certificate in {path}")
    ders = []
    for pem in blocks:
        out = subprocess.run(["openssl", "x509", "-outform", "DER"], input=pem.encode("ascii"),
                             capture_output=True, check=True)
        ders.append(out.stdout)
    return ders


class Signer:
    def __init__(self, key, cert):
        self.key = key
        self.x5c = [base64.b64encode(d).decode("ascii") for d in pem_chain_to_der(cert)]

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        # RS256 is RSASSA-PKCS1-v1_5 over SHA-256: exactly what `openssl dgst -sign` with an RSA key does.
        out = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key, "-binary"],
                             input=signing_input.encode("ascii"), capture_output=True, check=True)
        return signing_input + "." + b64url(out.stdout)


def parse_scope(scope):
    """'repository:library/app:pull,push' -> ('repository', 'library/app', ['pull', 'push'])."""
    typ, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not typ or not name:
        return None
    return typ, name, [a for a in actions.split(",") if a]


class Handler(BaseHTTPRequestHandler):
    server_version = "blobd-test-token/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the JSON log is what tests read
        pass

    def _answer(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _log(self, status, user, scopes, granted):
        cfg = self.server.cfg
        if not cfg.log:
            return
        line = json.dumps({"time": time.time(), "status": status, "user": user, "scopes": scopes,
                           "granted": granted}) + "\n"
        with self.server.log_lock, open(cfg.log, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()

    def _user(self):
        """The authenticated user name, or None."""
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not sep:
            return None
        expected = self.server.users.get(user)
        if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
            return None
        return user

    def do_GET(self):
        cfg = self.server.cfg
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        scopes = query.get("scope", [])
        user = self._user()
        if cfg.deny_file and os.path.exists(cfg.deny_file):
            user = None
        if user is None:
            self._log(401, None, scopes, [])
            self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                         [("WWW-Authenticate", 'Basic realm="blobd-test-token"')])
            return
        service = query.get("service", [cfg.service])[0]
        if service != cfg.service:
            self._log(400, user, scopes, [])
            self._answer(400, {"errors": [{"code": "DENIED", "message": f"unknown service {service}"}]})
            return
        access = []
        for s in scopes:
            parsed = parse_scope(s)
            if parsed is None:
                self._log(400, user, scopes, [])
                self._answer(400, {"errors": [{"code": "DENIED", "message": f"bad scope {s}"}]})
                return
            typ, name, actions = parsed
            allowed = {"pull"} if user in self.server.pull_only else {"pull", "push"}
            granted = [a for a in actions if a in allowed]
            access.append({"type": typ, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": cfg.issuer, "sub": user, "aud": cfg.service, "exp": now + (cfg.exp_in if cfg.exp_in is not None else cfg.expires_in),
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(16), "access": access}
        token = self.server.signer.sign(claims)
        self._log(200, user, scopes, access)
        issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        self._answer(200, {"token": token, "access_token": token, "expires_in": cfg.expires_in,
                           "issued_at": issued})

    do_HEAD = do_GET


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD", required=True)
    ap.add_argument("--pull-only", action="append", default=[], metavar="NAME")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--expires-in", type=int, default=300)
    ap.add_argument("--exp-in", type=int)
    ap.add_argument("--deny-file")
    cfg = ap.parse_args()

    users = {}
    for u in cfg.user:
        name, sep, password = u.partition(":")
        if not sep or not name:
            ap.error(f"--user wants NAME:PASSWORD, got a value without ':'")
        users[name] = password

    server = ThreadingHTTPServer((cfg.bind, cfg.port), Handler)
    server.daemon_threads = True
    server.cfg = cfg
    server.users = users
    server.pull_only = set(cfg.pull_only)
    server.signer = Signer(cfg.key, cfg.cert)
    server.log_lock = threading.Lock()
    port = server.server_address[1]
    if cfg.port_file:
        tmp = cfg.port_file + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{port}\n")
        os.rename(tmp, cfg.port_file)
    print(port, flush=True)

    def stop(_sig, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
