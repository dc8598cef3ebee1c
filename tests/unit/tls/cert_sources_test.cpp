// Where certificates come from besides a [[certificate]] PEM pair: certbot's live folder
// (tls.certificates_dir), PKCS#12 bundles, and PEM files in an unusual shape.
#include "cert_factory.hpp"
#include "tls/cert_store.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

using postern::conf::CertificateOrigin;
using postern::conf::CertificateSpec;
using postern::conf::Config;
using postern::tls::Certificate;
using postern::tls::CertStore;
using postern::tls::ClientCaps;
using postern::tls::testing::base_config;
using postern::tls::testing::Issuer;
using postern::tls::testing::kEcdsa;
using postern::tls::testing::make_ca;
using postern::tls::testing::make_cert;
using postern::tls::testing::make_key;
using postern::tls::testing::TempDir;
using postern::tls::testing::write_cert;
using postern::tls::testing::write_key;
using postern::tls::testing::write_pem;
using postern::tls::testing::write_pkcs12;

namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream{file, std::ios::binary} << text;
}

// certbot's layout: archive/<name>/{fullchain1,privkey1}.pem and live/<name>/* symlinks to them.
void certbot_issue(const fs::path& letsencrypt, const std::string& name,
                   const std::vector<std::string>& sans, const Issuer& ca, EVP_PKEY* key) {
    const fs::path archive = letsencrypt / "archive" / name;
    const fs::path live = letsencrypt / "live" / name;
    const auto leaf = make_cert(key, sans, 60, 7, &ca);
    write_pem(archive / "fullchain1.pem", {leaf.get(), ca.cert.get()});
    write_key(archive / "privkey1.pem", key);
    fs::create_directories(live);
    fs::create_symlink(fs::path{"../../archive"} / name / "fullchain1.pem", live / "fullchain.pem");
    fs::create_symlink(fs::path{"../../archive"} / name / "privkey1.pem", live / "privkey.pem");
}

std::string served(const CertStore& store, std::string_view host) {
    const Certificate* cert = store.find(host, kEcdsa);
    return cert == nullptr ? "-" : cert->data.cert_file.string();
}

std::string all_errors(const CertStore::BuildResult& built) {
    std::string out;
    for (const auto& e : built.errors) {
        out += e.key + ": " + e.message + "\n";
    }
    return out;
}

// A PKCS#12 [[certificate]] for mail.default.test, issued by `ca`.
CertificateSpec pkcs12_spec(const fs::path& bundle, const fs::path& password_file = {}) {
    CertificateSpec spec;
    spec.pkcs12 = bundle;
    spec.password_file = password_file;
    spec.key_name = "certificate[1]";
    spec.at.line = 4;
    return spec;
}

}  // namespace

TEST_CASE("certificates_dir: certbot's live folder loads through its symlinks, in name order") {
    TempDir dir;
    const Issuer ca = make_ca("Test CA");
    auto key_b = make_key(false);
    auto key_a = make_key(true);
    const fs::path le = dir.path() / "letsencrypt";
    // b first: the directory's own order must not decide the load order.
    certbot_issue(le, "b.test", {"mail.b.test", "b.test"}, ca, key_b.get());
    certbot_issue(le, "a.test", {"mail.a.test"}, ca, key_a.get());
    write_text(le / "live" / "README", "This directory contains your keys and certificates.\n");
    fs::create_directories(le / "live" / "not-a-certificate");
    write_text(le / "live" / "not-a-certificate" / "notes.txt", "nothing here\n");

    auto default_key = make_key(false);
    Config config = base_config(dir);
    config.certificates.push_back(
        write_cert(dir.path(), "default", {"mail.default.test"}, default_key.get()));
    config.tls.certificates_dir = le / "live";
    config.tls.certificates_dir_at.line = 3;

    auto built = CertStore::build(config);
    INFO(all_errors(built));
    REQUIRE(built.store);
    const auto& certs = built.store->certificates();
    REQUIRE(certs.size() == 3);
    CHECK(certs[0]->data.origin == CertificateOrigin::Entry);
    CHECK(certs[1]->data.cert_file == le / "live/a.test/fullchain.pem");
    CHECK(certs[1]->data.key_file == le / "live/a.test/privkey.pem");
    CHECK(certs[1]->data.origin == CertificateOrigin::Folder);
    CHECK(certs[1]->data.key_name == "tls.certificates_dir");
    CHECK(certs[2]->data.cert_file == le / "live/b.test/fullchain.pem");
    CHECK(served(*built.store, "mail.a.test") == (le / "live/a.test/fullchain.pem").string());
    CHECK(served(*built.store, "b.test") == (le / "live/b.test/fullchain.pem").string());
    CHECK(served(*built.store, "mail.default.test") == config.certificates[0].cert.string());

    // The chain from fullchain.pem is served after the leaf.
    STACK_OF(X509)* chain = nullptr;
    REQUIRE(SSL_CTX_get0_chain_certs(certs[2]->ctx.get(), &chain) == 1);
    REQUIRE(sk_X509_num(chain) == 1);
    CHECK(X509_cmp(sk_X509_value(chain, 0), ca.cert.get()) == 0);
}

