#!/usr/bin/env python3
"""Writes the hand-written seed corpus, tests/fuzz/corpus/<target>/<name>, from the tables below.

Run from anywhere: python3 tests/fuzz/make_seeds.py. Seeds the fuzzer found (minimised,
named found-*) live next to these in the corpus and are kept by hand; this script only (re)writes
the files it names. docs/fuzzing.md says what each target reads.
"""
import os
import struct

top = os.path.dirname(os.path.abspath(__file__))
corpus = os.path.join(top, "corpus")

OPEN, CLOSE, READ = 0, 1, 2


def msg(msg_id, opcode, object_id, payload=b"", length=None):
    size = 16 + len(payload)
    return struct.pack("<IIII", msg_id, opcode, size if length is None else length, object_id) + payload


def open_msg(volume, cookie, fd=5, flags=0, msg_id=1, object_id=2, vsize=None, csize=None):
    data = volume + cookie
    payload = struct.pack("<IIII", len(volume) if vsize is None else vsize, len(cookie) if csize is None else csize,
                          fd, flags) + data
    return msg(msg_id, OPEN, object_id, payload)


def read_msg(off, length, msg_id=3, object_id=2):
    return msg(msg_id, READ, object_id, struct.pack("<QQ", off, length))


parse = {
    "open-domain": open_msg(b"erofs,d1\0", b"img1"),
    "open-fsid": open_msg(b"erofs,fsid-0123\0", b"sha256:" + b"ab" * 32),
    "open-binary-cookie": open_msg(b"erofs,d1\0", bytes(range(1, 40))),
    "open-dotdot-cookie": open_msg(b"erofs,d1\0", b".."),
    "open-slash-cookie": open_msg(b"erofs,d1\0", b"a/b"),
    "open-max-keys": open_msg(b"erofs," + b"v" * 249 + b"\0", b"c" * 255),
    "open-unterminated-volume": open_msg(b"erofs,d1", b"img1"),
    "open-key-overflow": open_msg(b"erofs,d1\0", b"img1", vsize=0xFFFFFFF0),
    "open-bad-fd": open_msg(b"erofs,d1\0", b"img1", fd=0xFFFFFFFF),
    "open-other-netfs": open_msg(b"nfs,server\0", b"x"),
    "read-chunk": read_msg(4096, 131072),
    "read-zero": read_msg(0, 0),
    "read-overflow": read_msg(0xFFFFFFFFFFFFF000, 0x2000),
    "close": msg(4, CLOSE, 2),
    "bad-length": msg(5, CLOSE, 2, length=1024),
    "unknown-opcode": msg(6, 7, 2),
    "truncated-header": b"\x01\x00\x00\x00\x02\x00",
    "read-truncated": msg(7, READ, 2, b"\x00" * 8),
}

url = {
    # <url>\n<Location>\n<blob name or repository>
    "registry-relative": "https://registry.example:5000/v2/library/app/blobs/sha256:ab\n../../other/blobs/x\nlibrary/app",
    "s3-signed-redirect": "https://registry-1.docker.io/v2/library/alpine/blobs/sha256:0ac3\n"
                          "https://production.cloudflare.docker.com/registry-v2/docker/registry/v2/blobs/sha256/0a/"
                          "0ac3/data?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abcdef\nlibrary/alpine",
    "scheme-relative": "http://mirror.local/base/\n//cdn.example/blobs/1?sig=2\nimg1",
    "absolute-path": "https://h.example/a/b/c\n/x/./y/../z\nsha256:abcd",
    "query-only": "https://h.example/a/b?x=1\n?y=2\nname with spaces",
    "ipv6": "http://[fe80::1]:8080/blobs\n[::1]/x\nfoo%2Fbar",
    "ipv6-bad": "http://[fe80::1/blobs\nhttps://[::1]:0/\n../..",
    "port-max": "https://example.com:65535/p\nhttps://example.com:65536/p\nlibrary/my-app__v2.x",
    "userinfo": "https://user:pass@example.com/p\nhttp://a@b/c\nUPPER/case",
    "fragment": "https://example.com/p#frag\n/new#frag\nrepo//double",
    "uppercase": "HTTPS://EXAMPLE.COM/Path\nHTTP://OTHER/\na-----b",
    "dot-segments": "https://example.com/a/b/c/d;p?q\n../../../g\nx.y_z__w",
    "mixed-scheme": "https://example.com/p\nftp://example.com/f\n_leading",
    "spaces": "https://example.com/a b\n  /trimmed  \n\t",
    "empty-host": "http:///path\nhttp://\n",
    "control": "https://example.com/\x01\n/\x7f\n\xc3\xa9",
    "opaque-scheme": "https://example.com/dir/file\nmailto:x@y\nlibrary/app/",
    "bare-dots": "https://example.com/a/b\n.\n..",
}

