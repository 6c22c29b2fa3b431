#!/usr/bin/env python3
"""Uploads files as blobs to a Docker Registry v2 (token or no auth), for tests.

  push.py --registry http://127.0.0.1:PORT --repository library/app
          [--user NAME --password PASSWORD] FILE...

Each FILE becomes the blob sha256:<hex of its contents> in the repository: HEAD
/v2/<repo>/blobs/<digest> (skipped when already there), else a monolithic upload, POST
/v2/<repo>/blobs/uploads/ (202 + Location) then PUT <Location>&digest=<digest> with the bytes (201).
A 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...` gets a token from the realm
with the given Basic credentials (scope repository:<repo>:pull,push), reused for later requests.

Prints one line per file: `sha256:<hex> <size> <FILE>`. Exit status 0 when all were stored, 1 with
a message otherwise. Python 3 standard library only.
"""

import argparse
import base64
import hashlib
import http.client
import json
import re
import sys
import urllib.parse


class Error(Exception):
    pass


def parse_challenge(value):
    """'Bearer realm="x",service="y",scope="z"' -> ('bearer', {'realm': 'x', ...})."""
    scheme, _, rest = value.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class Client:
    def __init__(self, base, user, password):
        u = urllib.parse.urlsplit(base)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise Error(f"bad registry URL {base}")
        self.scheme, self.netloc = u.scheme, u.netloc
        self.user, self.password = user, password
        self.token = None
        self.conn = None

    def _connect(self, scheme, netloc):
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        return cls(netloc, timeout=60)

    def _raw(self, method, url, body=None, headers=None):
        u = urllib.parse.urlsplit(url)
        scheme, netloc = (u.scheme or self.scheme), (u.netloc or self.netloc)
        target = u.path + ("?" + u.query if u.query else "")
        conn = self._connect(scheme, netloc)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.headers, data
        finally:
            conn.close()

    def _fetch_token(self, challenge):
        params = challenge
        realm = params.get("realm")
        if not realm:
            raise Error("Bearer challenge without realm")
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {}
        if self.user is not None:
            cred = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            headers["Authorization"] = "Basic " + cred
        status, _, data = self._raw("GET", url, headers=headers)
        if status != 200:
            raise Error(f"token server {realm} answered {status}: {data[:200]!r}")
        doc = json.loads(data)
        token = doc.get("token") or doc.get("access_token")
        if not token:
            raise Error("token server answer without a token")
        self.token = token

    def request(self, method, url, body=None, headers=None):
        """One request; on a Bearer 401, fetch a token and send it again once."""
        for attempt in (0, 1):
            h = dict(headers or {})
            if self.token:
                h["Authorization"] = "Bearer " + self.token
            status, resp_headers, data = self._raw(method, url, body, h)
            if status != 401 or attempt == 1:
                return status, resp_headers, data
            scheme, params = parse_challenge(resp_headers.get("WWW-Authenticate", ""))
            if scheme != "bearer":
                return status, resp_headers, data
            self._fetch_token(params)
        raise AssertionError("unreachable")


def push(client, base, repo, path):
    with open(path, "rb") as f:
        data = f.read()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob_url = f"{base}/v2/{repo}/blobs/{digest}"
    status, headers, _ = client.request("HEAD", blob_url)
    if status == 200:
        return digest, len(data)
    if status != 404:
        raise Error(f"HEAD {blob_url}: {status}")
    status, headers, body = client.request("POST", f"{base}/v2/{repo}/blobs/uploads/",
                                           body=b"", headers={"Content-Length": "0"})
    if status != 202:
        raise Error(f"starting the upload of {path}: {status} {body[:300]!r}")
    location = urllib.parse.urljoin(base + "/", headers.get("Location", ""))
    sep = "&" if "?" in location else "?"
    put_url = location + sep + "digest=" + urllib.parse.quote(digest, safe="")
    status, headers, body = client.request(
        "PUT", put_url, body=data,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})
    if status != 201:
        raise Error(f"finishing the upload of {path}: {status} {body[:300]!r}")
    if headers.get("Docker-Content-Digest", digest) != digest:
        raise Error(f"registry stored {headers.get('Docker-Content-Digest')} for {path}, expected {digest}")
    return digest, len(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--registry", required=True)
    ap.add_argument("--repository", required=True)
    ap.add_argument("--user")
    ap.add_argument("--password", default="")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    base = args.registry.rstrip("/")
    try:
        client = Client(base, args.user, args.password)
        for path in args.files:
            digest, size = push(client, base, args.repository, path)
            print(f"{digest} {size} {path}", flush=True)
    except (Error, OSError, http.client.HTTPException, ValueError) as e:
        print(f"push.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
