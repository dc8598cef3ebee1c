#include "tls/cert_store.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

#include "tls/server_name.hpp"

namespace postern::tls {
namespace {

// OpenSSL 3 spends about 2 ms decoding one certificate and key, so thousands of customer
// certificates are loaded on every core at once; results keep the config's order.
std::vector<CertificateLoad> load_all(const conf::Config& config) {
    const std::size_t count = config.certificates.size();
    std::vector<CertificateLoad> loads(count);
    std::atomic<std::size_t> next{0};
    auto work = [&] {
        for (std::size_t i = next++; i < count; i = next++) {
            loads[i] = load_certificate(config.certificates[i], config.tls, config.file);
        }
    };
    constexpr std::size_t kPerThread = 64;
    const std::size_t threads = std::clamp<std::size_t>(
        std::min<std::size_t>(std::thread::hardware_concurrency(), count / kPerThread), 1, 16);
    {
        std::vector<std::jthread> pool;
        for (std::size_t t = 1; t < threads; ++t) {
            pool.emplace_back(work);
        }
        work();
    }  // joins the pool
    return loads;
}

}  // namespace

void CertStore::ByKeyType::offer(const Certificate* cert) noexcept {
    const Certificate** slot = cert->key_type == KeyType::Ecdsa ? &ecdsa : &rsa;
    if (*slot == nullptr || (*slot)->not_after < cert->not_after) {
        *slot = cert;
    }
}

const Certificate* CertStore::ByKeyType::pick(ClientCaps caps) const noexcept {
    if (caps.ecdsa && ecdsa != nullptr) {
        return ecdsa;
    }
    // A client that cannot use ECDSA still gets it when nothing else covers the name: the
    // handshake then fails with a clear alert rather than with the wrong certificate.
    return rsa != nullptr ? rsa : ecdsa;
}

CertStore::BuildResult CertStore::build(const conf::Config& config) {
    BuildResult result;
    auto store = std::make_shared<CertStore>();
    for (auto& load : load_all(config)) {
        for (auto& e : load.errors) {
            result.errors.push_back(std::move(e));
        }
        if (!load.certificate) {
            continue;
        }
        auto cert = std::make_unique<Certificate>(std::move(*load.certificate));
        for (const auto& name : cert->names) {
            if (name.starts_with("*.")) {
                store->wildcard_[name.substr(1)].offer(cert.get());
            } else {
                store->exact_[name].offer(cert.get());
            }
        }
        store->certs_.push_back(std::move(cert));
    }

    if (!config.tls.default_certificate.empty()) {
        const auto host = normalize_host_name(config.tls.default_certificate);
        const ByKeyType* covered = host ? store->lookup(*host) : nullptr;
        if (covered != nullptr) {
            store->default_ = *covered;
        } else if (result.errors.empty()) {
            std::string have;
            for (const auto& c : store->certs_) {
                for (const auto& n : c->names) {
                    if (have.size() > 200) {
                        break;
                    }
                    have += have.empty() ? n : ", " + n;
                }
            }
            result.errors.push_back(conf::ConfigError{
                .file = config.file.string(),
                .line = config.tls.default_certificate_at.line,
                .column = config.tls.default_certificate_at.column,
                .key = "tls.default_certificate",
                .message = "no loaded certificate covers \"" + config.tls.default_certificate +
                           "\"" + (have.empty() ? std::string{} : " (covered: " + have + ")")});
        }
    }
    if (result.errors.empty()) {
        result.store = std::move(store);
    }
    return result;
}

const CertStore::ByKeyType* CertStore::lookup(std::string_view host) const noexcept {
    if (auto it = exact_.find(host); it != exact_.end()) {
        return &it->second;
    }
    const std::string_view parent = wildcard_key(host);
    if (!parent.empty()) {
        if (auto it = wildcard_.find(parent); it != wildcard_.end()) {
            return &it->second;
        }
    }
    return nullptr;
}

const Certificate* CertStore::find(std::string_view host, ClientCaps caps) const noexcept {
    const ByKeyType* entry = lookup(host);
    return entry != nullptr ? entry->pick(caps) : nullptr;
}

const Certificate* CertStore::fallback(ClientCaps caps) const noexcept {
    return default_.pick(caps);
}

}  // namespace postern::tls