http = {
    # "<off> <len> <known size or -> <body limit>\n" + the raw response
    "206-exact": "4096 4096 1048576 1048576\nHTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4096-8191/1048576\r\n"
                 "Content-Length: 4096\r\n\r\n" + "x" * 64,
    "206-unknown-total": "0 16 - 1048576\nHTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-15/*\r\n"
                         "Content-Length: 16\r\n\r\n0123456789abcdef",
    "206-wrong-range": "0 16 100 1048576\nHTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1-16/100\r\n"
                       "Content-Length: 16\r\n\r\n0123456789abcdef",
    "206-size-changed": "0 16 100 1048576\nHTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-15/99\r\n\r\n",
    "206-chunked": "0 8 - 1048576\nHTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-7/8\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n",
    "206-multipart": "0 8 - 1048576\nHTTP/1.1 206 Partial Content\r\nContent-Type: multipart/byteranges; boundary=x\r\n\r\n",
    "200-whole": "2 3 10 1048576\nHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
    "200-too-big": "0 16 - 1024\nHTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n",
    "200-close-delimited": "0 4 - 1048576\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabcdefgh",
    "200-gzip": "0 4 - 1048576\nHTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd",
    "200-identity-case": "0 4 - 1048576\nHTTP/1.1 200 OK\r\nContent-Encoding:  IDENTITY \r\nContent-Length: 4\r\n\r\nabcd",
    "200-short": "8 8 - 1048576\nHTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n012345678901",
    "416-empty-blob": "0 1 - 1048576\nHTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */0\r\n\r\n",
    "probe-206": "0 1 - 1048576\nHTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-0/123456789\r\n"
                 "Content-Length: 1\r\n\r\nx",
    "head-200": "0 1 - 1048576\nHTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
    "cl-overflow": "0 1 - 1048576\nHTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
    "cl-duplicate": "0 4 - 1048576\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
    "cl-list": "0 4 - 1048576\nHTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\nabcd",
    "cl-and-chunked": "0 4 - 1048576\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "4\r\nabcd\r\n0\r\n\r\n",
    "302-relative": "0 1 - 1048576\nHTTP/1.1 302 Found\r\nLocation: /v2/lib/app/blobs/../x?sig=1\r\n"
                    "Content-Length: 0\r\n\r\n",
    "307-absolute": "0 1 - 1048576\nHTTP/1.1 307 Temporary Redirect\r\nLocation: http://storage.example/b?X-Amz=1\r\n\r\n",
    "401-bearer": "0 1 - 1048576\nHTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"https://auth.example/token\","
                  "service=\"registry.example\",scope=\"repository:lib/app:pull\"\r\nContent-Length: 0\r\n\r\n",
    "401-two-fields": "0 1 - 1048576\nHTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\n"
                      "WWW-Authenticate: Negotiate abc==\r\n\r\n",
    "404": "0 1 - 1048576\nHTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
    "503-retry": "0 1 - 1048576\nHTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n",
    "http10": "0 4 - 1048576\nHTTP/1.0 200 OK\r\n\r\nabcd",
    "obs-fold": "0 4 - 1048576\nHTTP/1.1 206 Partial Content\r\nContent-Range: bytes\r\n 0-3/4\r\n\r\nabcd",
    "bytes-case": "0 4 - 1048576\nHTTP/1.1 206 Partial Content\r\nContent-Range: BYTES 0-3/4\r\nX-Len: 007\r\n\r\nabcd",
    "range-overflow": "18446744073709551615 2 - 1048576\nHTTP/1.1 206 Partial Content\r\n"
                      "Content-Range: bytes 18446744073709551615-18446744073709551615/*\r\n\r\n",
    "backoff": "9223372036854775809 18446744073709551615 - 0\nHTTP/1.1 302 Found\r\n\r\n",
}

