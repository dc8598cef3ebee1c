#include "tls/cert_store.hpp"

#include "cert_factory.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

using postern::conf::Config;
using postern::tls::CertStore;
using postern::tls::ClientCaps;
using postern::tls::KeyType;
using postern::tls::testing::base_config;
using postern::tls::testing::kEcdsa;
using postern::tls::testing::kRsaOnly;
using postern::tls::testing::make_key;
using postern::tls::testing::served;
using postern::tls::testing::TempDir;
using postern::tls::testing::write_cert;

TEST_CASE("cert_store: exact names beat wildcards; wildcards cover exactly one label") {
    TempDir dir;
    auto key = make_key(false);
    Config config = base_config(dir);
    config.certificates.push_back(
        write_cert(dir.path(), "default", {"mail.default.test"}, key.get()));
    config.certificates.push_back(write_cert(dir.path(), "wild", {"*.example.com"}, key.get()));
    config.certificates.push_back(
        write_cert(dir.path(), "exact", {"mail.example.com", "example.com"}, key.get()));
    auto built = CertStore::build(config);
    REQUIRE(built.errors.empty());
    const CertStore& store = *built.store;

    CHECK(served(store, "mail.example.com") == "exact");
    CHECK(served(store, "example.com") == "exact");
    CHECK(served(store, "imap.example.com") == "wild");
    CHECK(served(store, "a.b.example.com") == "-");
    CHECK(served(store, "example.org") == "-");
    CHECK(store.fallback(kEcdsa)->data.cert_file.stem() == "default");
}

TEST_CASE("cert_store: ECDSA goes to clients that accept it, RSA to the others") {
    TempDir dir;
    auto ec = make_key(false);
    auto rsa = make_key(true);
    Config config = base_config(dir);
    config.certificates.push_back(write_cert(dir.path(), "ec", {"mail.default.test"}, ec.get()));
    config.certificates.push_back(write_cert(dir.path(), "rsa", {"mail.default.test"}, rsa.get()));
    auto built = CertStore::build(config);
    REQUIRE(built.errors.empty());
    CHECK(served(*built.store, "mail.default.test", kEcdsa) == "ec");
    CHECK(served(*built.store, "mail.default.test", kRsaOnly) == "rsa");
    CHECK(built.store->fallback(kRsaOnly)->key_type == KeyType::Rsa);
    CHECK(built.store->fallback(kEcdsa)->key_type == KeyType::Ecdsa);
}

TEST_CASE("cert_store: of two certificates for one name and key type, the later expiry wins") {
    TempDir dir;
    auto key = make_key(false);
    Config config = base_config(dir);
    config.certificates.push_back(
        write_cert(dir.path(), "new", {"mail.default.test"}, key.get(), 90, 2));
    config.certificates.push_back(
        write_cert(dir.path(), "old", {"mail.default.test"}, key.get(), 10, 1));
    auto built = CertStore::build(config);
    REQUIRE(built.errors.empty());
    CHECK(served(*built.store, "mail.default.test") == "new");
}

TEST_CASE("cert_store: a key that does not match its certificate is an error naming the key") {
    TempDir dir;
    auto key = make_key(false);
    auto other = make_key(false);
    Config config = base_config(dir);
    auto good = write_cert(dir.path(), "default", {"mail.default.test"}, key.get());
    auto wrong = write_cert(dir.path(), "other", {"other.test"}, other.get());
    good.key = wrong.key;
    good.key_name = "certificate[1]";
    good.at.line = 7;
    config.certificates.push_back(good);
    auto built = CertStore::build(config);
    CHECK_FALSE(built.store);
    REQUIRE(built.errors.size() == 1);
    CHECK(built.errors[0].key == "certificate[1].key");
    CHECK(built.errors[0].line == 7);
    CHECK(built.errors[0].message.find("does not match") != std::string::npos);
}

TEST_CASE("cert_store: broken or missing files are errors, not crashes") {
    TempDir dir;
    Config config = base_config(dir);
    postern::conf::CertificateSpec spec;
    spec.key_name = "certificate[1]";
    spec.cert = dir.path() / "missing.crt";
    spec.key = dir.path() / "missing.key";
    config.certificates.push_back(spec);
    {
        std::FILE* f = std::fopen((dir.path() / "junk.crt").c_str(), "w");
        std::fputs("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", f);
        std::fclose(f);
    }
    spec.key_name = "certificate[2]";
    spec.cert = dir.path() / "junk.crt";
    config.certificates.push_back(spec);
    auto built = CertStore::build(config);
    CHECK_FALSE(built.store);
    REQUIRE(built.errors.size() == 2);
    CHECK(built.errors[0].key == "certificate[1].cert");
    CHECK(built.errors[1].key == "certificate[2].cert");
}

TEST_CASE("cert_store: default_certificate must be covered by a loaded certificate") {
    TempDir dir;
    auto key = make_key(false);
    Config config = base_config(dir);
    config.tls.default_certificate = "mail.nowhere.test";
    config.certificates.push_back(write_cert(dir.path(), "a", {"mail.a.test"}, key.get()));
    auto built = CertStore::build(config);
    CHECK_FALSE(built.store);
    REQUIRE(built.errors.size() == 1);
    CHECK(built.errors[0].key == "tls.default_certificate");
    CHECK(built.errors[0].message.find("mail.a.test") != std::string::npos);

    config.tls.default_certificate = "x.a.test";  // not covered: mail.a.test is no wildcard
    CHECK_FALSE(CertStore::build(config).store);
}

TEST_CASE("cert_store: 10,000 certificates load and are found by name") {
    TempDir dir;
    auto key = make_key(false);
    Config config = base_config(dir);
    // The sanitizer pass sets a smaller count (POSTERN_TEST_CERT_COUNT): same code, less time.
    const char* env = std::getenv("POSTERN_TEST_CERT_COUNT");
    const int kCount = env != nullptr ? std::max(10000 / 100, std::atoi(env)) : 10000;
    config.certificates.push_back(
        write_cert(dir.path(), "default", {"mail.default.test"}, key.get()));
    for (int i = 0; i < kCount; ++i) {
        const std::string domain = "customer" + std::to_string(i) + ".test";
        config.certificates.push_back(write_cert(dir.path(), "c" + std::to_string(i),
                                                 {"mail." + domain, "*." + domain}, key.get()));
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto built = CertStore::build(config);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    MESSAGE("built a store of " << kCount + 1 << " certificates in " << ms.count() << " ms");
    REQUIRE(built.errors.empty());
    CHECK(built.store->certificates().size() == kCount + 1);
    CHECK(served(*built.store, "mail.customer0.test") == "c0");
    const std::string mid = std::to_string(kCount * 47 / 100);
    CHECK(served(*built.store, "mail.customer" + mid + ".test") == "c" + mid);
    const std::string last = std::to_string(kCount - 1);
    CHECK(served(*built.store, "imap.customer" + last + ".test") == "c" + last);
    CHECK(served(*built.store, "mail.customer" + std::to_string(kCount) + ".test") == "-");
}
