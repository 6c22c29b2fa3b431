// A deliberately simple, synchronous cachefiles on-demand daemon: the baseline erofs-blobd is
// compared against in bench/uml (the design of the kernel's sample daemon, as in
// Documentation/filesystems/caching/cachefiles.rst and the upstream demo).
//
//   simple_daemon --cache-dir DIR --tag TAG (--blobs DIR | --http PORT) [--device /dev/cachefiles]
//
// --http PORT: the blobs come from an HTTP server on 127.0.0.1:PORT instead (GET /<cookie key>):
// its size from a HEAD at OPEN, each READ's bytes from one ranged GET, over one keep-alive
// connection (reopened once when it fails), still one request at a time (bench/uml part e).
//
// One thread: poll() on the device, read() one message at a time, and answer it before reading
// the next:
//   OPEN   copen <id>,<size of BLOBS/<cookie key>>   (or a negative errno)
//   READ   pread exactly [off, off+len) of the source into a 4096-aligned buffer (tail zero-padded
//          to 4096: the anon fd is direct I/O), pwrite it at off, ioctl(READ_COMPLETE, msg_id)
//   CLOSE  close the anon fd and the source fd
// No prefetch, no chunking, no concurrency: every READ the kernel sends is one synchronous
// round trip. SIGUSR1: print the counters to stderr ("simple_daemon: counters: ...").
// SIGTERM/SIGINT: print them ("simple_daemon: stopped: ...") and exit 0.
//
// Build (standalone, only the vendored uapi header is needed):
//   g++ -std=c++20 -O2 -I<repo> bench/uml/simple_daemon.cpp -o simple_daemon
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

#include "protocol/uapi/cachefiles.h"

namespace {

volatile std::sig_atomic_t stop_requested = 0, dump_requested = 0;
void on_signal(int sig) {
    if (sig == SIGUSR1) dump_requested = 1;
    else stop_requested = 1;
}

struct object {
    int anon_fd = -1;
    int src_fd = -1;      // --blobs
    std::string name;     // --http
    std::uint64_t size = 0;
};

// A blocking HTTP/1.1 client for one server on 127.0.0.1: one keep-alive connection.
struct http_client {
    int port = 0;
    int fd = -1;
    std::string pending;  // bytes read past the last answer (none: no pipelining)

    bool connect_once() {
        if (fd >= 0) return true;
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return false;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
            drop();
            return false;
        }
        return true;
    }
    void drop() {
        if (fd >= 0) ::close(fd);
        fd = -1;
        pending.clear();
    }
    // Sends one request and reads its answer: status, Content-Length, and (unless HEAD) the body
    // into out[0, len). Returns false on any failure (the connection is dropped).
    bool exchange(const std::string& req, bool head, int& status, std::uint64_t& len, char* out, std::uint64_t cap) {
        if (!connect_once()) return false;
        for (std::size_t done = 0; done < req.size();) {
            ssize_t w = ::send(fd, req.data() + done, req.size() - done, MSG_NOSIGNAL);
            if (w <= 0) return drop(), false;
            done += static_cast<std::size_t>(w);
        }
        std::string hdr = std::move(pending);
        pending.clear();
        std::size_t end;
        char tmp[16384];
        while ((end = hdr.find("\r\n\r\n")) == std::string::npos) {
            ssize_t r = ::recv(fd, tmp, sizeof tmp, 0);
            if (r <= 0 || hdr.size() > 65536) return drop(), false;
            hdr.append(tmp, static_cast<std::size_t>(r));
        }
        status = std::atoi(hdr.c_str() + std::min<std::size_t>(9, hdr.size()));
        len = 0;
        for (std::size_t at = hdr.find("\r\n"); at < end; at = hdr.find("\r\n", at + 2)) {
            if (strncasecmp(hdr.c_str() + at + 2, "content-length:", 15) == 0) {
                len = std::strtoull(hdr.c_str() + at + 17, nullptr, 10);
            }
        }
        std::string body = hdr.substr(end + 4);
        if (head) return body.empty() || (drop(), false);
        if (len > cap) return drop(), false;
        if (body.size() > len) return drop(), false;  // no pipelining: nothing may follow
        std::memcpy(out, body.data(), body.size());
        for (std::uint64_t got = body.size(); got < len;) {
            ssize_t r = ::recv(fd, out + got, len - got, 0);
            if (r <= 0) return drop(), false;
            got += static_cast<std::uint64_t>(r);
        }
        return true;
    }
    // exchange(), once more on a fresh connection when the kept-alive one had gone.
    bool request(const std::string& req, bool head, int& status, std::uint64_t& len, char* out, std::uint64_t cap) {
        return exchange(req, head, status, len, out, cap) || exchange(req, head, status, len, out, cap);
    }
} http;

