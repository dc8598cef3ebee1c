#include "tls/cert_checks.hpp"

#include "tls/x509_text.hpp"

#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <iterator>
#include <set>
#include <string_view>
#include <sys/stat.h>
#include <utility>

namespace postern::tls {
namespace {

constexpr std::time_t kDay = std::time_t{24} * 60 * 60;

std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& name : names) {
        out += out.empty() ? name : ", " + name;
    }
    return out;
}

std::string mode_text(mode_t mode) {
    std::array<char, 8> text{};
    (void)std::snprintf(text.data(), text.size(), "%04o", static_cast<unsigned>(mode & 07777));
    return text.data();
}

class Inspector {
public:
    Inspector(const CertStore& store, const conf::Config& config, std::time_t now,
              const conf::FileSnapshot* files)
        : store_(store), config_(config), now_(now), files_(files) {}

    std::vector<Finding> run();

private:
    void warn(const std::filesystem::path& file, std::string message) {
        findings_.push_back(Finding{Severity::Warning, file.string(), std::move(message)});
    }
    void expiry(const Certificate& cert);
    void chain(const Certificate& cert);
    void permissions(const std::filesystem::path& file, std::string_view what);
    void shadowed(const Certificate& cert);

    const CertStore& store_;
    const conf::Config& config_;
    std::time_t now_;
    const conf::FileSnapshot* files_;
    std::set<std::filesystem::path> stat_done_;
    std::vector<Finding> findings_;
};

std::vector<Finding> Inspector::run() {
    bool from_folder = false;
    for (const auto& cert : store_.certificates()) {
        from_folder = from_folder || cert->data.origin == conf::CertificateOrigin::Folder;
        expiry(*cert);
        chain(*cert);
        if (cert->data.from_pkcs12) {
            permissions(cert->data.key_file, "PKCS#12 bundle (it holds the private key)");
            if (!cert->data.password_file.empty()) {
                permissions(cert->data.password_file, "password file");
            }
        } else {
            permissions(cert->data.key_file, "private key");
        }
        shadowed(*cert);
    }
    if (!config_.tls.certificates_dir.empty() && !from_folder) {
        warn(config_.tls.certificates_dir,
             "tls.certificates_dir holds no certificate folder (a subfolder with " +
                 std::string{"fullchain.pem and privkey.pem"} + ")");
    }
    return std::move(findings_);
}

void Inspector::expiry(const Certificate& cert) {
    if (cert.not_after <= now_) {
        if (cert.withheld_names.size() == cert.names.size()) {
            warn(cert.data.cert_file,
                 "expired on " + cert.data.not_after_text() +
                     "; not served, as valid certificates cover all its names (" +
                     join(cert.names) + "): remove it");
            return;
        }
        std::vector<std::string> served;
        for (const auto& name : cert.names) {
            if (std::find(cert.withheld_names.begin(), cert.withheld_names.end(), name) ==
                cert.withheld_names.end()) {
                served.push_back(name);
            }
        }
        std::string message = "expired on " + cert.data.not_after_text() +
                              " and still served for " + join(served) +
                              ", as no valid certificate covers them: renew it";
        if (!cert.withheld_names.empty()) {
            message += " (not served for " + join(cert.withheld_names) +
                       ", which valid certificates cover)";
        }
        warn(cert.data.cert_file, std::move(message));
        return;
    }
    const std::time_t warn_before =
        static_cast<std::time_t>(config_.tls.expiry_warning_days) * kDay;
    if (cert.not_after - now_ < warn_before) {
        const std::int64_t days =
            days_left(X509_get0_notAfter(cert.data.leaf.get()), now_).value_or(0);
        warn(cert.data.cert_file,
             "expires on " + cert.data.not_after_text() + ", in " +
                 (days == 0 ? std::string{"less than a day"}
                            : std::to_string(days) + (days == 1 ? " day" : " days")) +
                 " (tls.expiry_warning_days = " + std::to_string(config_.tls.expiry_warning_days) +
                 ")");
    }
}

