// tls::inspect and the expiry rules of CertStore::build: what `postern check` warns about.
#include "tls/cert_checks.hpp"

#include "cert_factory.hpp"
#include "tls/cert_store.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <string>
#include <sys/stat.h>
#include <vector>

using postern::conf::CertificateSpec;
using postern::conf::Config;
using postern::tls::CertStore;
using postern::tls::ClientCaps;
using postern::tls::Finding;
using postern::tls::KeyType;
using postern::tls::Severity;
using postern::tls::testing::base_config;
using postern::tls::testing::Issuer;
using postern::tls::testing::kEcdsa;
using postern::tls::testing::kRsaOnly;
using postern::tls::testing::make_ca;
using postern::tls::testing::make_cert;
using postern::tls::testing::make_key;
using postern::tls::testing::served;
using postern::tls::testing::TempDir;
using postern::tls::testing::write_cert;
using postern::tls::testing::write_key;
using postern::tls::testing::write_pem;
using postern::tls::testing::write_pkcs12;

namespace fs = std::filesystem;

namespace {

struct Inspected {
    std::shared_ptr<const CertStore> store;
    std::vector<Finding> findings;
};

// `later`: inspect as if this many seconds had passed since the certificates were made.
Inspected build_and_inspect(const Config& config, std::time_t later = 0) {
    auto built = CertStore::build(config);
    std::string errors;
    for (const auto& e : built.errors) {
        errors += e.key + ": " + e.message + "\n";
    }
    INFO(errors);
    REQUIRE(built.store);
    return {built.store, postern::tls::inspect(*built.store, config, std::time(nullptr) + later)};
}

// The findings about `file` whose message contains `words`.
std::vector<Finding> about(const std::vector<Finding>& findings, const fs::path& file,
                           std::string_view words) {
    std::vector<Finding> out;
    std::copy_if(findings.begin(), findings.end(), std::back_inserter(out), [&](const Finding& f) {
        return f.file == file.string() && f.message.find(words) != std::string::npos;
    });
    return out;
}

std::string all(const std::vector<Finding>& findings) {
    std::string out;
    for (const auto& f : findings) {
        out += postern::tls::format_finding(f) + "\n";
    }
    return out;
}

}  // namespace

TEST_CASE("cert_checks: a certificate clean in every respect yields no finding") {
    TempDir dir;
    const Issuer ca = make_ca("Test CA");
    auto key = make_key(false);
    auto leaf = make_cert(key.get(), {"mail.default.test"}, 90, 2, &ca);
    CertificateSpec spec;
    spec.cert = dir.path() / "clean.pem";
    spec.key = dir.path() / "clean.key";
    spec.key_name = "certificate[1]";
    write_pem(spec.cert, {leaf.get(), ca.cert.get()});
    write_key(spec.key, key.get(), 0600);
    Config config = base_config(dir);
    config.certificates.push_back(spec);
    const auto result = build_and_inspect(config);
    CHECK_MESSAGE(result.findings.empty(), all(result.findings));
}