struct counters {
    std::uint64_t opens = 0, open_failures = 0, reads = 0, read_bytes = 0, read_errors = 0, closes = 0;
} st;

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "simple_daemon: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

void send_cmd(int dev, const std::string& cmd) {
    if (::write(dev, cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size())) {
        std::fprintf(stderr, "simple_daemon: '%s': %s\n", cmd.c_str(), std::strerror(errno));
    }
}

constexpr std::size_t align = 4096;
std::uint64_t round_up(std::uint64_t v) { return (v + align - 1) / align * align; }

struct aligned_buf {
    void* p = nullptr;
    std::size_t cap = 0;
    void* get(std::size_t n) {
        if (n > cap) {
            std::free(p);
            p = std::aligned_alloc(align, n);
            if (!p) die("aligned_alloc");
            cap = n;
        }
        return p;
    }
} buf;

std::unordered_map<std::uint32_t, object> objects;

void print_counters(const char* what) {
    std::fprintf(stderr,
                 "simple_daemon: %s: opens=%llu open_failures=%llu reads=%llu read_bytes=%llu read_errors=%llu "
                 "closes=%llu\n",
                 what, (unsigned long long)st.opens, (unsigned long long)st.open_failures, (unsigned long long)st.reads,
                 (unsigned long long)st.read_bytes, (unsigned long long)st.read_errors, (unsigned long long)st.closes);
}

void handle_open(int dev, const cachefiles_msg* msg, std::size_t n, const std::string& blobs) {
    ++st.opens;
    const auto* o = reinterpret_cast<const cachefiles_open*>(msg->data);
    const int anon = static_cast<int>(o->fd);
    std::int64_t reply = -EINVAL;
    if (n >= sizeof(cachefiles_msg) + sizeof(cachefiles_open) + o->volume_key_size + o->cookie_key_size &&
        o->cookie_key_size > 0) {
        std::string cookie(reinterpret_cast<const char*>(o->data) + o->volume_key_size, o->cookie_key_size);
        const std::string path = blobs + "/" + cookie;
        if (cookie.find('/') != std::string::npos || cookie == "." || cookie == ".." ||
            cookie.find_first_of(" \r\n%?#") != std::string::npos) {
            reply = -EINVAL;
        } else if (http.port) {
            int status = 0;
            std::uint64_t len = 0;
            if (!http.request("HEAD /" + cookie + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", true, status, len, nullptr, 0)) {
                reply = -EIO;
            } else if (status != 200) {
                reply = status == 404 ? -ENOENT : -EIO;
            } else {
                objects[msg->object_id] = object{anon, -1, cookie, len};
                reply = static_cast<std::int64_t>(len);
            }
        } else if (int src = ::open(path.c_str(), O_RDONLY | O_CLOEXEC); src < 0) {
            reply = -errno;
        } else {
            struct stat sb {};
            ::fstat(src, &sb);
            objects[msg->object_id] = object{anon, src, {}, static_cast<std::uint64_t>(sb.st_size)};
            reply = sb.st_size;
        }
    }
    send_cmd(dev, "copen " + std::to_string(msg->msg_id) + "," + std::to_string(reply));
    if (reply < 0) {
        ++st.open_failures;
        ::close(anon);
    }
}

void handle_read(const cachefiles_msg* msg) {
    ++st.reads;
    const auto* r = reinterpret_cast<const cachefiles_read*>(msg->data);
    auto it = objects.find(msg->object_id);
    if (it == objects.end()) {
        ++st.read_errors;
        return;  // unknown object: nothing to complete on
    }
    object& ob = it->second;
    st.read_bytes += r->len;
    // Only what exists in the source; a READ past the end (the tail page) is zero-padded.
    std::uint64_t want = r->off < ob.size ? std::min<std::uint64_t>(r->len, ob.size - r->off) : 0;
    const std::uint64_t wlen = round_up(want);
    if (wlen > 0) {
        auto* p = static_cast<char*>(buf.get(wlen));
        ssize_t got = -1;
        if (http.port) {
            int status = 0;
            std::uint64_t len = 0;
            const std::string req = "GET /" + ob.name + " HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=" +
                                    std::to_string(r->off) + "-" + std::to_string(r->off + want - 1) + "\r\n\r\n";
            if (http.request(req, false, status, len, p, want) && status == 206) got = static_cast<ssize_t>(len);
        } else {
            got = ::pread(ob.src_fd, p, want, static_cast<off_t>(r->off));
        }
        if (got != static_cast<ssize_t>(want)) {
            ++st.read_errors;
        } else {
            std::memset(p + want, 0, wlen - want);
            std::uint64_t done = 0;
            while (done < wlen) {
                ssize_t w = ::pwrite(ob.anon_fd, p + done, wlen - done, static_cast<off_t>(r->off + done));
                if (w <= 0) {
                    if (w < 0 && errno == EINTR) continue;
                    ++st.read_errors;
                    break;
                }
                done += static_cast<std::uint64_t>(w);
            }
        }
    }
    if (::ioctl(ob.anon_fd, CACHEFILES_IOC_READ_COMPLETE, msg->msg_id) < 0) ++st.read_errors;
}

void handle_close(const cachefiles_msg* msg) {
    ++st.closes;
    auto it = objects.find(msg->object_id);
    if (it == objects.end()) return;
    ::close(it->second.anon_fd);
    if (it->second.src_fd >= 0) ::close(it->second.src_fd);
    objects.erase(it);
}

}  // namespace