void Inspector::chain(const Certificate& cert) {
    if (cert.data.leaf_index != 0) {
        warn(cert.data.cert_file,
             "the certificate for the key is number " + std::to_string(cert.data.leaf_index + 1) +
                 " in the file, but the file starts with " +
                 (cert.data.first_is_ca ? "the CA certificate " : "") + cert.data.first_subject +
                 ": postern serves the leaf first anyway, other software may not; put it first");
    }
    if (chain_status(cert.data) != ChainStatus::MissingIntermediate) {
        return;
    }
    warn(cert.data.cert_file,
         "the leaf's issuer " + issuer_text(cert.data.leaf.get()) +
             " is not in the file: unless clients trust it as a root, they cannot verify the "
             "chain; append the intermediate certificate(s) after the leaf" +
             (cert.data.from_pkcs12 ? std::string{}
                                    : std::string{" (certbot: fullchain.pem, not cert.pem)"}));
}

void Inspector::permissions(const std::filesystem::path& file, std::string_view what) {
    if (!stat_done_.insert(file).second) {
        return;  // one key file shared by several certificates: say it once
    }
    struct stat st {};
    // stat follows symlinks: certbot's live/ links point to the real files in archive/.
    if (files_ != nullptr) {
        st.st_mode = files_->file(file).mode;
    } else if (::stat(file.c_str(), &st) != 0) {
        return;
    }
    if ((st.st_mode & 077) == 0) {
        return;
    }
    warn(file, std::string{what} + " is accessible to " +
                   ((st.st_mode & 070) != 0 && (st.st_mode & 07) != 0 ? "group and others"
                    : (st.st_mode & 070) != 0                         ? "group"
                                                                      : "others") +
                   " (mode " + mode_text(st.st_mode) + "): chmod 600 it");
}

// Names this certificate covers but that another certificate of the same key type is served
// for (the one expiring last wins): one finding per winning certificate.
void Inspector::shadowed(const Certificate& cert) {
    std::vector<std::pair<const Certificate*, std::vector<std::string>>> by_winner;
    for (const auto& name : cert.names) {
        if (std::find(cert.withheld_names.begin(), cert.withheld_names.end(), name) !=
            cert.withheld_names.end()) {
            continue;  // expired and replaced: reported by expiry()
        }
        const Certificate* winner = store_.served_for(name, cert.key_type);
        if (winner == nullptr || winner == &cert) {
            continue;
        }
        auto it = std::find_if(by_winner.begin(), by_winner.end(),
                               [winner](const auto& entry) { return entry.first == winner; });
        if (it == by_winner.end()) {
            by_winner.emplace_back(winner, std::vector<std::string>{});
            it = std::prev(by_winner.end());
        }
        it->second.push_back(name);
    }
    for (const auto& [winner, names] : by_winner) {
        warn(cert.data.cert_file, "not served for " + join(names) + ": " +
                                      winner->data.cert_file.string() + " covers " +
                                      (names.size() == 1 ? "it" : "them") + " with another " +
                                      to_string(cert.key_type) + " certificate that " +
                                      (winner->not_after > cert.not_after
                                           ? "expires later"
                                           : "expires at the same time and was loaded first") +
                                      " (" + winner->data.not_after_text() + ", this one " +
                                      cert.data.not_after_text() + ")");
    }
}

}  // namespace

const char* to_string(Severity severity) noexcept {
    switch (severity) {
        case Severity::Warning:
            return "warning";
        case Severity::Error:
            return "error";
    }
    return "warning";
}

const char* to_string(ChainStatus status) noexcept {
    switch (status) {
        case ChainStatus::Complete:
            return "complete";
        case ChainStatus::SelfSigned:
            return "self-signed";
        case ChainStatus::MissingIntermediate:
            return "missing intermediate";
    }
    return "complete";
}

ChainStatus chain_status(const CertificateData& data) {
    X509* leaf = data.leaf.get();
    if (leaf == nullptr || X509_check_issued(leaf, leaf) == X509_V_OK) {
        return ChainStatus::SelfSigned;  // there is no issuer to send
    }
    const STACK_OF(X509)* chain = data.chain.get();
    for (int i = 0; i < sk_X509_num(chain); ++i) {
        if (X509_check_issued(sk_X509_value(chain, i), leaf) == X509_V_OK) {
            return ChainStatus::Complete;
        }
    }
    return ChainStatus::MissingIntermediate;
}

std::string format_finding(const Finding& finding) {
    return std::string{to_string(finding.severity)} + ": " + finding.file + ": " + finding.message;
}

std::vector<Finding> inspect(const CertStore& store, const conf::Config& config, std::time_t now,
                             const conf::FileSnapshot* files) {
    return Inspector{store, config, now, files}.run();
}

}  // namespace postern::tls