TEST_CASE("certificates_dir: each subfolder is scanned again by every build") {
    TempDir dir;
    const Issuer ca = make_ca("Test CA");
    auto key = make_key(false);
    const fs::path le = dir.path() / "letsencrypt";
    certbot_issue(le, "default", {"mail.default.test"}, ca, key.get());
    Config config = base_config(dir);
    config.tls.certificates_dir = le / "live";
    REQUIRE(CertStore::build(config).store->certificates().size() == 1);

    certbot_issue(le, "new.test", {"mail.new.test"}, ca, key.get());
    auto built = CertStore::build(config);
    REQUIRE(built.store);
    CHECK(served(*built.store, "mail.new.test") == (le / "live/new.test/fullchain.pem").string());
}

TEST_CASE(
    "certificates_dir: a broken pair is an error keyed tls.certificates_dir naming the file") {
    TempDir dir;
    const Issuer ca = make_ca("Test CA");
    auto key = make_key(false);
    auto other = make_key(false);
    const fs::path le = dir.path() / "letsencrypt";
    certbot_issue(le, "default", {"mail.default.test"}, ca, key.get());
    certbot_issue(le, "broken.test", {"mail.broken.test"}, ca, key.get());
    write_key(le / "archive/broken.test/privkey1.pem", other.get());  // no longer matches
    Config config = base_config(dir);
    config.tls.certificates_dir = le / "live";
    config.tls.certificates_dir_at = {.line = 5, .column = 20};

    auto built = CertStore::build(config);
    CHECK_FALSE(built.store);
    REQUIRE(built.errors.size() == 1);
    CHECK(built.errors[0].key == "tls.certificates_dir");
    CHECK(built.errors[0].line == 5);
    CHECK(built.errors[0].column == 20);
    CHECK(built.errors[0].file == config.file.string());
    CHECK(built.errors[0].message.find((le / "live/broken.test/privkey.pem").string()) !=
          std::string::npos);
    CHECK(built.errors[0].message.find("does not match") != std::string::npos);
}

TEST_CASE("certificates_dir: a folder that vanished since the config was read is an error") {
    TempDir dir;
    Config config = base_config(dir);
    config.tls.default_certificate.clear();
    config.tls.certificates_dir = dir.path() / "gone";
    auto built = CertStore::build(config);
    CHECK_FALSE(built.store);
    REQUIRE(built.errors.size() == 1);
    CHECK(built.errors[0].key == "tls.certificates_dir");
    CHECK(built.errors[0].message.find("gone") != std::string::npos);
}

