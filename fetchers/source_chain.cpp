#include <cerrno>

#include "fetchers/fetcher.hpp"

namespace blobd {

deadline source_chain::share(deadline due, std::size_t left, std::chrono::steady_clock::time_point now) {
    if (due == no_deadline || left <= 1 || due <= now) return due;
    return now + (due - now) / static_cast<long>(left);
}

void source_chain::stat(const blob_ref& blob, deadline due, stat_done done) {
    stat_from(0, blob, due, std::move(done), -ENOENT);
}

void source_chain::stat_from(std::size_t i, blob_ref blob, deadline due, stat_done done, int first_err) {
    if (i >= sources_.size()) {
        ++stats_.stat_misses;
        return done(unexpected{first_err});
    }
    auto& src = sources_[i];
    const auto now = std::chrono::steady_clock::now();
    if (due <= now && i > 0) {  // out of time: the first source is always asked (it may answer at once)
        ++stats_.stat_misses;
        return done(unexpected{first_err == -ENOENT ? -ETIMEDOUT : first_err});
    }
    src->stat(blob, share(due, sources_.size() - i, now),
              [this, i, blob, due, done = std::move(done), first_err](result<std::uint64_t, int> r) mutable {
                  if (r) {
                      ++stats_.stats;
                      if (i == 0) {
                          preferred_.erase(blob.name);
                      } else {
                          preferred_.insert_or_assign(blob.name, i);
                      }
                      return done(r);
                  }
                  // Report the most telling error: a real failure beats "not here".
                  int err = (first_err == -ENOENT && r.error() != -ENOENT) ? r.error() : first_err;
                  stat_from(i + 1, std::move(blob), due, std::move(done), err);
              });
}

void source_chain::fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) {
    std::size_t start = 0;
    if (!preferred_.empty()) {
        if (auto it = preferred_.find(blob.name); it != preferred_.end()) start = it->second;
    }
    fetch_from(start, 0, blob, off, len, due, std::move(done), -EIO);
}

void source_chain::fetch_from(std::size_t i, std::size_t tried, blob_ref blob, std::uint64_t off, std::uint64_t len,
                              deadline due, fetch_done done, int first_err) {
    const auto now = std::chrono::steady_clock::now();
    if (tried >= sources_.size() || (tried > 0 && due <= now)) {
        ++stats_.fetch_errors;
        return done(unexpected{first_err});
    }
    auto& src = sources_[i % sources_.size()];
    src->fetch(blob, off, len, share(due, sources_.size() - tried, now),
               [this, i, tried, blob, off, len, due, done = std::move(done),
                first_err](result<buffer_ptr, int> r) mutable {
                   if (r) {
                       ++stats_.fetches;
                       stats_.bytes += len;
                       return done(std::move(r));
                   }
                   int err = tried == 0 ? r.error() : first_err;
                   fetch_from(i + 1, tried + 1, std::move(blob), off, len, due, std::move(done), err);
               });
}

void source_chain::release(const blob_ref& blob) {
    preferred_.erase(blob.name);
    for (auto& s : sources_) s->release(blob);
}

std::string source_chain::describe() const {
    std::string out;
    for (const auto& s : sources_) {
        if (!out.empty()) out += ", ";
        out += s->describe();
    }
    return out;
}

}  // namespace blobd
