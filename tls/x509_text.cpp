#include "tls/x509_text.hpp"

#include "tls/ossl.hpp"

#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <array>
#include <cstddef>

namespace postern::tls {
namespace {

constexpr std::int64_t kDaySeconds = std::int64_t{24} * 60 * 60;
constexpr std::size_t kDateLength = 10;  // "2027-02-20", before the time

std::string asn1_string(const ASN1_STRING* s) {
    return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
            static_cast<std::size_t>(ASN1_STRING_length(s))};
}

// What was written into a memory BIO.
std::string contents(BIO* bio) {
    // BIO_get_mem_data() is a macro with a C cast; this is the call it makes.
    char* data = nullptr;
    const long len = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data);
    return len > 0 ? std::string{data, static_cast<std::size_t>(len)} : std::string{};
}

std::string ip_text(const ASN1_OCTET_STRING* ip) {
    std::array<char, INET6_ADDRSTRLEN> buf{};
    const unsigned char* data = ASN1_STRING_get0_data(ip);
    const int len = ASN1_STRING_length(ip);
    if ((len == 4 && inet_ntop(AF_INET, data, buf.data(), buf.size()) != nullptr) ||
        (len == 16 && inet_ntop(AF_INET6, data, buf.data(), buf.size()) != nullptr)) {
        return buf.data();
    }
    return "(" + std::to_string(len) + "-byte address)";
}

// OpenSSL's ISO 8601 form, "2027-02-20 12:00:00Z" (a space, not a 'T'); empty when unreadable.
std::string iso_time(const ASN1_TIME* time) {
    BioPtr bio{BIO_new(BIO_s_mem())};
    if (!bio || time == nullptr || ASN1_TIME_print_ex(bio.get(), time, ASN1_DTFLGS_ISO8601) != 1) {
        return {};
    }
    std::string text = contents(bio.get());
    return text.size() > kDateLength && text[kDateLength] == ' ' ? text : std::string{};
}

}  // namespace

std::string name_text(const X509_NAME* name) {
    BioPtr bio{BIO_new(BIO_s_mem())};
    if (!bio || name == nullptr) {
        return {};
    }
    // RFC 2253 keeps UTF-8 escaped as \XX unless ESC_MSB is off: kept as it is, and whoever
    // prints it for a terminal escapes what is unsafe.
    if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        return {};
    }
    return contents(bio.get());
}

std::string subject_text(const X509* cert) {
    return name_text(X509_get_subject_name(cert));
}

std::string issuer_text(const X509* cert) {
    return name_text(X509_get_issuer_name(cert));
}

SubjectAltNames subject_alt_names(const X509* cert) {
    SubjectAltNames out;
    const GeneralNamesPtr sans{static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))};
    if (!sans) {
        return out;
    }
    out.present = true;
    for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
        if (gn->type == GEN_DNS) {
            out.dns.push_back(asn1_string(gn->d.dNSName));
        } else if (gn->type == GEN_IPADD) {
            out.ip.push_back(ip_text(gn->d.iPAddress));
        }
    }
    return out;
}

std::optional<std::string> common_name(const X509* cert) {
    const X509_NAME* subject = X509_get_subject_name(cert);
    const int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx < 0) {
        return std::nullopt;
    }
    return asn1_string(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx)));
}

std::string time_text(const ASN1_TIME* time) {
    std::string text = iso_time(time);
    if (text.empty()) {
        return text;
    }
    if (text.back() == 'Z') {
        text.pop_back();
    }
    return text + " UTC";
}

std::string time_iso8601(const ASN1_TIME* time) {
    std::string text = iso_time(time);
    if (text.empty()) {
        return text;
    }
    text[kDateLength] = 'T';
    if (text.back() != 'Z') {
        text += 'Z';
    }
    return text;
}

std::optional<std::time_t> to_time_t(const ASN1_TIME* time) {
    std::tm tm{};
    if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
        return std::nullopt;
    }
    return timegm(&tm);
}

std::optional<std::int64_t> days_left(const ASN1_TIME* time, std::time_t now) {
    const Asn1TimePtr from{ASN1_TIME_set(nullptr, now)};
    int days = 0;
    int seconds = 0;
    if (time == nullptr || !from || ASN1_TIME_diff(&days, &seconds, from.get(), time) != 1) {
        return std::nullopt;
    }
    const std::int64_t total = std::int64_t{days} * kDaySeconds + seconds;
    return total >= 0 ? total / kDaySeconds : -((-total + kDaySeconds - 1) / kDaySeconds);
}

}  // namespace postern::tls
