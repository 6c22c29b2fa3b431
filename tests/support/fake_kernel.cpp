#include "tests/support/fake_kernel.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "protocol/uapi/cachefiles.h"

namespace blobd::test {

namespace {
void put_u32(std::vector<std::byte>& b, std::uint32_t v) {
    auto* p = reinterpret_cast<const std::byte*>(&v);
    b.insert(b.end(), p, p + 4);
}
void put_u64(std::vector<std::byte>& b, std::uint64_t v) {
    auto* p = reinterpret_cast<const std::byte*>(&v);
    b.insert(b.end(), p, p + 8);
}
void set_len(std::vector<std::byte>& b) {
    auto n = static_cast<std::uint32_t>(b.size());
    std::memcpy(b.data() + 8, &n, 4);
}
}  // namespace

// The daemon's end of the socketpair, behaving as /dev/cachefiles does for read/write/ioctl.
class fake_kernel::fake_device final : public device {
public:
    fake_device(fake_kernel& k, unique_fd fd) : k_(k), fd_(std::move(fd)) {}
    int fd() const override { return fd_.get(); }
    ssize_t read_message(std::span<std::byte> buf) override {
        // The device fails with EMSGSIZE and keeps the message when the buffer is too small. Only
        // a buffer smaller than the largest message ever queued needs the peek to find out: the
        // real device costs one read(), so the common case here costs one recvmsg.
        if (buf.size() < k_.max_queued_) {
            ssize_t peek = ::recv(fd_.get(), nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
            if (peek < 0) return errno == EAGAIN ? 0 : -errno;  // the device returns 0 when idle
            if (static_cast<std::size_t>(peek) > buf.size()) return -EMSGSIZE;
        }
        alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))];
        iovec iov{buf.data(), buf.size()};
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctrl;
        mh.msg_controllen = sizeof ctrl;
        ssize_t n = ::recvmsg(fd_.get(), &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) return errno == EAGAIN ? 0 : -errno;
        for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
                // Like the kernel, name the freshly installed fd in the OPEN's fd field.
                if (n >= 32) {
                    auto v = static_cast<std::uint32_t>(fd);
                    std::memcpy(buf.data() + 24, &v, 4);
                }
            }
        }
        return n;
    }
    int send(std::string_view command) override { return k_.on_command(command); }
    int complete_read(int anon_fd, std::uint32_t msg_id) override { return k_.on_cread(anon_fd, msg_id); }

private:
    fake_kernel& k_;
    unique_fd fd_;
};

fake_kernel::fake_kernel(const std::string& parent_dir, bool hold_cache_fds) : hold_fds_(hold_cache_fds) {
    std::string tmpl = parent_dir + "/blobd-fake-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp in " + parent_dir + ": " + std::strerror(errno));
    dir_ = tmpl;
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        throw std::runtime_error("socketpair");
    }
    kernel_end_.reset(sv[1]);
    dev_ = std::make_unique<fake_device>(*this, unique_fd(sv[0]));
    int sndbuf = 4 << 20;
    ::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
}

fake_kernel::~fake_kernel() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

void fake_kernel::queue(const std::vector<std::byte>& bytes, int fd) {
    max_queued_ = std::max(max_queued_, bytes.size());
    iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))];
    if (fd >= 0) {
        mh.msg_control = ctrl;
        mh.msg_controllen = sizeof ctrl;
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    if (::sendmsg(kernel_end_.get(), &mh, MSG_NOSIGNAL) < 0) {
        throw std::runtime_error(std::string("fake kernel queue: ") + std::strerror(errno));
    }
}