TEST_CASE("pkcs12: a bundle with a password file loads, its chain served after the leaf") {
    TempDir dir;
    const Issuer root = make_ca("Test Root");
    const Issuer intermediate = make_ca("Test Intermediate", &root, 101);
    auto key = make_key(false);
    auto leaf = make_cert(key.get(), {"mail.default.test", "*.default.test"}, 30, 9, &intermediate);
    const fs::path bundle = dir.path() / "mail.pfx";
    write_pkcs12(bundle, key.get(), leaf.get(), {intermediate.cert.get()}, "s3cret pass");
    // `echo "s3cret pass" > mail.pass`: the trailing newline is not part of the password.
    write_text(dir.path() / "mail.pass", "s3cret pass\n");

    Config config = base_config(dir);
    config.certificates.push_back(pkcs12_spec(bundle, dir.path() / "mail.pass"));
    auto built = CertStore::build(config);
    INFO(all_errors(built));
    REQUIRE(built.store);
    const Certificate& cert = *built.store->certificates().front();
    CHECK(cert.data.from_pkcs12);
    CHECK(cert.data.cert_file == bundle);
    CHECK(cert.data.key_file == bundle);
    CHECK(cert.data.password_file == dir.path() / "mail.pass");
    CHECK(cert.data.key_description == "ECDSA P-256");
    CHECK(served(*built.store, "imap.default.test") == bundle.string());
    CHECK(X509_cmp(SSL_CTX_get0_certificate(cert.ctx.get()), leaf.get()) == 0);
    STACK_OF(X509)* chain = nullptr;
    REQUIRE(SSL_CTX_get0_chain_certs(cert.ctx.get(), &chain) == 1);
    REQUIRE(sk_X509_num(chain) == 1);
    CHECK(X509_cmp(sk_X509_value(chain, 0), intermediate.cert.get()) == 0);
}

TEST_CASE("pkcs12: a bundle without a password loads with no password_file") {
    TempDir dir;
    auto key = make_key(true);
    auto leaf = make_cert(key.get(), {"mail.default.test"}, 30);
    const fs::path bundle = dir.path() / "open.p12";
    SUBCASE("empty password") {
        write_pkcs12(bundle, key.get(), leaf.get(), {}, "");
    }
    SUBCASE("no password at all") {
        write_pkcs12(bundle, key.get(), leaf.get(), {}, nullptr);
    }
    Config config = base_config(dir);
    config.certificates.push_back(pkcs12_spec(bundle));
    auto built = CertStore::build(config);
    INFO(all_errors(built));
    REQUIRE(built.store);
    CHECK(built.store->certificates().front()->data.key_description == "RSA 2048");
}

TEST_CASE("pkcs12: a wrong or missing password is an error naming where the password came from") {
    TempDir dir;
    auto key = make_key(false);
    auto leaf = make_cert(key.get(), {"mail.default.test"}, 30);
    const fs::path bundle = dir.path() / "mail.pfx";
    write_pkcs12(bundle, key.get(), leaf.get(), {}, "right");
    Config config = base_config(dir);

    SUBCASE("wrong password: blames password_file") {
        write_text(dir.path() / "mail.pass", "wrong\n");
        config.certificates.push_back(pkcs12_spec(bundle, dir.path() / "mail.pass"));
        auto built = CertStore::build(config);
        CHECK_FALSE(built.store);
        REQUIRE(built.errors.size() == 1);
        CHECK(built.errors[0].key == "certificate[1].password_file");
        CHECK(built.errors[0].line == 4);
        CHECK(built.errors[0].message.find("wrong password for " + bundle.string()) == 0);
    }
    SUBCASE("no password_file: blames the bundle and says what to set") {
        config.certificates.push_back(pkcs12_spec(bundle));
        auto built = CertStore::build(config);
        REQUIRE(built.errors.size() == 1);
        CHECK(built.errors[0].key == "certificate[1].pkcs12");
        CHECK(built.errors[0].message.find("set password_file") != std::string::npos);
    }
    SUBCASE("the password keeps everything but one trailing newline") {
        write_text(dir.path() / "mail.pass", "right\n\n");
        config.certificates.push_back(pkcs12_spec(bundle, dir.path() / "mail.pass"));
        CHECK_FALSE(CertStore::build(config).store);
        write_text(dir.path() / "mail.pass", "right\r\n");
        CHECK(CertStore::build(config).store);
    }
}

