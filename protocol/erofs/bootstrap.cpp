#include "protocol/erofs/bootstrap.hpp"

#include <cstring>

#include <fmt/format.h>

namespace blobd::proto::erofs {

namespace {
std::uint16_t le16(std::span<const std::byte> b, std::size_t at) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(b[at]) | std::to_integer<unsigned>(b[at + 1]) << 8);
}
std::uint32_t le32(std::span<const std::byte> b, std::size_t at) {
    return static_cast<std::uint32_t>(le16(b, at)) | static_cast<std::uint32_t>(le16(b, at + 2)) << 16;
}
}  // namespace

result<bootstrap_info, std::string> parse_bootstrap(std::span<const std::byte> image) {
    if (image.size() < super_offset + super_size) {
        return unexpected{fmt::format("{} bytes: too short for an erofs superblock (needs {})", image.size(),
                                      super_offset + super_size)};
    }
    const auto sb = image.subspan(super_offset, super_size);
    if (const auto magic = le32(sb, 0x00); magic != super_magic) {
        return unexpected{fmt::format("not an erofs image (magic 0x{:08x}, expected 0x{:08x})", magic, super_magic)};
    }
    bootstrap_info info;
    info.block_bits = std::to_integer<unsigned>(sb[0x0C]);
    if (info.block_bits < 9 || info.block_bits > 16) {
        return unexpected{fmt::format("block size 2^{} is out of range (512 B to 64 KiB)", info.block_bits)};
    }
    const std::uint32_t incompat = le32(sb, 0x50);
    const std::uint16_t extra = le16(sb, 0x56);
    const std::uint16_t slotoff = le16(sb, 0x58);
    if (!(incompat & incompat_device_table)) {
        // Without the feature the fields are not a device table (extra_devices must then be 0 for
        // the kernel too).
        if (extra != 0) return unexpected{fmt::format("{} extra devices but no device-table feature", extra)};
        return info;
    }
    const std::uint64_t start = std::uint64_t{slotoff} * devt_slot_size;
    const std::uint64_t end = start + std::uint64_t{extra} * devt_slot_size;
    if (extra != 0 && start < super_offset + super_size) {
        return unexpected{fmt::format("device table at byte {} overlaps the superblock", start)};
    }
    if (end > image.size()) {
        return unexpected{fmt::format("device table [{}, {}) runs past the {} bytes of the image", start, end,
                                      image.size())};
    }
    for (std::uint16_t i = 0; i < extra; ++i) {
        const auto slot = image.subspan(static_cast<std::size_t>(start) + std::size_t{i} * devt_slot_size, devt_slot_size);
        std::size_t len = 0;
        while (len < tag_size && slot[len] != std::byte{0}) ++len;
        for (std::size_t k = len; k < tag_size; ++k) {
            if (slot[k] != std::byte{0}) return unexpected{fmt::format("device {}: tag has bytes after its NUL", i + 1)};
        }
        if (len == 0) return unexpected{fmt::format("device {}: empty tag", i + 1)};
        device d;
        d.tag.assign(reinterpret_cast<const char*>(slot.data()), len);
        d.blocks = le32(slot, tag_size);
        d.mapped_blkaddr = le32(slot, tag_size + 4);
        info.devices.push_back(std::move(d));
    }
    return info;
}

}  // namespace blobd::proto::erofs
