#include "daemon/app.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "base/log.hpp"
#include "io/net_thread.hpp"
#include "fetchers/cas_fetcher.hpp"
#include "sources/make_source.hpp"

namespace blobd {

namespace {
const log::logger lg{"daemon"};
log::rate_limit bad_msg_limit;

}  // namespace

app::app(event_loop& loop, device& dev, std::shared_ptr<const cfg::config> config)
    : loop_(loop), dev_(dev), config_(std::move(config)), registry_(config_->chunk_size) {
    // The store wraps each source on its own rather than a whole chain: chains differ per domain
    // but the store must be one for all of them (that is the cross-domain dedup), and after an
    // integrity failure only the view of the source that delivered the bad bytes refuses the blob
    // (-EIO), so the chain itself moves on to the next source, whose view refetches through the
    // same store. A store in front of the chain could only refuse the blob as a whole.
    auto chain = [&](const std::vector<cfg::source>& list, std::string_view domain) {
        std::vector<std::shared_ptr<fetcher>> parts;
        for (const auto& s : list) {
            auto it = std::find_if(sources_.begin(), sources_.end(), [&](const auto& e) { return e.config == s; });
            if (it == sources_.end()) {
                sources_.push_back({s, sources::make_source(loop_, net_, s), nullptr});
                it = sources_.end() - 1;
            }
            if (!config_->store_for(domain, s)) {
                parts.push_back(it->upstream);
                continue;
            }
            if (!store_) {
                store_ = std::make_shared<cas_store>(
                    loop_, cas_store::options{config_->store_dir(), config_->store.verify, config_->store.max_bytes});
                store_->on_integrity_failure = [this](const std::string& name) {
                    // The cache files of open objects hold the bad bytes: overwrite them.
                    if (!stopping_) execute(registry_.refetch(name));
                };
            }
            if (!it->view) it->view = std::make_shared<cas_fetcher>(loop_, it->upstream, store_);
            parts.push_back(it->view);
        }
        return std::make_shared<source_chain>(std::move(parts));
    };
    // Domain names are never empty, so "" asks for the top-level store setting.
    default_chain_ = chain(config_->sources, "");
    for (const auto& [name, d] : config_->domains) domain_chains_.emplace(name, chain(d.sources, name));
    if (store_) {
        lg.info("blob store {} (sha256 checks {}, {}) in front of: {}", config_->store_dir(),
                config_->store.verify ? "on" : "off",
                config_->store.max_bytes ? fmt::format("at most {} bytes", config_->store.max_bytes) : "no size limit",
                [&] {
                    std::string out;
                    for (const auto& e : sources_) {
                        if (e.view) out += (out.empty() ? "" : ", ") + e.upstream->describe();
                    }
                    return out;
                }());
    }
}

app::~app() {
    // Network fetches run on their own thread and post results to the loop: stop it before anything
    // else goes, so nothing runs concurrently with the teardown and nothing is posted afterwards.
    // The fetchers (destroyed next) drop results already posted but not yet run.
    if (net_) net_->stop();
}

result<bool, std::string> app::start() {
    if (!config_->control_socket.empty()) {
        auto c = control_server::listen(loop_, config_->control_socket,
                                        [this](std::string_view req) { return control(req); });
        if (!c) return unexpected{c.error()};
        control_ = std::move(*c);
    }
    arm_device();
    lg.info("serving: chunk size {} bytes, default sources: {}", config_->chunk_size,
            default_chain_->describe().empty() ? "(none)" : default_chain_->describe());
    return true;
}

void app::arm_device() {
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

void app::drain_device() {
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

void app::handle_bad(const proto::parse_error& err) {
    ++stats_.bad_messages;
    unsigned suppressed = 0;
    if (bad_msg_limit.allow(suppressed)) {
        lg.err("malformed kernel message (msg_id {}, opcode {}): {}{}", err.msg_id ? std::to_string(*err.msg_id) : "?",
               err.opcode ? std::to_string(*err.opcode) : "?", err.ec.message(),
               suppressed ? fmt::format(" ({} similar suppressed)", suppressed) : "");
    }
    unique_fd stray(err.stray_fd);
    if (err.opcode == CACHEFILES_OP_OPEN) {
        registry_.refused_open();
    }
    // An OPEN must be answered even when unparseable, or the mount waits forever. A READ we
    // cannot parse has no trustworthy object to complete it on; the kernel fails it when the
    // object closes.
    if (err.opcode == CACHEFILES_OP_OPEN && err.msg_id) {
        if (int r = dev_.send(proto::copen(*err.msg_id, -EINVAL)); r < 0) ++stats_.reply_errors;
    }
}

void app::handle(proto::message&& msg) {
    if (auto* o = std::get_if<proto::open_request>(&msg)) {
        unique_fd fd(o->fd);
        const std::string domain(proto::domain_of(o->volume_key));
        if (auto problem = proto::cookie_name_problem(o->cookie_key)) {
            lg.err("OPEN {} refused: cookie name \"{}\" in volume \"{}\" {}: not a plain file name", o->msg_id,
                   proto::printable(o->cookie_key), proto::printable(o->volume_key), *problem);
            registry_.refused_open();
            if (int r = dev_.send(proto::copen(o->msg_id, -EINVAL)); r < 0) ++stats_.reply_errors;
            return;
        }
        lg.debug("OPEN {} object {} {}/{}", o->msg_id, o->object_id, domain, proto::printable(o->cookie_key));
        execute(registry_.open(o->msg_id, o->object_id, domain, std::move(o->cookie_key), std::move(fd)));
    } else if (auto* r = std::get_if<proto::read_request>(&msg)) {
        lg.debug("READ {} object {} [{}, +{})", r->msg_id, r->object_id, r->off, r->len);
        execute(registry_.read(r->msg_id, r->object_id, r->off, r->len));
    } else if (auto* c = std::get_if<proto::close_request>(&msg)) {
        lg.debug("CLOSE object {}", c->object_id);
        execute(registry_.close(c->object_id));
    }
}

fetcher& app::chain_for(const std::string& domain) {
    auto it = domain_chains_.find(domain);
    return it != domain_chains_.end() ? *it->second : *default_chain_;
}

void app::execute(effects&& effs) {
    for (auto& e : effs) {
        std::visit([this](auto& eff) {
            using T = std::decay_t<decltype(eff)>;
            if constexpr (std::is_same_v<T, reply_open>) {
                if (int r = dev_.send(proto::copen(eff.msg_id, eff.size_or_errno)); r < 0) {
                    ++stats_.reply_errors;
                    lg.err("copen {} failed: {}", eff.msg_id, std::strerror(-r));
                } else if (eff.opened && eff.size_or_errno > 0 && !stopping_ && config_->prefetch_for(eff.domain)) {
                    start_prefetch(eff.opened);
                }
                // eff.fd_to_close closes here, after the reply.
            } else if constexpr (std::is_same_v<T, stat_blob>) {
                chain_for(eff.domain).stat(blob_ref{eff.domain, eff.name},
                                           [this, id = eff.blob, d = eff.domain, n = eff.name](result<std::uint64_t, int> r) {
                                               if (!r) {
                                                   lg.err("blob {}/{}: not available from any source: {}", d, n,
                                                          std::strerror(-r.error()));
                                               } else {
                                                   lg.info("blob {}/{}: {} bytes", d, n, *r);
                                               }
                                               execute(registry_.on_stat(id, r));
                                           });
            } else if constexpr (std::is_same_v<T, fetch_chunk>) {
                (eff.background ? prefetch_queue_ : fetch_queue_).push_back(std::move(eff));
                pump_fetches();
            } else if constexpr (std::is_same_v<T, promote_fetch>) {
                promote(eff);
            } else if constexpr (std::is_same_v<T, write_chunk>) {
                queue_write(std::move(eff));
            } else if constexpr (std::is_same_v<T, release_blob>) {
                chain_for(eff.domain).release(blob_ref{eff.domain, eff.name});
            } else if constexpr (std::is_same_v<T, complete_read>) {
                if (int r = dev_.complete_read(eff.object->fd.get(), eff.msg_id); r < 0) {
                    ++stats_.completion_errors;
                    lg.debug("READ_COMPLETE {} on object {}: {}", eff.msg_id, eff.object->object_id, std::strerror(-r));
                }
            }
        }, e);
    }
    registry_.recycle(std::move(effs));
}

void app::queue_write(write_chunk w) {
    ++writes_held_;
    write_lane& lane = write_lanes_[w.object.get()];
    if (lane.admits(w.len)) {
        stats_.writes_per_file_peak = std::max<std::uint64_t>(stats_.writes_per_file_peak, ++lane.inflight);
        lane.bytes += w.len;
        submit_write(std::move(w));
    } else {
        ++stats_.write_waits;
        lane.queued.push_back(std::move(w));
    }
}

void app::submit_write(write_chunk w) {
    // Writes into an anon fd are direct I/O into the backing file: the length must be a
    // multiple of the logical block size, so an unaligned blob tail is written as a whole
    // zero-padded block (observed on 6.1: an exact 577-byte tail write fails with EINVAL).
    // Chunk offsets are multiples of the chunk size, so only the length needs rounding.
    const auto len = static_cast<unsigned>(std::min<std::uint64_t>(round_up(w.len, io_alignment), w.data->capacity()));
    const int fd = w.object->fd.get();
    const void* data = w.data->data();
    const std::uint64_t off = w.off;
    // The callback holds the object (so its fd) and the buffer until the CQE.
    loop_.write_all(fd, data, len, off, [this, w = std::move(w), len](int res) mutable {
        if (res >= 0 && static_cast<unsigned>(res) != len) res = -EIO;
        if (res < 0) {
            lg.err("write of {} bytes at {} into object {} failed: {}", len, w.off, w.object->object_id,
                   std::strerror(-res));
        }
        --writes_held_;
        // The next queued write into this file goes out before the registry reacts to this one.
        auto it = write_lanes_.find(w.object.get());
        write_lane& lane = it->second;
        --lane.inflight;
        lane.bytes -= w.len;
        while (!lane.queued.empty() && lane.admits(lane.queued.front().len)) {
            write_chunk next = std::move(lane.queued.front());
            lane.queued.pop_front();
            ++lane.inflight;
            lane.bytes += next.len;
            submit_write(std::move(next));
        }
        if (lane.inflight == 0) write_lanes_.erase(it);
        execute(registry_.on_written(w.object, w.chunk, res < 0 ? res : static_cast<int>(w.len)));
        pump_fetches();
    });
}

void app::start_fetch(fetch_chunk f) {
    ++fetches_inflight_;
    if (f.background) ++prefetches_inflight_;
    chain_for(f.domain).fetch(blob_ref{f.domain, f.name}, f.off, f.len,
                              [this, id = f.blob, chunk = f.chunk, bg = f.background](result<buffer_ptr, int> r) {
                                  --fetches_inflight_;
                                  if (bg) --prefetches_inflight_;
                                  execute(registry_.on_fetched(id, chunk, std::move(r)));
                                  pump_fetches();
                              });
}

void app::start_prefetch(const object_ptr& obj) {
    // What the cache file already holds (a remount, a restarted daemon) is not fetched again:
    // the anon fd seeks in the backing file, as cachefiles itself does to decide on READs.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> present;
    const int fd = obj->fd.get();
    off_t pos = 0;
    for (;;) {
        off_t data = ::lseek(fd, pos, SEEK_DATA);
        if (data < 0) break;  // ENXIO: no more data (or seeking unsupported: fetch everything)
        off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole <= data) break;
        present.emplace_back(static_cast<std::uint64_t>(data), static_cast<std::uint64_t>(hole - data));
        pos = hole;
    }
    execute(registry_.prefetch(obj->object_id, present));
}

void app::pump_fetches() {
    // Chunk buffers held for a write count like fetches in flight: together at most 64.
    const auto room = [this] { return fetches_inflight_ + writes_held_ < max_inflight_fetches; };
    while (room() && !fetch_queue_.empty()) {
        auto next = std::move(fetch_queue_.front());
        fetch_queue_.pop_front();
        start_fetch(std::move(next));
    }
    while (fetch_queue_.empty() && room() &&
           prefetches_inflight_ < config_->prefetch_concurrency && !prefetch_queue_.empty()) {
        auto next = std::move(prefetch_queue_.front());
        prefetch_queue_.pop_front();
        start_fetch(std::move(next));
    }
}

void app::promote(const promote_fetch& p) {
    // Still queued: move it to the on-demand queue. Already running: nothing to do, the READ
    // joined it and it holds no on-demand slot hostage beyond the prefetch limit.
    auto it = std::find_if(prefetch_queue_.begin(), prefetch_queue_.end(),
                           [&](const fetch_chunk& f) { return f.blob == p.blob && f.chunk == p.chunk; });
    if (it == prefetch_queue_.end()) return;
    fetch_chunk f = std::move(*it);
    prefetch_queue_.erase(it);
    f.background = false;
    fetch_queue_.push_front(std::move(f));
    pump_fetches();
}

void app::request_stop(std::chrono::milliseconds grace) {
    if (stopping_) return;
    stopping_ = true;
    lg.info("stopping: finishing in-flight work");
    if (control_) control_->stop();
    // Background fetches that have not started never will: forget them now so the drain only
    // waits for work a reader needs.
    auto queued = std::move(prefetch_queue_);
    prefetch_queue_.clear();
    for (const auto& f : queued) execute(registry_.abandon_fetch(f.blob, f.chunk));
    loop_.after(grace, [this] {
        if (!registry_.busy()) return;
        lg.warn("in-flight work did not finish in time: failing what is left");
        failed_pending_ = true;
        fetch_queue_.clear();  // their READs are failed below; nobody waits for the data
        prefetch_queue_.clear();
        execute(registry_.fail_all(-EIO));
    });
}

bool app::finished() const { return stopping_ && !registry_.busy() && loop_.inflight() == 0; }

void app::run() {
    while (!finished()) loop_.run_once(std::chrono::milliseconds(1000));
    const auto& s = registry_.stats();
    lg.info("stopped: {} opens ({} failed), {} reads ({} failed), {} bytes fetched, {} bytes written, {} fetch joins",
            s.opens, s.open_failures, s.reads, s.reads_failed, s.bytes_fetched, s.bytes_written, s.fetch_joins);
}

std::string app::control(std::string_view request) {
    std::string cmd(request);
    auto j = nlohmann::json::parse(request, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("cmd") && j["cmd"].is_string()) {
        cmd = j["cmd"].get<std::string>();
    }
    while (!cmd.empty() && (cmd.back() == '\r' || cmd.back() == ' ')) cmd.pop_back();
    if (cmd == "stats") return stats_json();
    if (cmd == "ping") return R"({"ok":true})";
    nlohmann::json err = {{"ok", false}, {"error", "unknown command (try \"stats\" or \"ping\")"}};
    return err.dump();
}

std::string app::stats_json() const {
    // One snapshot of every declared table, so that the JSON here and Prometheus text (next) list
    // the same counters under the same declarations. Only what is not a number is added below.
    metrics::snapshot snap;
    const daemon_stats d{
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count()),
        config_->chunk_size,
        // "bytes" of a source is what it delivered (over the network for remote ones); the store's
        // bytes_saved is what it did not have to. bytes_fetched is what reached cache files.
        [&] {
            std::uint64_t sum = 0;
            for (const auto& e : sources_) sum += e.upstream->stats().bytes;
            return sum;
        }()};
    snap.add(daemon_metrics, d);
    snap.add(registry_metrics, registry_.stats());
    snap.add(frontend_metrics, stats_);
    // A source is labelled by its describe() text; two sources that differ only in options the
    // text leaves out would share every series, so a repeat gets its position appended.
    std::vector<std::string> labels;
    for (std::size_t i = 0; i < sources_.size(); ++i) {
        std::string label = sources_[i].upstream->describe();
        if (std::find(labels.begin(), labels.end(), label) != labels.end()) label += fmt::format(" #{}", i + 1);
        sources_[i].upstream->collect(snap, label);
        labels.push_back(std::move(label));
    }
    snap.add(store_metrics, store_ ? store_->stats() : cas_store::stats_t{});

    nlohmann::ordered_json j = {{"ok", true}};
    j.update(metrics::to_json(snap));
    auto& sources = j["sources"];
    if (!sources.is_array()) sources = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < sources_.size() && i < sources.size(); ++i) {
        sources[i]["via_store"] = sources_[i].view != nullptr;
    }
    auto& store = j["store"];
    store["enabled"] = store_ != nullptr;
    store["dir"] = store_ ? config_->store_dir() : "";
    return j.dump();
}

}  // namespace blobd