challenge = {
    "docker-hub": 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                  'scope="repository:library/alpine:pull"',
    "ghcr": 'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull"',
    "basic": 'Basic realm="Registry Realm"',
    "basic-charset": 'Basic realm="simple", charset="UTF-8"',
    "two-challenges": 'Bearer realm="https://a.example/t", service="b", Basic realm="c"',
    "token68": "Negotiate YIIBhwYGKwYBBQUCoIIBezCCAXegDTALBgkqhkiG9xIBAgKiggFkBIIBYGCCAVwGCSqGSIb3EgECAgEAboIBSzCCAUeg==",
    "bare-schemes": "Basic, Bearer, NTLM",
    "escapes": r'Bearer realm="https://x.example/t?a=\"b\"", error="invalid_token", error_description="a\\b"',
    "unquoted": "Bearer realm=https://auth.example/token,service=svc",
    "spaces": 'Bearer   realm = "https://auth.example/token" ,  service = "s"',
    "unterminated": 'Bearer realm="https://auth.example/token',
    "duplicate": 'Bearer realm="first", realm="second"',
    "empty-value": 'Bearer realm="", service=""',
    "plain-http-realm": 'Bearer realm="http://auth.example/token",service="registry"',
    "realm-with-query": 'Bearer realm="https://auth.example/token?account=me&",service="r y"',
    "commas": ',,, Bearer realm="a,b" ,, ',
    "uppercase": 'BEARER REALM="https://AUTH.example/Token"',
    "trailing-equals": "Custom abc=, Other x=y",
    "control": 'Bearer realm="\x01\x7f\xff", service="\t"',
}

token = {
    "docker-hub": '{"token":"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhdXRoIn0.c2ln","access_token":'
                  '"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhdXRoIn0.c2ln","expires_in":300,'
                  '"issued_at":"2024-01-02T03:04:05.123456789Z"}',
    "access-token-only": '{"access_token":"abc.def.ghi","expires_in":3600}',
    "token-only": '{"token":"t"}',
    "offset-time": '{"token":"t","issued_at":"2024-06-30T23:59:60+02:00","expires_in":60}',
    "negative-expiry": '{"token":"t","expires_in":-5}',
    "zero-expiry": '{"token":"t","expires_in":0}',
    "huge-expiry": '{"token":"t","expires_in":18446744073709551615}',
    "float-expiry": '{"token":"t","expires_in":1.5}',
    "string-expiry": '{"token":"t","expires_in":"60"}',
    "empty-token": '{"token":"","access_token":"fallback"}',
    "null-token": '{"token":null,"access_token":"fallback"}',
    "space-in-token": '{"token":"has space in it, so it cannot go into a header"}',
    "unicode-token": '{"token":"caf\\u00e9"}',
    "number-token": '{"token":12345}',
    "bad-time": '{"token":"t","issued_at":"yesterday"}',
    "null-time": '{"token":"t","issued_at":null}',
    "not-object": '["token","t"]',
    "not-json": "<html>502 Bad Gateway</html>",
    "nested": '{"token":"t","extra":{"a":[1,2,{"b":null}]}}',
    "duplicate-key": '{"token":"first","token":"second"}',
}

rfc3339 = {
    "utc": "2024-01-02T03:04:05Z",
    "fraction": "2024-01-02T03:04:05.999999999Z",
    "offset-plus": "2024-01-02T03:04:05+05:30",
    "offset-minus": "1999-12-31T23:59:59-08:00",
    "lower-case": "2024-01-02t03:04:05z",
    "leap-second": "2016-12-31T23:59:60Z",
    "leap-day": "2024-02-29T12:00:00Z",
    "not-leap-day": "2023-02-29T12:00:00Z",
    "century-leap": "2000-02-29T00:00:00Z",
    "century-not-leap": "1900-02-29T00:00:00Z",
    "april-31": "2024-04-31T00:00:00Z",
    "year-zero": "0000-01-01T00:00:00+23:59",
    "year-max": "9999-12-31T23:59:59-23:59",
    "epoch": "1970-01-01T00:00:00Z",
    "no-zone": "2024-01-02T03:04:05",
    "space-separator": "2024-01-02 03:04:05Z",
    "empty-fraction": "2024-01-02T03:04:05.Z",
    "bad-month": "2024-13-01T00:00:00Z",
    "bad-hour": "2024-01-01T24:00:00Z",
    "bad-offset": "2024-01-01T00:00:00+24:00",
    "short-offset": "2024-01-01T00:00:00+0100",
    "trailing": "2024-01-01T00:00:00Zjunk",
}