TEST_CASE("cert_checks: an expired certificate is not served where a valid one covers the name") {
    TempDir dir;
    auto key = make_key(false);
    auto rsa = make_key(true);
    Config config = base_config(dir);
    // Listed first and with the same key type, so only the expiry rule can push it aside.
    config.certificates.push_back(
        write_cert(dir.path(), "old", {"mail.default.test", "legacy.test"}, key.get(), -3, 1));
    config.certificates.push_back(
        write_cert(dir.path(), "wild-old", {"*.default.test", "a.wild.test"}, key.get(), -1, 2));
    config.certificates.push_back(
        write_cert(dir.path(), "new", {"mail.default.test"}, rsa.get(), 60, 3));
    config.certificates.push_back(
        write_cert(dir.path(), "wild", {"*.wild.test"}, key.get(), 60, 4));
    const auto result = build_and_inspect(config);
    const CertStore& store = *result.store;

    // A valid RSA certificate beats an expired ECDSA one, even for ECDSA clients.
    CHECK(served(store, "mail.default.test", kEcdsa) == "new");
    CHECK(served(store, "mail.default.test", kRsaOnly) == "new");
    CHECK(store.fallback(kEcdsa)->data.cert_file.stem() == "new");
    // A valid wildcard covers an expired exact name.
    CHECK(served(store, "a.wild.test") == "wild");
    // Nothing valid covers these: the expired certificate is still served.
    CHECK(served(store, "legacy.test") == "old");
    CHECK(served(store, "imap.default.test") == "wild-old");

    const auto& certs = store.certificates();
    REQUIRE(certs.size() == 4);
    CHECK(certs[0]->withheld_names == std::vector<std::string>{"mail.default.test"});
    CHECK(certs[1]->withheld_names == std::vector<std::string>{"a.wild.test"});
    CHECK(certs[2]->withheld_names.empty());

    const auto old = about(result.findings, certs[0]->data.cert_file, "expired on");
    REQUIRE_MESSAGE(old.size() == 1, all(result.findings));
    CHECK(old[0].severity == Severity::Warning);
    CHECK(old[0].message.find("still served for legacy.test") != std::string::npos);
    CHECK(old[0].message.find("not served for mail.default.test") != std::string::npos);
}

TEST_CASE("cert_checks: an expired certificate whose names are all covered says remove it") {
    TempDir dir;
    auto key = make_key(false);
    Config config = base_config(dir);
    config.certificates.push_back(
        write_cert(dir.path(), "old", {"mail.default.test"}, key.get(), -10, 1));
    config.certificates.push_back(
        write_cert(dir.path(), "new", {"mail.default.test"}, key.get(), 60, 2));
    const auto result = build_and_inspect(config);
    CHECK(served(*result.store, "mail.default.test") == "new");
    const auto old = about(result.findings, config.certificates[0].cert, "expired on");
    REQUIRE_MESSAGE(old.size() == 1, all(result.findings));
    CHECK(old[0].message.find("not served, as valid certificates cover all its names") !=
          std::string::npos);
    // It is withheld, not shadowed: no second warning about the same name.
    CHECK_MESSAGE(result.findings.size() == 1, all(result.findings));
}

TEST_CASE("cert_checks: a certificate within expiry_warning_days of expiry is reported") {
    TempDir dir;
    auto key = make_key(false);
    Config config = base_config(dir);
    config.certificates.push_back(
        write_cert(dir.path(), "soon", {"mail.default.test"}, key.get(), 10, 1));
    config.certificates.push_back(write_cert(dir.path(), "later", {"x.test"}, key.get(), 40, 2));

    SUBCASE("default: 30 days") {
        const auto result = build_and_inspect(config, 3600);  // 9 days 23 hours left
        const auto soon = about(result.findings, config.certificates[0].cert, "expires on");
        REQUIRE_MESSAGE(soon.size() == 1, all(result.findings));
        CHECK(soon[0].message.find(", in 9 days (tls.expiry_warning_days = 30)") !=
              std::string::npos);
        CHECK(about(result.findings, config.certificates[1].cert, "expires").empty());
    }
    SUBCASE("45 days") {
        config.tls.expiry_warning_days = 45;
        const auto result = build_and_inspect(config);
        CHECK(about(result.findings, config.certificates[1].cert, "expires on").size() == 1);
    }
    SUBCASE("0 turns the warning off") {
        config.tls.expiry_warning_days = 0;
        const auto result = build_and_inspect(config);
        CHECK_MESSAGE(result.findings.empty(), all(result.findings));
    }
}

