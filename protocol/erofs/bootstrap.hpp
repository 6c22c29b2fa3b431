// The device table of an erofs bootstrap: which blobs (extra devices) its chunk-based file data
// lives in, in the order the kernel maps them (device 1, 2, ...). The fanotify frontend reads it to
// know which cache files to mark and pass as `device=` options, in that order.
//
// Layout (fs/erofs/erofs_fs.h, checked against the 6.1 source): the superblock is 128 bytes at
// offset 1024 (EROFS_SUPER_OFFSET), magic 0xE0F5E1E2 at +0, blkszbits at +0x0C, feature_incompat at
// +0x50, extra_devices (le16) at +0x56, devt_slotoff (le16) at +0x58. The table starts at
// devt_slotoff * 128 bytes into the image; each struct erofs_deviceslot is 128 bytes: u8 tag[64]
// (NUL-padded), le32 blocks, le32 mapped_blkaddr, 56 reserved.
//
// Pure: no syscalls, nothing thrown, every field checked against the bytes given. Any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.hpp"

namespace blobd::proto::erofs {

inline constexpr std::size_t super_offset = 1024;
inline constexpr std::uint32_t super_magic = 0xE0F5E1E2;
inline constexpr std::size_t super_size = 128;
inline constexpr std::size_t devt_slot_size = 128;
inline constexpr std::size_t tag_size = 64;
inline constexpr std::uint32_t incompat_device_table = 0x8;

struct device {
    std::string tag;                 ///< the blob's name (NUL padding stripped)
    std::uint32_t blocks = 0;        ///< its size in filesystem blocks
    std::uint32_t mapped_blkaddr = 0;
    bool operator==(const device&) const = default;
};

struct bootstrap_info {
    unsigned block_bits = 0;
    std::vector<device> devices;     ///< extra devices, in table order (empty: a plain image)
};

/// Parses the superblock and device table of the image whose first bytes are `image` (the table
/// must lie within them). The error is one line saying what is wrong.
result<bootstrap_info, std::string> parse_bootstrap(std::span<const std::byte> image);

}  // namespace blobd::proto::erofs