auth_file = {
    "docker-login": '{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"}}}',
    "host-port": '{"auths":{"registry.example:5000":{"auth":"YWxpY2U6czNjcjN0"},"Registry.Example":'
                 '{"username":"bob","password":"hunter2"}}}',
    "username-password": '{"auths":{"localhost:5000":{"username":"u","password":""}}}',
    "credential-helper": '{"auths":{"gcr.io":{}},"credHelpers":{"gcr.io":"gcloud"},"credsStore":"desktop"}',
    "identity-token": '{"auths":{"myregistry.azurecr.io":{"auth":"","identitytoken":"eyJ0eXAi"}}}',
    "colon-in-password": '{"auths":{"h":{"auth":"dXNlcjpwYTpzczp3b3Jk"}}}',
    "no-colon": '{"auths":{"h":{"auth":"dXNlcnBhc3M="}}}',
    "bad-base64": '{"auths":{"h":{"auth":"not base64!"}}}',
    "unpadded": '{"auths":{"h":{"auth":"dTpw"}}}',
    "user-with-colon": '{"auths":{"h":{"username":"a:b","password":"p"}}}',
    "password-only": '{"auths":{"h":{"password":"p"}}}',
    "wrong-types": '{"auths":{"h":{"username":1,"password":["p"]}}}',
    "auths-array": '{"auths":["h"]}',
    "no-auths": '{"HttpHeaders":{"User-Agent":"Docker-Client/19.03.12 (linux)"}}',
    "ipv6": '{"auths":{"http://[::1]:5000/v2/":{"auth":"dTpw"},"[::1]":{"auth":"djp3"}}}',
    "duplicate-normalised": '{"auths":{"https://HOST/v1/":{"auth":"YTpi"},"host":{"auth":"Yzpk"}}}',
    "binary-credentials": '{"auths":{"h":{"auth":"AP8AOgD/"}}}',
    "not-json": "auths = { h = 1 }",
    "empty": "",
}

