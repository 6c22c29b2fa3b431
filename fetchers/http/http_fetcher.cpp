// The HTTP fetcher's loop side: blob names to URLs, requests handed to the http_client on the net
// thread, results posted back and matched to their callbacks by id.
#include "fetchers/http/http_fetcher.hpp"

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "base/log.hpp"

namespace blobd {

namespace {
constexpr std::size_t max_known_sizes = 4096;
}  // namespace

http_fetcher::http_fetcher(event_loop& loop, net_thread& net, http_options opts) : loop_(loop), net_(net) {
    auto base = http::parse_url(opts.url);
    if (!base) {
        // The config loader validated the URL already; this is a caller bug, not input.
        throw std::system_error(EINVAL, std::generic_category(), "http source URL: " + base.error());
    }
    base_ = std::move(*base);
    client_ = std::make_shared<http_client>(net_.context(), std::move(opts), base_.redacted());
}

http_fetcher::~http_fetcher() {
    *alive_ = false;
    net_.run_sync([c = client_] { c->shutdown(); });
}

std::uint64_t http_fetcher::connections_opened() const noexcept { return client_->connections_opened(); }
std::uint64_t http_fetcher::requests_sent() const noexcept { return client_->requests_sent(); }

void http_fetcher::collect(metrics::snapshot& out, const std::string& label) const {
    fetcher::collect(out, label);
    out.add(http_client_metrics, client_->stats(), {label});
}

void http_fetcher::submit(http::request req, void (http_fetcher::*finish)(std::uint64_t, http::response),
                          std::uint64_t id) {
    auto back = [loop = &loop_, alive = alive_, self = this, id, finish](http::response o) {
        loop->post([alive, self, id, finish, o = std::move(o)]() mutable {
            if (*alive) (self->*finish)(id, std::move(o));
        });
    };
    boost::asio::post(net_.context(), [c = client_, req = std::move(req), back = std::move(back)]() mutable {
        c->start(std::move(req), std::move(back));
    });
}

void http_fetcher::stat(const blob_ref& blob, deadline due, stat_done done) {
    ++stats_.stats;
    const std::uint64_t id = next_id_++;
    stat_waiting_.emplace(id, stat_waiter{std::move(done), blob.name});
    http::request req;
    req.what = http::request::kind::stat;
    req.target = http::blob_url(base_, blob.name);
    req.deadline = due;
    submit(std::move(req), &http_fetcher::finish_stat, id);
}

void http_fetcher::fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) {
    ++stats_.fetches;
    if (len == 0 || len > (std::uint64_t{1} << 30) || off > UINT64_MAX - len) {
        ++stats_.fetch_errors;
        loop_.defer([done = std::move(done)] { done(unexpected{-EINVAL}); });
        return;
    }
    const std::uint64_t id = next_id_++;
    fetch_waiting_.emplace(id, std::move(done));
    http::request req;
    req.what = http::request::kind::fetch;
    req.target = http::blob_url(base_, blob.name);
    req.off = off;
    req.len = len;
    req.deadline = due;
    if (auto it = sizes_.find(blob.name); it != sizes_.end()) req.known_size = it->second;
    submit(std::move(req), &http_fetcher::finish_fetch, id);
}

void http_fetcher::finish_stat(std::uint64_t id, http::response o) {
    auto it = stat_waiting_.find(id);
    if (it == stat_waiting_.end()) return;
    auto w = std::move(it->second);
    stat_waiting_.erase(it);
    if (o.err) {
        ++stats_.stat_misses;
        return w.done(unexpected{o.err});
    }
    if (sizes_.size() >= max_known_sizes) sizes_.clear();  // a cache: losing it only relaxes one check
    sizes_[w.name] = o.size;
    w.done(o.size);
}

void http_fetcher::finish_fetch(std::uint64_t id, http::response o) {
    auto it = fetch_waiting_.find(id);
    if (it == fetch_waiting_.end()) return;
    auto done = std::move(it->second);
    fetch_waiting_.erase(it);
    if (o.err || !o.data) {
        ++stats_.fetch_errors;
        return done(unexpected{o.err ? o.err : -EIO});
    }
    stats_.bytes += o.data->filled;
    done(buffer_ptr(std::move(o.data)));
}

void http_fetcher::release(const blob_ref& blob) { sizes_.erase(blob.name); }

}  // namespace blobd
