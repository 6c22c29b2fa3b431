#include "base/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.hpp"

namespace blobd {
namespace {

std::string too_large(const std::string& path, std::size_t max_bytes) {
    const bool mib = max_bytes >= (1u << 20) && max_bytes % (1u << 20) == 0;
    return path + ": larger than " + (mib ? std::to_string(max_bytes >> 20) + " MiB" : std::to_string(max_bytes) + " bytes");
}

}  // namespace

result<std::string, std::string> read_small_file(const std::string& path, std::size_t max_bytes) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, which is exactly
    // the hang this check exists to prevent. It is cleared again once the file is known regular.
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd) return unexpected{path + ": cannot open: " + std::strerror(errno)};
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return unexpected{path + ": cannot stat: " + std::strerror(errno)};
    if (!S_ISREG(st.st_mode)) return unexpected{path + ": not a regular file"};
    if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
        return unexpected{too_large(path, max_bytes)};
    }
    std::string text;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return unexpected{path + ": cannot read: " + std::strerror(errno)};
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        // The size was checked above; this bounds a file that grows while it is read.
        if (text.size() > max_bytes) return unexpected{too_large(path, max_bytes)};
    }
    return text;
}

result<bool, std::string> write_file_atomically(const std::string& path, std::string_view text, unsigned mode) {
    const std::string tmp = path + ".tmp";
    unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, static_cast<mode_t>(mode)));
    if (!fd) return unexpected{"cannot write " + tmp + ": " + std::strerror(errno)};
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t w = ::write(fd.get(), text.data() + done, text.size() - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            const int err = w < 0 ? errno : EIO;
            ::unlink(tmp.c_str());
            return unexpected{"cannot write " + tmp + ": " + std::strerror(err)};
        }
        done += static_cast<std::size_t>(w);
    }
    fd.reset();
    if (::rename(tmp.c_str(), path.c_str()) < 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return unexpected{"cannot rename " + tmp + " to " + path + ": " + std::strerror(err)};
    }
    return true;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> data_ranges(int fd) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    off_t pos = 0;
    for (;;) {
        const off_t data = ::lseek(fd, pos, SEEK_DATA);
        if (data < 0) break;  // ENXIO: no more data (or seeking unsupported)
        const off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole <= data) break;
        out.emplace_back(static_cast<std::uint64_t>(data), static_cast<std::uint64_t>(hole - data));
        pos = hole;
    }
    return out;
}

}  // namespace blobd
