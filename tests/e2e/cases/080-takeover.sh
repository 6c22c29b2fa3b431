#!/bin/bash
# Description: the daemon restarts, or crashes with a fetch in flight, and the erofs mounts keep
# working without a remount: the device fd lives in the service manager's fd store (FDSTORE=1, as
# under systemd with FileDescriptorStoreMax=1), the new daemon takes it over and sends `restore`,
# and the READ the dead daemon had taken is handed out again and served; so are those of 16
# concurrent readers across a second SIGKILL.
. "$(dirname "$0")/../lib.sh"
net_up
WEB=/run/web
mkdir -p "$WEB"
python3 "$(dirname "$0")/../rangeserver.py" "$BLOBS" 8765 "$WEB" 2>>"$BLOBD_UML_RUN/web.log" &
for _ in $(seq 1 100); do [ -f "$WEB/listening" ] && break; sleep 0.1; done
[ -f "$WEB/listening" ] || fail "test web server did not start"
cat >"$CONF" <<JSON
{"cache": {"dir": "$CACHE_DIR", "tag": "e2e"},
 "sources": [{"type": "http", "url": "http://127.0.0.1:8765", "retries": 0}],
 "store": {"enabled": false},
 "control_socket": "$SOCK", "log_level": "info"}
JSON

step "daemon under an fd-store supervisor: the bound device fd is stored"
start_supervised
grep -q '^cachefiles-' "$SUPER_DIR/stored" || fail "no device fd in the store: $(cat "$SUPER_DIR/stored")"
echo "ok: stored $(cat "$SUPER_DIR/stored")"
mount_erofs /run/mnt/a fsid=img1,domain_id=d1
cmp /run/mnt/a/share/config "$E2E_DATA/src/tree1/share/config" || fail "share/config differs"

step "crash (SIGKILL) while a READ waits on a stalled fetch"
touch "$WEB/stall"
cat /run/mnt/a/lib/libbig.so >/run/libbig.out 2>/run/cat.err &
reader=$!
for _ in $(seq 1 200); do [ -f "$WEB/stalled" ] && break; sleep 0.05; done
[ -f "$WEB/stalled" ] || fail "the reader's fetch never reached the server"
kill -USR1 "$SUPER_PID"          # SIGKILL the daemon; the supervisor starts a new one
wait_supervised 2
rm -f "$WEB/stall"
grep -q 'took over the bound device' "$DAEMON_LOG" || fail "the new daemon did not take the device over"
for _ in $(seq 1 600); do kill -0 $reader 2>/dev/null || break; sleep 0.1; done
kill -0 $reader 2>/dev/null && fail "the reader hangs after the takeover"
wait $reader || fail "the reader failed after the takeover: $(cat /run/cat.err)"
cmp /run/libbig.out "$E2E_DATA/src/tree1/lib/libbig.so" || fail "data read across the crash differs"
echo "ok: the READ taken by the killed daemon was restored and served by its successor"
[ "$(head -n1 "$SUPER_DIR/exits")" = -9 ] || fail "first daemon did not die by SIGKILL: $(cat "$SUPER_DIR/exits")"
[ "$(stat opens)" -ge 1 ] || fail "the new daemon saw no OPEN (objects are reopened after a takeover)"

step "the whole mount still reads correctly, without a remount"
same_tree "$E2E_DATA/src/tree1" /run/mnt/a

step "clean restart (SIGTERM, exit 0): the mount keeps working, a new mount in the domain too"
kill -USR2 "$SUPER_PID"
wait_supervised 3
[ "$(sed -n 2p "$SUPER_DIR/exits")" = 0 ] || fail "SIGTERM exit was not 0: $(cat "$SUPER_DIR/exits")"
mount_erofs /run/mnt/b fsid=img2,domain_id=d1
same_tree "$E2E_DATA/src/tree2" /run/mnt/b
same_tree "$E2E_DATA/src/tree1" /run/mnt/a
step "crash (SIGKILL) under 16 readers whose fetches are stalled: every reader gets the right bytes"
# A new domain: new cookies and cache files, so every byte below is fetched (no blob store here).
mount_erofs /run/mnt/c fsid=img2,domain_id=d2
files=(lib/libbig.so bin/tool lib/x/data share/odd-a share/odd-b)
for i in $(seq 1 11); do files+=("share/f$((i * 3))"); done
rm -f "$WEB/stalled"
touch "$WEB/stall"
pids=()
for i in "${!files[@]}"; do
    cat "/run/mnt/c/${files[$i]}" >"/run/r$i.out" 2>"/run/r$i.err" &
    pids+=($!)
done
for _ in $(seq 1 200); do [ -f "$WEB/stalled" ] && break; sleep 0.05; done
[ -f "$WEB/stalled" ] || fail "no reader's fetch reached the server"
kill -USR1 "$SUPER_PID"
wait_supervised 4
rm -f "$WEB/stall"
[ "$(sed -n 3p "$SUPER_DIR/exits")" = -9 ] || fail "the daemon did not die by SIGKILL: $(cat "$SUPER_DIR/exits")"
for i in "${!files[@]}"; do
    ok=
    for _ in $(seq 1 600); do kill -0 "${pids[$i]}" 2>/dev/null || { ok=1; break; }; sleep 0.1; done
    [ -n "$ok" ] || fail "reader of ${files[$i]} hangs after the takeover"
    wait "${pids[$i]}" || fail "reader of ${files[$i]} failed after the takeover: $(cat "/run/r$i.err")"
    cmp -s "/run/r$i.out" "$E2E_DATA/src/tree2/${files[$i]}" || fail "reader of ${files[$i]} got wrong bytes"
done
echo "ok: ${#files[@]} readers across the SIGKILL got exactly the source's bytes"
same_tree "$E2E_DATA/src/tree2" /run/mnt/c

umount /run/mnt/a /run/mnt/b /run/mnt/c || fail "umount"
stop_supervised
echo "ok: four daemons served one binding; the store was closed at the end"