TEST_CASE(
    "cert_checks: two certificates of one type for a name: the later one is served, the "
    "other named") {
    TempDir dir;
    auto key = make_key(false);
    Config config = base_config(dir);
    config.certificates.push_back(
        write_cert(dir.path(), "renewed", {"mail.default.test", "a.test"}, key.get(), 90, 2));
    config.certificates.push_back(
        write_cert(dir.path(), "previous", {"mail.default.test", "a.test"}, key.get(), 50, 1));
    const auto result = build_and_inspect(config);
    CHECK(served(*result.store, "a.test") == "renewed");
    CHECK(result.store->served_for("a.test", KeyType::Ecdsa) ==
          result.store->certificates()[0].get());
    const auto shadowed = about(result.findings, config.certificates[1].cert, "not served for");
    REQUIRE_MESSAGE(shadowed.size() == 1, all(result.findings));
    CHECK(shadowed[0].message.find(
              "not served for mail.default.test, a.test: " + config.certificates[0].cert.string() +
              " covers them with another ECDSA certificate that expires "
              "later") == 0);
    CHECK(about(result.findings, config.certificates[0].cert, "not served").empty());
}

TEST_CASE("cert_checks: an ECDSA and an RSA certificate for one name are no duplicate") {
    TempDir dir;
    auto ec = make_key(false);
    auto rsa = make_key(true);
    Config config = base_config(dir);
    config.certificates.push_back(
        write_cert(dir.path(), "ec", {"mail.default.test"}, ec.get(), 90, 1));
    config.certificates.push_back(
        write_cert(dir.path(), "rsa", {"mail.default.test"}, rsa.get(), 50, 2));
    const auto result = build_and_inspect(config);
    CHECK_MESSAGE(result.findings.empty(), all(result.findings));
}

TEST_CASE("cert_checks: a chain file that does not start with the leaf is reported") {
    TempDir dir;
    const Issuer ca = make_ca("Test CA");
    auto key = make_key(false);
    auto leaf = make_cert(key.get(), {"mail.default.test"}, 90, 3, &ca);
    CertificateSpec spec;
    spec.cert = dir.path() / "reversed.pem";
    spec.key = dir.path() / "reversed.key";
    spec.key_name = "certificate[1]";
    write_pem(spec.cert, {ca.cert.get(), leaf.get()});
    write_key(spec.key, key.get());
    Config config = base_config(dir);
    config.certificates.push_back(spec);
    const auto result = build_and_inspect(config);
    const auto order = about(result.findings, spec.cert, "the certificate for the key is number 2");
    REQUIRE_MESSAGE(order.size() == 1, all(result.findings));
    CHECK(order[0].message.find("starts with the CA certificate CN=Test CA") != std::string::npos);
    // The issuer is in the file, just in the wrong place: nothing is missing.
    CHECK_MESSAGE(result.findings.size() == 1, all(result.findings));
}

TEST_CASE("cert_checks: a leaf whose issuer is not in the file is reported") {
    TempDir dir;
    const Issuer root = make_ca("Test Root");
    const Issuer intermediate = make_ca("Test Intermediate", &root, 101);
    auto key = make_key(false);
    auto leaf = make_cert(key.get(), {"mail.default.test"}, 90, 3, &intermediate);
    CertificateSpec spec;
    spec.cert = dir.path() / "leaf-only.pem";
    spec.key = dir.path() / "leaf-only.key";
    spec.key_name = "certificate[1]";
    write_key(spec.key, key.get());
    Config config = base_config(dir);
    config.certificates.push_back(spec);

    SUBCASE("leaf alone") {
        write_pem(spec.cert, {leaf.get()});
        const auto result = build_and_inspect(config);
        const auto missing = about(result.findings, spec.cert, "the leaf's issuer");
        REQUIRE_MESSAGE(missing.size() == 1, all(result.findings));
        CHECK(missing[0].message.find("CN=Test Intermediate is not in the file") !=
              std::string::npos);
        CHECK(missing[0].message.find("fullchain.pem, not cert.pem") != std::string::npos);
    }
    SUBCASE("leaf and the root, but not the intermediate between them") {
        write_pem(spec.cert, {leaf.get(), root.cert.get()});
        const auto result = build_and_inspect(config);
        CHECK(about(result.findings, spec.cert, "the leaf's issuer").size() == 1);
    }
    SUBCASE("leaf and its intermediate: complete") {
        write_pem(spec.cert, {leaf.get(), intermediate.cert.get()});
        const auto result = build_and_inspect(config);
        CHECK_MESSAGE(result.findings.empty(), all(result.findings));
    }
    SUBCASE("in a PKCS#12 bundle too") {
        CertificateSpec bundle;
        bundle.pkcs12 = dir.path() / "leaf-only.pfx";
        bundle.key_name = "certificate[1]";
        write_pkcs12(bundle.pkcs12, key.get(), leaf.get(), {}, "");
        ::chmod(bundle.pkcs12.c_str(), 0600);
        config.certificates = {bundle};
        const auto result = build_and_inspect(config);
        const auto missing = about(result.findings, bundle.pkcs12, "the leaf's issuer");
        REQUIRE_MESSAGE(missing.size() == 1, all(result.findings));
        CHECK(missing[0].message.find("cert.pem") == std::string::npos);
    }
}

