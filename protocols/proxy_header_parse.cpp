// Parsing PROXY protocol headers, v1 text and v2 binary; see proxy_header.hpp for the rules and
// the invariants (prefix verdicts never taken back, nothing read past `data` or the header).

#include "protocols/ip_text.hpp"
#include "protocols/proxy_header.hpp"
#include "protocols/proxy_header_wire.hpp"

#include <algorithm>
#include <utility>

namespace postern::protocols::proxy_header {

namespace {

ParseResult need_more() {
    return {};
}

ParseResult invalid(std::string_view why) {
    return {Status::Invalid, 0, std::string(why)};
}

std::uint8_t byte_at(std::string_view s, std::size_t i) {
    return static_cast<std::uint8_t>(s[i]);
}

std::uint16_t be16_at(std::string_view s, std::size_t i) {
    return static_cast<std::uint16_t>(byte_at(s, i) << 8U | byte_at(s, i + 1));
}

// Does `s` agree with `expected` on their common length?
bool agrees(std::string_view s, std::string_view expected) {
    const std::size_t n = std::min(s.size(), expected.size());
    return s.substr(0, n) == expected.substr(0, n);
}

bool is_prefix_of(std::string_view s, std::string_view word) {
    return word.starts_with(s);
}

// ---- version 1 ----

enum class V1Field : std::uint8_t { Protocol, Source, Destination, SourcePort, DestinationPort };

constexpr std::array<std::string_view, 5> kV1BadField = {
    "v1: unknown protocol", "v1: bad source address", "v1: bad destination address",
    "v1: bad source port", "v1: bad destination port"};

// A decimal port (spec §2.1: 0..65535, no heading zero); with `partial`, something more digits
// could still turn into one.
std::optional<std::uint16_t> parse_port(std::string_view s, bool partial) {
    if (s.empty()) {
        return partial ? std::optional<std::uint16_t>{0} : std::nullopt;
    }
    if (s.size() > 5 || (s.size() > 1 && s[0] == '0')) {
        return std::nullopt;
    }
    unsigned value = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 0xFFFFU) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

// Reads one field of a TCP4/TCP6 line into `header`; `partial`: the field may still grow.
bool read_v1_field(V1Field field, std::string_view text, bool partial, Header& header) {
    const std::uint8_t family = header.source.family;
    Address& address = (field == V1Field::Source || field == V1Field::SourcePort)
                           ? header.source
                           : header.destination;
    if (field == V1Field::SourcePort || field == V1Field::DestinationPort) {
        const auto port = parse_port(text, partial);
        address.port = port.value_or(0);
        return port.has_value();
    }
    if (partial) {
        return family == 4 ? ip_text::could_be_ipv4(text) : ip_text::could_be_ipv6(text);
    }
    address.family = family;
    if (family == 4) {
        const auto v4 = ip_text::parse_ipv4(text);
        std::copy_n(v4.value_or(std::array<std::uint8_t, 4>{}).begin(), 4, address.bytes.begin());
        return v4.has_value();
    }
    const auto v6 = ip_text::parse_ipv6(text);
    address.bytes = v6.value_or(std::array<std::uint8_t, 16>{});
    return v6.has_value();
}

// Checks the text after "PROXY " up to the CR, or all that has arrived while `complete` is
// false. Fields that ended are checked fully, the one still arriving only for what it could
// become. Returns an error, or "" when the line is (or may still become) valid.
std::string_view check_v1_body(std::string_view body, bool complete, Header& header) {
    std::size_t start = 0;
    for (std::size_t index = 0;; ++index) {
        const std::size_t space = body.find(' ', start);
        const bool last = space == std::string_view::npos;
        const std::string_view text =
            body.substr(start, last ? body.size() - start : space - start);
        const bool ended = !last || complete;
        const auto field = static_cast<V1Field>(index);
        if (field == V1Field::Protocol) {
            if (!ended) {
                return is_prefix_of(text, "TCP4") || is_prefix_of(text, "TCP6") ||
                               is_prefix_of(text, "UNKNOWN")
                           ? ""
                           : kV1BadField[0];
            }
            if (text == "UNKNOWN") {
                // Spec §2.1: the rest of an UNKNOWN line is ignored, but it is still US-ASCII.
                const std::string_view rest = last ? "" : body.substr(space + 1);
                header.local = true;
                return std::all_of(rest.begin(), rest.end(),
                                   [](char c) { return c >= 0x20 && c <= 0x7E; })
                           ? ""
                           : "v1: bad character";
            }
            if (text != "TCP4" && text != "TCP6") {
                return kV1BadField[0];
            }
            header.source.family = header.destination.family = text == "TCP4" ? 4 : 6;
        } else {
            if (ended && text.empty()) {
                return "v1: expected exactly one space";
            }
            if (!read_v1_field(field, text, !ended, header)) {
                return kV1BadField[index];
            }
        }
        if (last) {
            return complete && field != V1Field::DestinationPort ? "v1: missing fields" : "";
        }
        if (field == V1Field::DestinationPort) {
            return "v1: too many fields";
        }
        start = space + 1;
    }
}

ParseResult parse_v1(std::string_view data, Header& out) {
    if (!agrees(data, wire::kV1Prefix)) {
        return invalid("not a PROXY protocol header");
    }
    if (data.size() <= wire::kV1Prefix.size()) {
        return need_more();
    }
    const std::string_view window = data.substr(0, std::min(data.size(), kMaxV1Length));
    const std::size_t eol = window.find_first_of("\r\n");
    bool complete = false;
    if (eol != std::string_view::npos) {
        if (window[eol] == '\n') {
            return invalid("v1: LF without CR");
        }
        if (eol + 1 < window.size()) {
            if (window[eol + 1] != '\n') {
                return invalid("v1: CR without LF");
            }
            complete = true;
        }
    }
    const std::string_view line = window.substr(0, std::min(eol, window.size()));
    Header header;
    if (const auto error = check_v1_body(line.substr(wire::kV1Prefix.size()), complete, header);
        !error.empty()) {
        return invalid(error);
    }
    if (complete) {
        out = std::move(header);
        return {Status::Done, eol + 2, {}};
    }
    return data.size() >= kMaxV1Length ? invalid("v1: line too long") : need_more();
}

// ---- version 2 ----

struct Tlv {
    std::uint8_t type = 0;
    std::size_t value_offset = 0;
    std::string_view value;
};

// The TLV at `offset` of `block`, if it fits in the block.
std::optional<Tlv> read_tlv(std::string_view block, std::size_t offset) {
    if (block.size() - offset < wire::kTlvHeaderLength) {
        return std::nullopt;
    }
    const std::size_t length = be16_at(block, offset + 1);
    if (block.size() - offset - wire::kTlvHeaderLength < length) {
        return std::nullopt;
    }
    return Tlv{byte_at(block, offset), offset + wire::kTlvHeaderLength,
               block.substr(offset + wire::kTlvHeaderLength, length)};
}

std::string_view read_ssl(std::string_view value, Header& header) {
    if (value.size() < wire::kSslFixedLength) {
        return "v2: bad SSL TLV";
    }
    const std::string_view subs = value.substr(wire::kSslFixedLength);
    std::optional<std::string_view> version;
    std::optional<std::string_view> cipher;
    for (std::size_t offset = 0; offset < subs.size();) {
        const auto sub = read_tlv(subs, offset);
        if (!sub) {
            return "v2: truncated SSL sub-TLV";
        }
        if (sub->type == wire::kSubtypeSslVersion || sub->type == wire::kSubtypeSslCipher) {
            auto& slot = sub->type == wire::kSubtypeSslVersion ? version : cipher;
            if (slot || !is_tlv_string(sub->value)) {
                return sub->type == wire::kSubtypeSslVersion ? "v2: bad SSL version"
                                                             : "v2: bad SSL cipher";
            }
            slot = sub->value;
        }
        offset = sub->value_offset + sub->value.size();
    }
    // Without PP2_CLIENT_SSL the client did not use TLS, whatever else the TLV says. A missing
    // version or cipher sub-TLV reads as an empty string.
    if ((byte_at(value, 0) & wire::kClientSsl) != 0) {
        header.tls = TlsInfo{std::string(version.value_or("")), std::string(cipher.value_or(""))};
    }
    return "";
}

// Walks the TLVs after the address block of the complete `header_bytes`. Unknown, ALPN, NOOP,
// UNIQUE_ID, NETNS and custom types are skipped; CRC32C is verified as spec §2.2.3 asks.
std::string_view read_tlvs(std::string_view header_bytes, std::size_t offset, Header& header) {
    bool seen_authority = false;
    bool seen_ssl = false;
    bool seen_crc = false;
    while (offset < header_bytes.size()) {
        const auto tlv = read_tlv(header_bytes, offset);
        if (!tlv) {
            return "v2: truncated TLV";
        }
        if (tlv->type == wire::kTypeAuthority) {
            if (seen_authority || !is_authority(tlv->value)) {
                return "v2: bad authority";
            }
            seen_authority = true;
            header.authority = tlv->value;
        } else if (tlv->type == wire::kTypeSsl) {
            if (seen_ssl) {
                return "v2: bad SSL TLV";
            }
            seen_ssl = true;
            if (const auto error = read_ssl(tlv->value, header); !error.empty()) {
                return error;
            }
        } else if (tlv->type == wire::kTypeCrc32c) {
            if (seen_crc || tlv->value.size() != 4) {
                return "v2: bad CRC32C";
            }
            seen_crc = true;
            // The checksum covers the whole header with its own field zeroed.
            std::string copy(header_bytes);
            std::fill_n(copy.begin() + static_cast<std::ptrdiff_t>(tlv->value_offset), 4, '\0');
            const std::uint32_t sent =
                std::uint32_t{be16_at(tlv->value, 0)} << 16U | be16_at(tlv->value, 2);
            if (crc32c(copy) != sent) {
                return "v2: CRC32C mismatch";
            }
        }
        offset = tlv->value_offset + tlv->value.size();
    }
    return "";
}

void read_address(std::string_view block, std::uint8_t family, std::size_t index, Address& out) {
    const std::size_t size = family == 4 ? 4 : 16;
    out.family = family;
    for (std::size_t i = 0; i < size; ++i) {
        out.bytes[i] = byte_at(block, index * size + i);
    }
    out.port = be16_at(block, 2 * size + 2 * index);
}

// The address block's length for the family/transport byte, or an error for the ones refused.
std::pair<std::size_t, std::string_view> address_length(std::uint8_t command, std::uint8_t fam) {
    // Spec §2.2: other nibble values "must be rejected as invalid by receivers", LOCAL or not.
    if ((fam >> 4U) > 3 || (fam & 0x0FU) > 2) {
        return {0, "v2: unknown address family or transport"};
    }
    if (command == wire::kCommandLocal) {
        return {0, ""};  // the family is ignored, the whole block skipped
    }
    switch (fam) {
        case wire::kUnspec:
            return {0, ""};
        case wire::kTcp4:
            return {wire::kTcp4AddressLength, ""};
        case wire::kTcp6:
            return {wire::kTcp6AddressLength, ""};
        case wire::kUdp4:
        case wire::kUdp6:
            return {0, "v2: UDP refused"};
        case wire::kUnixStream:
        case wire::kUnixDgram:
            return {0, "v2: AF_UNIX refused"};
        default:
            return {0, "v2: unsupported address family"};
    }
}

ParseResult parse_v2(std::string_view data, Header& out) {
    if (!agrees(data, wire::kV2Signature)) {
        return invalid("not a PROXY protocol header");
    }
    if (data.size() <= wire::kVersionCommandAt) {
        return need_more();
    }
    const std::uint8_t version_command = byte_at(data, wire::kVersionCommandAt);
    const auto command = static_cast<std::uint8_t>(version_command & 0x0FU);
    if ((version_command >> 4U) != 2) {
        return invalid("v2: unsupported version");
    }
    if (command != wire::kCommandLocal && command != wire::kCommandProxy) {
        return invalid("v2: unknown command");
    }
    if (data.size() <= wire::kFamilyAt) {
        return need_more();
    }
    const std::uint8_t fam = byte_at(data, wire::kFamilyAt);
    const auto [address_bytes, refused] = address_length(command, fam);
    if (!refused.empty()) {
        return invalid(refused);
    }
    if (data.size() < wire::kV2FixedLength) {
        return need_more();
    }
    const std::size_t length = wire::kV2FixedLength + be16_at(data, wire::kLengthAt);
    if (length > kMaxV2Length) {
        return invalid("v2: header too long");
    }
    if (length < wire::kV2FixedLength + address_bytes) {
        return invalid("v2: address block truncated");
    }
    if (data.size() < length) {
        return need_more();
    }
    Header header;
    if (command == wire::kCommandLocal || fam == wire::kUnspec) {
        // Spec §2.2: use the real endpoints and skip the block; with AF_UNSPEC there is no
        // telling where TLVs would start, so its bytes stay unread (and unchecked) too.
        header.local = true;
    } else {
        const std::string_view block = data.substr(wire::kV2FixedLength, address_bytes);
        const std::uint8_t family = fam == wire::kTcp4 ? 4 : 6;
        read_address(block, family, 0, header.source);
        read_address(block, family, 1, header.destination);
        if (const auto error =
                read_tlvs(data.substr(0, length), wire::kV2FixedLength + address_bytes, header);
            !error.empty()) {
            return invalid(error);
        }
    }
    out = std::move(header);
    return {Status::Done, length, {}};
}

}  // namespace

ParseResult parse(std::string_view data, Header& out) {
    if (data.empty()) {
        return need_more();
    }
    // The signatures differ from their first byte ('P' against CR).
    return data[0] == wire::kV1Prefix[0] ? parse_v1(data, out) : parse_v2(data, out);
}

}  // namespace postern::protocols::proxy_header
