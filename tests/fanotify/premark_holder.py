#!/usr/bin/env python3
"""A pre-content watcher the daemon does not own: marks FILE (FAN_PRE_ACCESS) in a group of its own
and allows every event, until killed. While it holds the mark, any fd opened on FILE notifies,
so the daemon's own writes through such an fd raise events in the daemon's group too (what a
predecessor's marks still being torn down cause at a takeover; tests/fanotify/handoff.sh step 9b).

    premark_holder.py FILE READY   (touches READY once the mark is in place)
"""
import ctypes
import os
import pathlib
import struct
import sys

FAN_CLOEXEC, FAN_CLASS_PRE_CONTENT = 0x1, 0x8
FAN_MARK_ADD, FAN_PRE_ACCESS, FAN_ALLOW, AT_FDCWD = 0x1, 0x00100000, 0x1, -100
META = struct.Struct("IBBHQii")  # struct fanotify_event_metadata

libc = ctypes.CDLL(None, use_errno=True)
libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
group = libc.fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC, os.O_RDONLY | os.O_LARGEFILE)
if group < 0:
    sys.exit(f"premark_holder: fanotify_init: {os.strerror(ctypes.get_errno())}")
if libc.fanotify_mark(group, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, sys.argv[1].encode()) != 0:
    sys.exit(f"premark_holder: fanotify_mark {sys.argv[1]}: {os.strerror(ctypes.get_errno())}")
pathlib.Path(sys.argv[2]).touch()
while True:
    buf = os.read(group, 65536)
    at = 0
    while at + META.size <= len(buf):
        length, _vers, _res, _mlen, _mask, fd, _pid = META.unpack_from(buf, at)
        if fd >= 0:
            os.write(group, struct.pack("iI", fd, FAN_ALLOW))
            os.close(fd)
        at += max(length, META.size)
