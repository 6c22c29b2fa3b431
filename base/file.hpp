// Reading small whole files (configs, credentials) safely, and finding the data of sparse files.
// Any thread; blocking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.hpp"

namespace blobd {

/// The contents of the regular file `path`, at most `max_bytes` long. The error is one line that
/// names the file and says what is wrong: it cannot be opened, is not a regular file (a FIFO or
/// a device would block or never end), cannot be read, or is larger than `max_bytes`. The file's
/// bytes never appear in the error (it may hold secrets).
result<std::string, std::string> read_small_file(const std::string& path, std::size_t max_bytes);

/// Replaces `path` with `text` atomically: written to `path`.tmp (created with `mode`, less the
/// umask; not through a symlink), then renamed over it. No fsync (the callers' files serve the
/// same boot). The error is one line naming the file; the temporary file is gone then.
result<bool, std::string> write_file_atomically(const std::string& path, std::string_view text,
                                                unsigned mode = 0600);

/// The [offset, length) runs of data in the sparse file open as `fd` (SEEK_DATA/SEEK_HOLE), in
/// order. Empty when it holds none, or when the filesystem cannot seek for data. Block granular:
/// a run ends where the filesystem's block does.
std::vector<std::pair<std::uint64_t, std::uint64_t>> data_ranges(int fd);

}  // namespace blobd