TEST_CASE("pkcs12: a file that is not a bundle is an error naming it") {
    TempDir dir;
    auto key = make_key(false);
    const auto pem = write_cert(dir.path(), "pem", {"mail.default.test"}, key.get());
    Config config = base_config(dir);
    config.certificates.push_back(pkcs12_spec(pem.cert));
    auto built = CertStore::build(config);
    REQUIRE(built.errors.size() == 1);
    CHECK(built.errors[0].key == "certificate[1].pkcs12");
    CHECK(built.errors[0].message.find(pem.cert.string() + " is not a PKCS#12 bundle") == 0);
}

// Runs once per process: afterwards the legacy provider stays loaded (as it does in postern).
TEST_CASE("pkcs12: a legacy RC2-40 bundle loads through OpenSSL's legacy provider") {
    REQUIRE_MESSAGE(OSSL_PROVIDER_available(nullptr, "legacy") == 0,
                    "another test loaded the legacy provider first");
    TempDir dir;
    auto key = make_key(false);
    auto leaf = make_cert(key.get(), {"mail.default.test"}, 30);
    const fs::path bundle = dir.path() / "windows.pfx";
    if (!write_pkcs12(bundle, key.get(), leaf.get(), {}, "old", true)) {
        MESSAGE("OpenSSL's legacy provider is not installed: skipped");
        return;
    }
    write_text(dir.path() / "windows.pass", "old");
    Config config = base_config(dir);
    config.certificates.push_back(pkcs12_spec(bundle, dir.path() / "windows.pass"));
    auto built = CertStore::build(config);
    INFO(all_errors(built));
    REQUIRE(built.store);
    CHECK(served(*built.store, "mail.default.test") == bundle.string());
    CHECK(OSSL_PROVIDER_available(nullptr, "legacy") == 1);
}

TEST_CASE("pem: a chain file that starts with the intermediate still serves the leaf first") {
    TempDir dir;
    const Issuer ca = make_ca("Test CA");
    auto key = make_key(false);
    auto leaf = make_cert(key.get(), {"mail.default.test"}, 30, 3, &ca);
    CertificateSpec spec;
    spec.cert = dir.path() / "reversed.pem";
    spec.key = dir.path() / "reversed.key";
    spec.key_name = "certificate[1]";
    write_pem(spec.cert, {ca.cert.get(), leaf.get()});
    write_key(spec.key, key.get());
    Config config = base_config(dir);
    config.certificates.push_back(spec);

    auto built = CertStore::build(config);
    INFO(all_errors(built));
    REQUIRE(built.store);
    const Certificate& cert = *built.store->certificates().front();
    CHECK(cert.data.leaf_index == 1);
    CHECK(cert.data.first_is_ca);
    CHECK(cert.data.first_subject == "CN=Test CA");
    CHECK(X509_cmp(SSL_CTX_get0_certificate(cert.ctx.get()), leaf.get()) == 0);
    STACK_OF(X509)* chain = nullptr;
    REQUIRE(SSL_CTX_get0_chain_certs(cert.ctx.get(), &chain) == 1);
    REQUIRE(sk_X509_num(chain) == 1);
    CHECK(X509_cmp(sk_X509_value(chain, 0), ca.cert.get()) == 0);
}

TEST_CASE("pem: an encrypted private key is refused with advice, never prompted for") {
    TempDir dir;
    auto key = make_key(false);
    CertificateSpec spec = write_cert(dir.path(), "enc", {"mail.default.test"}, key.get());
    {
        std::unique_ptr<FILE, postern::tls::CFree<&fclose>> f{std::fopen(spec.key.c_str(), "w")};
        PEM_write_PrivateKey(f.get(), key.get(), EVP_aes_256_cbc(), nullptr, 0, nullptr,
                             const_cast<char*>("pw"));
    }
    spec.key_name = "certificate[1]";
    Config config = base_config(dir);
    config.certificates.push_back(spec);
    auto built = CertStore::build(config);
    REQUIRE(built.errors.size() == 1);
    CHECK(built.errors[0].key == "certificate[1].key");
    CHECK(built.errors[0].message.find("is an encrypted private key") != std::string::npos);
}
