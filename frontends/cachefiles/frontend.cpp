#include "frontends/cachefiles/frontend.hpp"

#include <poll.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "base/log.hpp"
#include "frontends/cachefiles/handoff.hpp"

namespace blobd {

namespace {
const log::logger lg{"cachefiles"};
log::rate_limit bad_msg_limit;
}  // namespace

cachefiles_frontend::cachefiles_frontend(event_loop& loop, device& dev, engine& core)
    : loop_(loop), dev_(dev), core_(core) {
    core_.attach(*this);
}

void cachefiles_frontend::start() { arm_device(); }

void cachefiles_frontend::arm_device() {
    loop_.poll(dev_.fd(), POLLIN, [this](int res) {
        if (stopping_) return;
        if (res < 0) {
            lg.err("device poll failed: {}", std::strerror(-res));
            loop_.after(std::chrono::milliseconds(100), [this] { if (!stopping_) arm_device(); });
            return;
        }
        drain_device();
    });
}

void cachefiles_frontend::drain_device() {
    // One read() returns one message and 0 when none is pending; read them all, but yield to
    // the ring every so often so that completions (and the READs waiting on them) keep flowing.
    alignas(8) std::array<std::byte, proto::max_message_size> buf;
    for (int i = 0; i < 256; ++i) {
        ssize_t n = dev_.read_message(buf);
        if (n == 0 || n == -EAGAIN) return arm_device();
        if (n == -EMSGSIZE) {
            // Cannot happen with a kernel that honours CACHEFILES_MSG_MAX_SIZE; the message stays
            // queued, so back off instead of spinning on it.
            lg.err("device message larger than {} bytes; retrying in 1s", buf.size());
            loop_.after(std::chrono::seconds(1), [this] { if (!stopping_) arm_device(); });
            return;
        }
        if (n < 0) {
            lg.err("device read failed: {}", std::strerror(static_cast<int>(-n)));
            loop_.after(std::chrono::milliseconds(100), [this] { if (!stopping_) arm_device(); });
            return;
        }
        auto parsed = proto::parse(std::span<const std::byte>(buf.data(), static_cast<std::size_t>(n)));
        if (parsed) {
            handle(std::move(*parsed));
        } else {
            handle_bad(parsed.error());
        }
        if (stopping_) return;
    }
    loop_.defer([this] { if (!stopping_) drain_device(); });
}

void cachefiles_frontend::refuse_open(std::uint32_t msg_id) {
    core_.refused_open();
    if (int r = dev_.send(proto::copen(msg_id, -EINVAL)); r < 0) ++stats_.reply_errors;
}

void cachefiles_frontend::handle_bad(const proto::parse_error& err) {
    ++stats_.bad_messages;
    unsigned suppressed = 0;
    if (bad_msg_limit.allow(suppressed)) {
        lg.err("malformed kernel message (msg_id {}, opcode {}): {}{}", err.msg_id ? std::to_string(*err.msg_id) : "?",
               err.opcode ? std::to_string(*err.opcode) : "?", err.ec.message(),
               log::suppressed_note(suppressed));
    }
    unique_fd stray(err.stray_fd);
    // An OPEN must be answered even when unparseable, or the mount waits forever. A READ we
    // cannot parse has no trustworthy object to complete it on; the kernel fails it when the
    // object closes.
    if (err.opcode == CACHEFILES_OP_OPEN) {
        if (err.msg_id) {
            refuse_open(*err.msg_id);
        } else {
            core_.refused_open();  // nothing to answer it with: the kernel learns nothing more
        }
    }
}

void cachefiles_frontend::handle(proto::message&& msg) {
    if (auto* o = std::get_if<proto::open_request>(&msg)) {
        unique_fd fd(o->fd);
        const std::string domain(proto::domain_of(o->volume_key));
        if (auto problem = proto::cookie_name_problem(o->cookie_key)) {
            lg.err("OPEN {} refused: cookie name \"{}\" in volume \"{}\" {}: not a plain file name", o->msg_id,
                   proto::printable(o->cookie_key), proto::printable(o->volume_key), *problem);
            refuse_open(o->msg_id);
            return;  // the anon fd closes after the reply
        }
        lg.debug("OPEN {} object {} {}/{}", o->msg_id, o->object_id, proto::printable(domain),
                 proto::printable(o->cookie_key));
        core_.open(o->msg_id, o->object_id, domain, std::move(o->cookie_key), std::move(fd));
    } else if (auto* r = std::get_if<proto::read_request>(&msg)) {
        lg.debug("READ {} object {} [{}, +{})", r->msg_id, r->object_id, r->off, r->len);
        core_.read(r->msg_id, r->object_id, r->off, r->len);
    } else if (auto* c = std::get_if<proto::close_request>(&msg)) {
        lg.debug("CLOSE object {}", c->object_id);
        core_.close(c->object_id);
    }
}

int cachefiles_frontend::answer_open(request_token req, std::int64_t size_or_errno, unique_fd fd_back) {
    const auto msg_id = static_cast<std::uint32_t>(req.id);
    const int r = dev_.send(proto::copen(msg_id, size_or_errno));
    if (r < 0) {
        ++stats_.reply_errors;
        lg.err("copen {} failed: {}", msg_id, std::strerror(-r));
    }
    // fd_back (the anon fd of a failed OPEN) is closed only now, after the reply: closing it
    // first would turn our error into EBADFD.
    fd_back.reset();
    return r;
}

void cachefiles_frontend::answer_read(const cache_object* object, request_token req, int status) {
    (void)status;  // the kernel learns of a failure by finding the range still missing
    const auto msg_id = static_cast<std::uint32_t>(req.id);
    if (!object) {
        // A READ of an object we do not know: there is no anon fd to complete it on. The kernel
        // fails it when the object closes (the registry logged it and counted it as failed).
        return;
    }
    if (int r = dev_.complete_read(object->fd.get(), msg_id); r < 0) {
        ++stats_.completion_errors;
        lg.debug("READ_COMPLETE {} on object {}: {}", msg_id, object->key, std::strerror(-r));
    }
}

result<cachefiles_frontend::bound, std::string> cachefiles_frontend::bind_device(const std::string& path,
                                                                                 const std::string& cache_dir,
                                                                                 const std::string& tag,
                                                                                 const proto::cull_limits& blocks,
                                                                                 const proto::cull_limits& files) {
    const std::string fd_name = handoff::fd_name(path, cache_dir, tag);
    if (auto kept = handoff::take_stored(fd_name)) {
        auto dev = cachefiles_device::adopt(std::move(kept));
        if (!dev) {
            // Drop it from the store too, so that the next start binds afresh instead of failing again.
            handoff::forget(fd_name);
            return unexpected{dev.error()};
        }
        lg.notice("took over the bound device from the previous daemon (cache dir {}, tag {}); "
                  "unanswered requests restored", cache_dir, tag);
        return bound{std::move(*dev), true};
    }
    auto dev = cachefiles_device::open(path, cache_dir, tag, blocks, files);
    if (!dev) return unexpected{dev.error()};
    lg.info("bound {} on-demand, cache dir {}, tag {}", path, cache_dir, tag);
    if (int r = handoff::store((*dev)->fd(), fd_name); r > 0) {
        lg.info("device fd handed to the service manager's fd store: a restart keeps the mounts working");
    } else if (r < 0) {
        lg.warn("could not hand the device fd to the service manager: {}", std::strerror(-r));
    }
    return bound{std::move(*dev), false};
}

}  // namespace blobd
