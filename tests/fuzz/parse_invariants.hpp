// What must hold for every input to proto::parse, whatever the bytes: no crash (the sanitizers
// watch), and results consistent with the input. Shared by the libFuzzer target and the unit test.
#pragma once

#include <cstdlib>
#include <cstring>
#include <span>

#include "protocol/message.hpp"

namespace blobd::test {

inline void check_parse_invariants(std::span<const std::byte> in) {
    auto r = proto::parse(in);
    auto require = [](bool ok) {
        if (!ok) std::abort();
    };
    std::uint32_t opcode = ~0u;
    if (in.size() >= 8) std::memcpy(&opcode, in.data() + 4, 4);
    if (r) {
        require(in.size() >= 16 && in.size() <= proto::max_message_size);
        if (auto* o = std::get_if<proto::open_request>(&*r)) {
            require(opcode == CACHEFILES_OP_OPEN && o->fd >= 0);
            require(!o->volume_key.empty() && o->volume_key.size() <= proto::max_key_size);
            require(!o->cookie_key.empty() && o->cookie_key.size() <= proto::max_key_size);
            require(o->volume_key.find('\0') == std::string::npos);
            // What the engine does next with an OPEN: the domain and the cookie's file/URL name.
            const auto domain = proto::domain_of(o->volume_key);
            require(o->volume_key.ends_with(domain) && domain.size() <= o->volume_key.size());
            if (!proto::cookie_name_problem(o->cookie_key)) {
                require(o->cookie_key != "." && o->cookie_key != "..");
                for (char c : o->cookie_key) {
                    require(c != '/' && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
                }
            }
        } else if (auto* rd = std::get_if<proto::read_request>(&*r)) {
            require(opcode == CACHEFILES_OP_READ && rd->off + rd->len >= rd->off);
        } else {
            require(opcode == CACHEFILES_OP_CLOSE);
        }
    } else {
        const auto& e = r.error();
        require(static_cast<bool>(e.ec));
        require(e.stray_fd == -1 || opcode == CACHEFILES_OP_OPEN);
        require(e.msg_id.has_value() == (in.size() >= 16));
    }
}

}  // namespace blobd::test