config = {
    "minimal-local": '{"cache":{"dir":"/var/cache/erofs-blobd"},"sources":[{"type":"local","path":"/srv/blobs"}]}',
    "packaged": '{"cache":{"dir":"/var/cache/erofs-blobd","tag":"erofs-blobd"},"device":"/dev/cachefiles",'
                '"chunk_size":1048576,"sources":[{"type":"local","path":"/var/lib/erofs-blobd/blobs"}],'
                '"control_socket":"/run/erofs-blobd/control.sock","log_level":"info","prefetch":false,'
                '"prefetch_concurrency":2,"failure_ttl_ms":2000,'
                '"store":{"enabled":"remote","dir":"/var/cache/erofs-blobd/blobd-store","verify":true,"max_bytes":0}}',
    "http": '{"cache":{"dir":"/c"},"sources":[{"type":"http","url":"https://blobs.example/images?sig=abc",'
            '"ca_file":"/etc/ssl/ca.pem","insecure":false,"timeout_ms":30000,"retries":3,"max_connections":4}]}',
    "oci": '{"cache":{"dir":"/c"},"sources":[{"type":"oci","registry":"https://registry-1.docker.io",'
           '"repository":"library/alpine","mirrors":["http://mirror.local:5000/base"],"username":"u","password":"p"}]}',
    "proxy": '{"cache":{"dir":"/c"},"sources":[{"type":"oci","registry":"https://r.example","repository":"a/b",'
             '"mirrors":["http://m:5000"],"proxy":"http://u:p@[::1]:3128/"},'
             '{"type":"http","url":"http://h/b","proxy":"http://proxy.local"}]}',
    "oci-auth-file": '{"cache":{"dir":"/c"},"sources":[{"type":"oci","registry":"http://[::1]:5000",'
                     '"repository":"a/b-c__d.e","auth_file":"/root/.docker/config.json"}]}',
    "domains": '{"cache":{"dir":"/c"},"sources":[],"domains":{"d1":{"sources":[{"type":"local","path":"/a"}],'
               '"prefetch":true,"store":false},"fsid with spaces":{"sources":[{"type":"http","url":"http://h/"}],'
               '"store":true}},"prefetch":true}',
    "service-keys": '{"cache":{"dir":"/c","brun":12,"bcull":8,"bstop":4,"frun":20,"fcull":10,"fstop":1,'
                    '"cull":true,"max_bytes":1073741824,"check_interval_ms":2000},"frontend":"fanotify",'
                    '"read_deadline_ms":8000,"breaker":{"failures":5,"backoff_ms":500,"max_backoff_ms":20000},'
                    '"sources":[{"type":"local","path":"/a"}]}',
    "bad-cull-order": '{"cache":{"dir":"/c","brun":5,"bcull":7,"bstop":3},"sources":[{"type":"local","path":"/a"}]}',
    "store-inside-cache": '{"cache":{"dir":"/c"},"sources":[{"type":"local","path":"/a"}],"store":{"dir":"/c/cache/x"}}',
    "store-is-cache": '{"cache":{"dir":"/c/"},"sources":[{"type":"local","path":"/a"}],"store":{"dir":"/c/./"}}',
    "typo": '{"cache":{"dir":"/c"},"sourcse":[{"type":"local","path":"/a"}]}',
    "duplicate-key": '{"cache":{"dir":"/c"},"sources":[{"type":"local","path":"/a"}],"sources":[]}',
    "unknown-type": '{"cache":{"dir":"/c"},"sources":[{"type":"s3","bucket":"b"}]}',
    "missing-type": '{"cache":{"dir":"/c"},"sources":[{"typ":"local","path":"/a"}]}',
    "bad-chunk": '{"cache":{"dir":"/c"},"chunk_size":3000,"sources":[{"type":"local","path":"/a"}]}',
    "big-numbers": '{"cache":{"dir":"/c"},"chunk_size":67108864,"failure_ttl_ms":60000,"prefetch_concurrency":64,'
                   '"sources":[{"type":"http","url":"http://h","timeout_ms":3600000,"retries":10,'
                   '"max_connections":64}],"store":{"max_bytes":18446744073709551615}}',
    "negative": '{"cache":{"dir":"/c"},"chunk_size":-4096,"sources":[{"type":"local","path":"/a"}]}',
    "control-chars": '{"cache":{"dir":"/c\\n"},"sources":[{"type":"local","path":"/a\\u0000b"}]}',
    "bad-tag": '{"cache":{"dir":"/c","tag":"two words"},"sources":[{"type":"local","path":"/a"}]}',
    "bad-log-level": '{"cache":{"dir":"/c"},"log_level":"verbose","sources":[{"type":"local","path":"/a"}]}',
    "long-socket": '{"cache":{"dir":"/c"},"control_socket":"/' + "s" * 120 + '","sources":[{"type":"local","path":"/a"}]}',
    "oci-both-auth": '{"cache":{"dir":"/c"},"sources":[{"type":"oci","registry":"https://r","repository":"a",'
                     '"username":"u","password":"p","auth_file":"/f"}]}',
    "oci-bad-repo": '{"cache":{"dir":"/c"},"sources":[{"type":"oci","registry":"https://r?x=1","repository":"A//b"}]}',
    "empty-domain": '{"cache":{"dir":"/c"},"domains":{"":{"sources":[{"type":"local","path":"/a"}]}}}',
    "not-object": '[{"cache":{"dir":"/c"}}]',
    "invalid-json": '{"cache":{"dir":"/c"},',
    "unicode": '{"cache":{"dir":"/caf\\u00e9"},"domains":{"\\u00e9t\\u00e9":{"sources":[{"type":"local","path":"/\\ud83d\\ude00"}]}}}',
}


def write(target, seeds):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


for target, seeds in [("parse", parse), ("url", url), ("http", http), ("challenge", challenge), ("token", token),
                      ("rfc3339", rfc3339), ("auth_file", auth_file), ("config", config)]:
    write(target, seeds)
