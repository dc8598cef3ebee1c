#include "tls/cert_store.hpp"

#include "conf/certificates_dir.hpp"
#include "tls/server_name.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

namespace postern::tls {
namespace {

// OpenSSL 3 spends about 2 ms decoding one certificate and key, so thousands of customer
// certificates are loaded on every core at once; results keep the order of `specs`.
std::vector<CertificateLoad> load_all(const std::vector<const conf::CertificateSpec*>& specs,
                                      const conf::Config& config, const conf::FileSnapshot& files) {
    const std::size_t count = specs.size();
    std::vector<CertificateLoad> loads(count);
    std::atomic<std::size_t> next{0};
    auto work = [&] {
        for (std::size_t i = next++; i < count; i = next++) {
            loads[i] = load_certificate(*specs[i], config.tls, config.file, files);
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

void CertStore::index_name(const std::string& name, const Certificate* cert) {
    if (name.starts_with("*.")) {
        wildcard_[name.substr(1)].offer(cert);
    } else {
        exact_[name].offer(cert);
    }
}

// Called once every valid certificate is indexed and no expired one is yet.
void CertStore::withhold_covered_names(Certificate& expired) const {
    for (const auto& name : expired.names) {
        // A wildcard is covered only by the same wildcard; an exact name also by a wildcard.
        const bool covered =
            name.starts_with("*.")
                ? wildcard_.find(std::string_view{name}.substr(1)) != wildcard_.end()
                : lookup(name) != nullptr;
        if (covered) {
            expired.withheld_names.push_back(name);
        }
    }
}

CertStore::BuildResult CertStore::build(const conf::Config& config, std::time_t now) {
    return build(config, *conf::FileSnapshot::reading(config.file), now);
}

CertStore::BuildResult CertStore::build(const conf::Config& config, const conf::FileSnapshot& files,
                                        std::time_t now) {
    BuildResult result;
    conf::FolderScan folders = conf::scan_certificates_dir(config, files);
    std::vector<const conf::CertificateSpec*> specs;
    specs.reserve(config.certificates.size() + folders.certificates.size());
    for (const auto& spec : config.certificates) {
        specs.push_back(&spec);
    }
    for (const auto& spec : folders.certificates) {
        specs.push_back(&spec);
    }
    result.errors = std::move(folders.errors);

    auto store = std::make_shared<CertStore>();
    for (auto& load : load_all(specs, config, files)) {
        for (auto& e : load.errors) {
            result.errors.push_back(std::move(e));
        }
        if (load.certificate) {
            store->certs_.push_back(std::make_unique<Certificate>(std::move(*load.certificate)));
        }
    }
    // Valid ones first, then decide for every expired one before indexing any of them, so an
    // expired certificate never withholds names from another expired one.
    const auto is_valid = [now](const auto& cert) { return cert->not_after > now; };
    for (const auto& cert : store->certs_) {
        if (is_valid(cert)) {
            for (const auto& name : cert->names) {
                store->index_name(name, cert.get());
            }
        }
    }
    for (const auto& cert : store->certs_) {
        if (!is_valid(cert)) {
            store->withhold_covered_names(*cert);
        }
    }
    for (const auto& cert : store->certs_) {
        if (is_valid(cert)) {
            continue;
        }
        const auto& withheld = cert->withheld_names;
        for (const auto& name : cert->names) {
            if (std::find(withheld.begin(), withheld.end(), name) == withheld.end()) {
                store->index_name(name, cert.get());
            }
        }
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

const Certificate* CertStore::served_for(std::string_view san, KeyType type) const noexcept {
    const bool wildcard = san.starts_with("*.");
    const NameMap& map = wildcard ? wildcard_ : exact_;
    const auto it = map.find(wildcard ? san.substr(1) : san);
    return it == map.end() ? nullptr : it->second.slot(type);
}

const Certificate* CertStore::fallback(ClientCaps caps) const noexcept {
    return default_.pick(caps);
}

}  // namespace postern::tls
