#include "protocols/protocol.hpp"

#include "protocols/text.hpp"

namespace postern::protocols {

std::optional<Protocol> protocol_named(std::string_view name) noexcept {
    for (const Protocol protocol : kProtocols) {
        if (text::iequals(name, to_string(protocol))) {
            return protocol;
        }
    }
    return std::nullopt;
}

}  // namespace postern::protocols