int fake_kernel::new_cache_fd() {
    std::string path = dir_ + "/raw" + std::to_string(next_object_++);
    unique_fd create(::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
    // Direct I/O like the backing file of a real anon fd; tmpfs before 6.6 lacks it, fall back.
    int fd = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    return fd;
}

std::uint32_t fake_kernel::open(const std::string& volume_key, const std::string& cookie_key, bool writable) {
    const std::uint32_t id = next_object_++;
    object o;
    o.path = dir_ + "/obj" + std::to_string(id);
    o.check_fd.reset(::open(o.path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
    struct stat st {};
    if (::fstat(o.check_fd.get(), &st) == 0) {
        o.dev = static_cast<std::uint64_t>(st.st_dev);
        o.ino = static_cast<std::uint64_t>(st.st_ino);
    }
    if (!hold_fds_) o.check_fd.reset();
    const int mode = writable ? O_WRONLY : O_RDONLY;
    unique_fd anon(::open(o.path.c_str(), mode | O_DIRECT | O_CLOEXEC));
    if (!anon) anon.reset(::open(o.path.c_str(), mode | O_CLOEXEC));
    const std::uint32_t msg = next_msg_++;
    o.open_msg = msg;
    std::vector<std::byte> b;
    put_u32(b, msg);
    put_u32(b, CACHEFILES_OP_OPEN);
    put_u32(b, 0);
    put_u32(b, id);
    put_u32(b, static_cast<std::uint32_t>(volume_key.size() + 1));
    put_u32(b, static_cast<std::uint32_t>(cookie_key.size()));
    put_u32(b, 0);  // fd: filled in on receipt
    put_u32(b, 0);
    auto* v = reinterpret_cast<const std::byte*>(volume_key.c_str());
    b.insert(b.end(), v, v + volume_key.size() + 1);
    auto* c = reinterpret_cast<const std::byte*>(cookie_key.data());
    b.insert(b.end(), c, c + cookie_key.size());
    set_len(b);
    objects_.emplace(id, std::move(o));
    requests_[msg] = request{CACHEFILES_OP_OPEN, id};
    queue(b, anon.get());  // the socket holds its own reference until received
    return id;
}

std::uint32_t fake_kernel::read(std::uint32_t object_id, std::uint64_t off, std::uint64_t len) {
    const std::uint32_t msg = next_msg_++;
    std::vector<std::byte> b;
    b.reserve(32);  // one allocation per READ: benchmarks queue hundreds of thousands
    put_u32(b, msg);
    put_u32(b, CACHEFILES_OP_READ);
    put_u32(b, 32);
    put_u32(b, object_id);
    put_u64(b, off);
    put_u64(b, len);
    requests_[msg] = request{CACHEFILES_OP_READ, object_id};
    queue(b, -1);
    return msg;
}

void fake_kernel::close(std::uint32_t object_id) {
    // cachefiles_ondemand_clean_object: pending requests of the object are flushed before CLOSE.
    for (auto& [id, r] : requests_) {
        if (r.object_id == object_id && r.opcode == CACHEFILES_OP_READ) r.live = false;
    }
    objects_.at(object_id).closed = true;
    std::vector<std::byte> b;
    put_u32(b, next_msg_++);
    put_u32(b, CACHEFILES_OP_CLOSE);
    put_u32(b, 16);
    put_u32(b, object_id);
    queue(b, -1);
}

void fake_kernel::send_raw(const std::vector<std::byte>& bytes, int fd_to_pass) {
    if (bytes.size() >= 8) {
        std::uint32_t msg, op;
        std::memcpy(&msg, bytes.data(), 4);
        std::memcpy(&op, bytes.data() + 4, 4);
        if (op == CACHEFILES_OP_OPEN) requests_[msg] = request{op, 0};
    }
    queue(bytes, fd_to_pass);
}

int fake_kernel::on_command(std::string_view cmd) {
    if (cmd.substr(0, 6) != "copen ") {
        other_commands_.emplace_back(cmd);
        return 0;
    }
    // cachefiles_ondemand_copen: "<id>,<size>"; unknown or non-OPEN ids are EINVAL.
    std::string args(cmd.substr(6));
    auto comma = args.find(',');
    if (comma == std::string::npos) return ++bad_copens_, -EINVAL;
    std::uint32_t id = static_cast<std::uint32_t>(std::stoul(args.substr(0, comma)));
    std::int64_t size = std::stoll(args.substr(comma + 1));
    auto it = requests_.find(id);
    if (it == requests_.end() || it->second.opcode != CACHEFILES_OP_OPEN || !it->second.live) {
        return ++bad_copens_, -EINVAL;
    }
    it->second.live = false;
    ++copen_counts_[id];
    // The OPEN's request names its object (raw OPENs name object 0, which need not exist): a
    // lookup, not a scan of every object, so that benchmarks opening 10k objects stay linear.
    if (auto oit = objects_.find(it->second.object_id); oit != objects_.end() && oit->second.open_msg == id) {
        oit->second.copen = size;
    }
    return 0;
}

int fake_kernel::on_cread(int anon_fd, std::uint32_t msg_id) {
    auto it = requests_.find(msg_id);
    struct stat a {};
    if (it != requests_.end() && it->second.opcode == CACHEFILES_OP_READ && !it->second.live &&
        it->second.completions == 0 && objects_.at(it->second.object_id).closed) {
        ++late_completions_;
        return -EINVAL;
    }
    if (it == requests_.end() || it->second.opcode != CACHEFILES_OP_READ || !it->second.live ||
        ::fstat(anon_fd, &a) < 0) {
        ++bad_completions_;
        return -EINVAL;
    }
    auto& obj = objects_.at(it->second.object_id);
    if (static_cast<std::uint64_t>(a.st_ino) != obj.ino || static_cast<std::uint64_t>(a.st_dev) != obj.dev) {
        ++bad_completions_;  // completed on another object's fd: the kernel refuses
        return -EINVAL;
    }
    it->second.live = false;
    ++it->second.completions;
    return 0;
}

std::optional<std::int64_t> fake_kernel::copen_result(std::uint32_t object_id) const {
    return objects_.at(object_id).copen;
}

int fake_kernel::copen_count_for_msg(std::uint32_t msg_id) const {
    auto it = copen_counts_.find(msg_id);
    return it == copen_counts_.end() ? 0 : it->second;
}

int fake_kernel::completed(std::uint32_t object_id) const {
    int n = 0;
    for (const auto& [id, r] : requests_) {
        if (r.object_id == object_id && r.opcode == CACHEFILES_OP_READ) n += r.completions;
    }
    return n;
}

int fake_kernel::completion_count(std::uint32_t msg_id) const {
    auto it = requests_.find(msg_id);
    return it == requests_.end() ? 0 : it->second.completions;
}

std::string fake_kernel::cache_bytes(std::uint32_t object_id, std::uint64_t off, std::uint64_t len) const {
    std::string out(len, '\0');
    unique_fd tmp;
    ssize_t n = ::pread(object_fd(objects_.at(object_id), tmp), out.data(), len, static_cast<off_t>(off));
    out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    return out;
}

std::uint64_t fake_kernel::cache_file_size(std::uint32_t object_id) const {
    struct stat st {};
    unique_fd tmp;
    ::fstat(object_fd(objects_.at(object_id), tmp), &st);
    return static_cast<std::uint64_t>(st.st_size);
}

int fake_kernel::daemon_fds_for(std::uint32_t object_id) const {
    const auto& o = objects_.at(object_id);
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        int fd = std::atoi(e.path().filename().c_str());
        if (fd == o.check_fd.get()) continue;
        struct stat st {};
        if (::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_ino) == o.ino &&
            static_cast<std::uint64_t>(st.st_dev) == o.dev) {
            ++n;
        }
    }
    return n;
}

int fake_kernel::own_fds() const {
    int n = 0;
    for (const auto& [id, o] : objects_) n += o.check_fd ? 1 : 0;
    return n;
}

int fake_kernel::object_fd(const object& o, unique_fd& tmp) const {
    if (o.check_fd) return o.check_fd.get();
    tmp.reset(::open(o.path.c_str(), O_RDONLY | O_CLOEXEC));
    return tmp.get();
}

int open_fd_count() {
    int n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

}  // namespace blobd::test