int main(int argc, char** argv) {
    std::string cache_dir, tag = "simple", blobs, device = "/dev/cachefiles";
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "simple_daemon: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--cache-dir") cache_dir = next();
        else if (a == "--tag") tag = next();
        else if (a == "--blobs") blobs = next();
        else if (a == "--http") http.port = std::atoi(next().c_str());
        else if (a == "--device") device = next();
        else {
            std::fprintf(stderr, "usage: simple_daemon --cache-dir DIR --tag TAG (--blobs DIR | --http PORT) [--device DEV]\n");
            return 2;
        }
    }
    if (cache_dir.empty() || blobs.empty() == (http.port == 0) || http.port < 0 || http.port > 65535) {
        std::fprintf(stderr, "usage: simple_daemon --cache-dir DIR --tag TAG (--blobs DIR | --http PORT) [--device DEV]\n");
        return 2;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;  // no SA_RESTART: poll() returns EINTR
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGUSR1, &sa, nullptr);

    int dev = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
    if (dev < 0) die(device.c_str());
    for (const std::string& cmd : {"dir " + cache_dir, "tag " + tag, std::string("bind ondemand")}) {
        if (::write(dev, cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size())) die(cmd.c_str());
    }
    std::fprintf(stderr, "simple_daemon: bound %s (tag %s), serving %s\n", cache_dir.c_str(), tag.c_str(),
                 http.port ? ("http://127.0.0.1:" + std::to_string(http.port)).c_str() : blobs.c_str());

    alignas(8) char msgbuf[CACHEFILES_MSG_MAX_SIZE];
    while (!stop_requested) {
        if (dump_requested) {
            dump_requested = 0;
            print_counters("counters");
        }
        pollfd p{dev, POLLIN, 0};
        int r = ::poll(&p, 1, -1);
        if (r < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        for (;;) {
            ssize_t n = ::read(dev, msgbuf, sizeof msgbuf);
            if (n == 0) break;
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN) break;
                die("read");
            }
            if (static_cast<std::size_t>(n) < sizeof(cachefiles_msg)) continue;
            const auto* msg = reinterpret_cast<const cachefiles_msg*>(msgbuf);
            switch (msg->opcode) {
                case CACHEFILES_OP_OPEN:
                    if (static_cast<std::size_t>(n) >= sizeof(cachefiles_msg) + sizeof(cachefiles_open))
                        handle_open(dev, msg, static_cast<std::size_t>(n), blobs);
                    break;
                case CACHEFILES_OP_READ:
                    if (static_cast<std::size_t>(n) >= sizeof(cachefiles_msg) + sizeof(cachefiles_read))
                        handle_read(msg);
                    break;
                case CACHEFILES_OP_CLOSE: handle_close(msg); break;
                default: break;
            }
        }
    }
    print_counters("stopped");
    return 0;
}