TEST_CASE("cert_checks: key files readable by group or others are reported") {
    TempDir dir;
    auto key = make_key(false);
    Config config = base_config(dir);
    config.certificates.push_back(
        write_cert(dir.path(), "default", {"mail.default.test"}, key.get(), 90));
    const fs::path key_file = config.certificates[0].key;

    struct Row {
        mode_t mode;
        std::string_view words;  // empty: no finding
    };
    for (const Row& row :
         {Row{0600, ""}, Row{0400, ""}, Row{0640, "group (mode 0640)"},
          Row{0604, "others (mode 0604)"}, Row{0644, "group and others (mode 0644)"},
          Row{0620, "group (mode 0620)"}}) {
        CAPTURE(row.mode);
        REQUIRE(::chmod(key_file.c_str(), row.mode) == 0);
        const auto result = build_and_inspect(config);
        if (row.words.empty()) {
            CHECK_MESSAGE(result.findings.empty(), all(result.findings));
        } else {
            const auto found = about(result.findings, key_file, "private key is accessible to");
            REQUIRE_MESSAGE(found.size() == 1, all(result.findings));
            CHECK(found[0].message.find(row.words) != std::string::npos);
            CHECK(postern::tls::format_finding(found[0]) ==
                  "warning: " + key_file.string() + ": " + found[0].message);
        }
    }
}

TEST_CASE("cert_checks: a PKCS#12 bundle and its password file are checked like a key") {
    TempDir dir;
    auto key = make_key(false);
    auto leaf = make_cert(key.get(), {"mail.default.test"}, 90);
    CertificateSpec spec;
    spec.pkcs12 = dir.path() / "mail.pfx";
    spec.password_file = dir.path() / "mail.pass";
    spec.key_name = "certificate[1]";
    write_pkcs12(spec.pkcs12, key.get(), leaf.get(), {}, "pw");
    {
        std::unique_ptr<FILE, postern::tls::CFree<&fclose>> f{
            std::fopen(spec.password_file.c_str(), "w")};
        REQUIRE(std::fputs("pw\n", f.get()) >= 0);
    }
    ::chmod(spec.pkcs12.c_str(), 0644);
    ::chmod(spec.password_file.c_str(), 0640);
    Config config = base_config(dir);
    config.certificates.push_back(spec);
    const auto result = build_and_inspect(config);
    CHECK(about(result.findings, spec.pkcs12,
                "PKCS#12 bundle (it holds the private key) is "
                "accessible to group and others")
              .size() == 1);
    CHECK(
        about(result.findings, spec.password_file, "password file is accessible to group").size() ==
        1);
    CHECK_MESSAGE(result.findings.size() == 2, all(result.findings));
}

TEST_CASE("cert_checks: an empty certificates_dir is reported") {
    TempDir dir;
    auto key = make_key(false);
    Config config = base_config(dir);
    config.certificates.push_back(
        write_cert(dir.path(), "default", {"mail.default.test"}, key.get(), 90));
    fs::create_directories(dir.path() / "live");
    config.tls.certificates_dir = dir.path() / "live";
    const auto result = build_and_inspect(config);
    REQUIRE_MESSAGE(result.findings.size() == 1, all(result.findings));
    CHECK(result.findings[0].file == (dir.path() / "live").string());
    CHECK(result.findings[0].message.find("holds no certificate folder") != std::string::npos);
}
