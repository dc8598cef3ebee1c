#include "tls/certificate_report.hpp"

#include "tls/ossl.hpp"
#include "tls/x509_text.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

namespace postern::tls {
namespace {

std::string hex(const unsigned char* data, std::size_t size) {
    constexpr std::string_view kDigits = "0123456789abcdef";
    std::string out;
    out.reserve(size * 2);
    for (std::size_t i = 0; i < size; ++i) {
        out += kDigits[data[i] >> 4U];
        out += kDigits[data[i] & 0x0fU];
    }
    return out;
}

// Names compare as a set: a renewal may list its SANs in another order.
std::vector<std::string> name_set(const Certificate& cert) {
    std::vector<std::string> names = cert.names;
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

// OPENSSL_free is a macro passing the caller's file and line.
void free_der(unsigned char* p) noexcept {
    OPENSSL_free(p);
}

}  // namespace

std::string tlsa_3_1_1(const X509* cert) {
    // Not X509_pubkey_digest: it hashes the key's bit string only, without the algorithm that
    // selector 1 (the whole SubjectPublicKeyInfo) includes.
    const X509_PUBKEY* spki = cert != nullptr ? X509_get_X509_PUBKEY(cert) : nullptr;
    unsigned char* der = nullptr;
    const int length = spki != nullptr ? i2d_X509_PUBKEY(spki, &der) : -1;
    if (length <= 0) {
        return {};
    }
    const std::unique_ptr<unsigned char, CFree<&free_der>> owned{der};
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int size = 0;
    if (EVP_Digest(der, static_cast<std::size_t>(length), md.data(), &size, EVP_sha256(),
                   nullptr) != 1) {
        return {};
    }
    return hex(md.data(), size);
}

std::vector<CertificateReport> certificate_report(const CertStore& store, std::time_t now) {
    std::vector<CertificateReport> out;
    out.reserve(store.certificates().size());
    for (const auto& cert : store.certificates()) {
        const X509* leaf = cert->data.leaf.get();
        const ASN1_TIME* not_after = X509_get0_notAfter(leaf);
        CertificateReport r;
        r.names = cert->names;
        r.file = cert->data.cert_file.string();
        r.key_type = cert->data.key_description;
        r.not_after = time_iso8601(not_after);
        r.not_after_unix = static_cast<std::int64_t>(cert->not_after);
        r.days_left = days_left(not_after, now).value_or(0);
        r.chain = chain_status(cert->data);
        r.leaf_first = cert->data.leaf_index == 0;
        r.tlsa = tlsa_3_1_1(leaf);
        out.push_back(std::move(r));
    }
    return out;
}

std::string certificates_json(const CertStore& store, std::time_t now) {
    nlohmann::json list = nlohmann::json::array();
    for (const CertificateReport& r : certificate_report(store, now)) {
        list.push_back({
            {"names", r.names},
            {"file", r.file},
            {"key_type", r.key_type},
            {"not_after", r.not_after},
            {"not_after_unix", r.not_after_unix},
            {"days_left", r.days_left},
            {"expired", r.not_after_unix <= static_cast<std::int64_t>(now)},
            {"chain", to_string(r.chain)},
            {"leaf_first", r.leaf_first},
            {"tlsa_3_1_1", r.tlsa},
        });
    }
    // Names and paths are what postern loaded; replace anything not UTF-8 rather than throw.
    return nlohmann::json{{"certificates", std::move(list)}}.dump(
        2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<KeyChange> key_changes(const CertStore& before, const CertStore& after) {
    std::map<std::vector<std::string>, std::vector<const Certificate*>> old_by_names;
    for (const auto& cert : before.certificates()) {
        old_by_names[name_set(*cert)].push_back(cert.get());
    }
    std::vector<KeyChange> out;
    std::set<std::pair<std::vector<std::string>, std::string>> seen;
    for (const auto& cert : after.certificates()) {
        std::vector<std::string> names = name_set(*cert);
        const auto olds = old_by_names.find(names);
        if (olds == old_by_names.end()) {
            continue;
        }
        std::string digest = tlsa_3_1_1(cert->data.leaf.get());
        const Certificate* served = nullptr;
        bool known = false;
        for (const Certificate* old : olds->second) {
            known = known || tlsa_3_1_1(old->data.leaf.get()) == digest;
            const auto rank = [&](const Certificate* c) {
                return std::pair{c->key_type == cert->key_type, c->not_after};
            };
            if (served == nullptr || rank(old) > rank(served)) {
                served = old;
            }
        }
        if (known || !seen.emplace(names, digest).second) {
            continue;
        }
        out.push_back(KeyChange{cert->names, cert->data.cert_file.string(),
                                tlsa_3_1_1(served->data.leaf.get()), std::move(digest)});
    }
    return out;
}

std::string describe(const KeyChange& change) {
    std::string names;
    for (const std::string& name : change.names) {
        names += names.empty() ? name : ", " + name;
    }
    return names + ": the public key changed at reload (TLSA 3 1 1 old " + change.old_tlsa +
           " -> new " + change.new_tlsa + ", " + change.file +
           "): publish the new TLSA record before the old one is withdrawn, or renew with "
           "certbot --reuse-key";
}

}  // namespace postern::tls
