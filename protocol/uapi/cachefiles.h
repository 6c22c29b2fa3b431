/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Vendored from Linux 6.1 include/uapi/linux/cachefiles.h (the on-demand read ABI), so the
 * build does not depend on the host's kernel headers being new enough. Sizes are checked in
 * protocol/message.hpp.
 */
#ifndef BLOBD_UAPI_CACHEFILES_H
#define BLOBD_UAPI_CACHEFILES_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Fscache ensures that the maximum length of cookie key is 255. The volume key is controlled by
 * netfs, and generally no bigger than 255. */
#define CACHEFILES_MSG_MAX_SIZE 1024

enum cachefiles_opcode {
    CACHEFILES_OP_OPEN,
    CACHEFILES_OP_CLOSE,
    CACHEFILES_OP_READ,
};

/* @len: message length, including message header and following data.
 * @object_id: a unique ID identifying a cache file. */
struct cachefiles_msg {
    __u32 msg_id;
    __u32 opcode;
    __u32 len;
    __u32 object_id;
    __u8 data[];
};

/* @data: the NUL-terminated volume key (volume_key_size counts the NUL) followed directly by the
 * binary cookie key (cookie_key_size bytes). @fd: an anon fd referring to the cache file. */
struct cachefiles_open {
    __u32 volume_key_size;
    __u32 cookie_key_size;
    __u32 fd;
    __u32 flags;
    __u8 data[];
};

struct cachefiles_read {
    __u64 off;
    __u64 len;
};

/* Reply for READ request: @arg for this ioctl is the @id field of the READ request. */
#define CACHEFILES_IOC_READ_COMPLETE _IOW(0x98, 1, int)

#endif
