// tls::certificate_report, its JSON, the TLSA 3 1 1 digest and the key changes a reload logs.
#include "tls/certificate_report.hpp"

#include "cert_factory.hpp"
#include "tls/cert_store.hpp"

#include <doctest/doctest.h>
#include <openssl/pem.h>

#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using postern::conf::CertificateSpec;
using postern::conf::Config;
using postern::tls::CertStore;
using postern::tls::ChainStatus;
using postern::tls::X509Ptr;
using postern::tls::testing::base_config;
using postern::tls::testing::Issuer;
using postern::tls::testing::make_ca;
using postern::tls::testing::make_cert;
using postern::tls::testing::make_key;
using postern::tls::testing::TempDir;
using postern::tls::testing::write_cert;
using postern::tls::testing::write_key;
using postern::tls::testing::write_pem;

namespace {

// A self-signed P-256 certificate for mail.example.net (public part only) and what
//   openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256
// printed for it.
constexpr const char* kPem = R"(-----BEGIN CERTIFICATE-----
MIIBpzCCAU6gAwIBAgIUc8xGvZzB10HhJaw2L50lpERRnWEwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQbWFpbC5leGFtcGxlLm5ldDAeFw0yNjEyMDIyMTMxNTBaFw0z
NjExMjkyMTMxNTBaMBsxGTAXBgNVBAMMEG1haWwuZXhhbXBsZS5uZXQwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAQiGl/t8HASkATaN+hoKOSe1ZBZlUXXf5tJAMjh
pGJZSl5qJgebdDO8RCENciMTaGzt1BqsARaCV7Y2mpVKGACHo3AwbjAdBgNVHQ4E
FgQUqwatcHQrkzjpBmTzblJEDlcEJZgwHwYDVR0jBBgwFoAUqwatcHQrkzjpBmTz
blJEDlcEJZgwDwYDVR0TAQH/BAUwAwEB/zAbBgNVHREEFDASghBtYWlsLmV4YW1w
bGUubmV0MAoGCCqGSM49BAMCA0cAMEQCIBnSTZI9Wo4ZI+N76w4/sA6nH4BYgyon
395pBO8h9mnVAiBYSanalJUJviNGXirL3ftw8BntMtkzoOVpEVJGZ/8Vxw==
-----END CERTIFICATE-----
)";
constexpr const char* kPemTlsa = "fc9947af35757ec35b28368cb884433064d069282b69effcc085f1b5155453c9";

X509Ptr parse(const char* pem) {
    const postern::tls::BioPtr bio{BIO_new_mem_buf(pem, -1)};
    return X509Ptr{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)};
}

std::shared_ptr<const CertStore> build(const Config& config) {
    auto built = CertStore::build(config);
    std::string errors;
    for (const auto& e : built.errors) {
        errors += e.key + ": " + e.message + "\n";
    }
    INFO(errors);
    REQUIRE(built.store);
    return built.store;
}

std::string tlsa_of(const CertStore& store, std::size_t index) {
    return postern::tls::tlsa_3_1_1(store.certificates().at(index)->data.leaf.get());
}

}  // namespace

TEST_CASE("certificate_report: TLSA 3 1 1 is the SHA-256 of the DER SubjectPublicKeyInfo") {
    const X509Ptr cert = parse(kPem);
    REQUIRE(cert);
    CHECK(postern::tls::tlsa_3_1_1(cert.get()) == kPemTlsa);
    CHECK(postern::tls::tlsa_3_1_1(nullptr).empty());

    // The key decides it, not the certificate: same key, same digest; another key, another.
    auto key = make_key(false);
    auto other = make_key(false);
    const X509Ptr first = make_cert(key.get(), {"a.test"}, 30, 1);
    const X509Ptr renewed = make_cert(key.get(), {"a.test"}, 90, 2);
    const X509Ptr rekeyed = make_cert(other.get(), {"a.test"}, 90, 3);
    const std::string digest = postern::tls::tlsa_3_1_1(first.get());
    CHECK(digest.size() == 64);
    CHECK(digest.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(postern::tls::tlsa_3_1_1(renewed.get()) == digest);
    CHECK(postern::tls::tlsa_3_1_1(rekeyed.get()) != digest);
}

TEST_CASE("certificate_report: names, key type, expiry, chain status and TLSA per certificate") {
    TempDir dir;
    Config config = base_config(dir);
    auto ec = make_key(false);
    auto rsa = make_key(true);
    config.certificates.push_back(
        write_cert(dir.path(), "ec", {"mail.default.test", "*.default.test"}, ec.get(), 30));
    config.certificates.push_back(write_cert(dir.path(), "rsa", {"mail.rsa.test"}, rsa.get(), 60));
    // Issued by an intermediate: with it in the file, and without.
    const Issuer root = make_ca("Test Root");
    const Issuer intermediate = make_ca("Test Intermediate", &root, 101);
    auto leaf_key = make_key(false);
    const X509Ptr leaf = make_cert(leaf_key.get(), {"full.test"}, 90, 5, &intermediate);
    for (const char* stem : {"full", "bare"}) {
        CertificateSpec spec;
        spec.cert = dir.path() / (std::string{stem} + ".pem");
        spec.key = dir.path() / (std::string{stem} + ".key");
        spec.key_name = std::string{"certificate["} + stem + "]";
        if (std::string_view{stem} == "full") {
            write_pem(spec.cert, {leaf.get(), intermediate.cert.get()});
        } else {
            write_pem(spec.cert, {leaf.get()});
        }
        write_key(spec.key, leaf_key.get());
        config.certificates.push_back(spec);
    }
    const auto store = build(config);
    // An hour on, so that the days left do not depend on the second the certificates were made.
    const std::time_t now = std::time(nullptr) + 3600;
    const auto report = postern::tls::certificate_report(*store, now);
    REQUIRE(report.size() == 4);

    CHECK(report[0].names == std::vector<std::string>{"mail.default.test", "*.default.test"});
    CHECK(report[0].file == (dir.path() / "ec.crt").string());
    CHECK(report[0].key_type == "ECDSA P-256");
    CHECK(report[1].key_type == "RSA 2048");
    CHECK(report[0].chain == ChainStatus::SelfSigned);
    CHECK(report[2].chain == ChainStatus::Complete);
    CHECK(report[3].chain == ChainStatus::MissingIntermediate);
    CHECK(report[0].leaf_first);
    CHECK(report[0].days_left == 29);
    CHECK(report[1].days_left == 59);
    CHECK(report[0].not_after_unix == store->certificates()[0]->not_after);
    CHECK(report[0].not_after.size() == 20);
    CHECK(report[0].not_after.back() == 'Z');
    CHECK(report[0].not_after[10] == 'T');
    CHECK(report[0].tlsa == tlsa_of(*store, 0));
    CHECK(report[2].tlsa == report[3].tlsa);  // one key, two files
    CHECK(report[0].tlsa != report[1].tlsa);

    // Two years on, the days left are negative.
    constexpr std::time_t kTwoYears = std::time_t{2} * 365 * 86400;
    const auto later = postern::tls::certificate_report(*store, now + kTwoYears);
    CHECK(later[0].days_left < -600);

    const auto json = nlohmann::json::parse(postern::tls::certificates_json(*store, now));
    const auto& list = json.at("certificates");
    REQUIRE(list.size() == 4);
    CHECK(list[0].at("names") == nlohmann::json{"mail.default.test", "*.default.test"});
    CHECK(list[0].at("file") == report[0].file);
    CHECK(list[0].at("key_type") == "ECDSA P-256");
    CHECK(list[1].at("key_type") == "RSA 2048");
    CHECK(list[0].at("not_after") == report[0].not_after);
    CHECK(list[0].at("not_after_unix") == report[0].not_after_unix);
    CHECK(list[0].at("days_left") == 29);
    CHECK(list[0].at("expired") == false);
    CHECK(list[0].at("chain") == "self-signed");
    CHECK(list[2].at("chain") == "complete");
    CHECK(list[3].at("chain") == "missing intermediate");
    CHECK(list[0].at("leaf_first") == true);
    CHECK(list[0].at("tlsa_3_1_1") == report[0].tlsa);
}

TEST_CASE("certificate_report: a reload that changes the key of the same names is a key change") {
    TempDir dir;
    auto key = make_key(false);
    auto fresh = make_key(false);
    auto rsa = make_key(true);
    auto other = make_key(false);

    Config before = base_config(dir);
    before.certificates.push_back(write_cert(
        dir.path(), "mail", {"mail.default.test", "smtp.default.test"}, key.get(), 30, 1));
    before.certificates.push_back(
        write_cert(dir.path(), "other", {"other.test"}, other.get(), 30, 2));
    const auto old_store = build(before);
    const std::string old_tlsa = tlsa_of(*old_store, 0);

    SUBCASE("renewed with a new key") {
        Config after = base_config(dir);
        after.certificates.push_back(write_cert(
            dir.path(), "mail2", {"mail.default.test", "smtp.default.test"}, fresh.get(), 90, 3));
        after.certificates.push_back(before.certificates[1]);
        const auto new_store = build(after);
        const auto changes = postern::tls::key_changes(*old_store, *new_store);
        REQUIRE(changes.size() == 1);
        CHECK(changes[0].names ==
              std::vector<std::string>{"mail.default.test", "smtp.default.test"});
        CHECK(changes[0].old_tlsa == old_tlsa);
        CHECK(changes[0].new_tlsa == tlsa_of(*new_store, 0));
        CHECK(changes[0].old_tlsa != changes[0].new_tlsa);
        CHECK(changes[0].file == (dir.path() / "mail2.crt").string());
        const std::string text = postern::tls::describe(changes[0]);
        CHECK(text.starts_with("mail.default.test, smtp.default.test: the public key changed"));
        CHECK(text.find("TLSA 3 1 1 old " + old_tlsa + " -> new " + changes[0].new_tlsa) !=
              std::string::npos);
        CHECK(text.find("publish the new TLSA record before the old one is withdrawn") !=
              std::string::npos);
        CHECK(text.find("certbot --reuse-key") != std::string::npos);
    }
    SUBCASE("renewed with the same key (--reuse-key), names in another order") {
        Config after = base_config(dir);
        after.certificates.push_back(write_cert(
            dir.path(), "mail2", {"smtp.default.test", "mail.default.test"}, key.get(), 90, 3));
        CHECK(postern::tls::key_changes(*old_store, *build(after)).empty());
    }
    SUBCASE("the renewal beside the old certificate: the new key once") {
        Config after = before;
        after.certificates.push_back(write_cert(
            dir.path(), "mail2", {"mail.default.test", "smtp.default.test"}, fresh.get(), 90, 3));
        after.certificates.push_back(write_cert(
            dir.path(), "mail3", {"mail.default.test", "smtp.default.test"}, fresh.get(), 91, 4));
        const auto changes = postern::tls::key_changes(*old_store, *build(after));
        REQUIRE(changes.size() == 1);
        CHECK(changes[0].old_tlsa == old_tlsa);
    }
    SUBCASE("another key type for the same names") {
        Config after = before;
        after.certificates.push_back(write_cert(
            dir.path(), "mail-rsa", {"mail.default.test", "smtp.default.test"}, rsa.get(), 90, 3));
        const auto changes = postern::tls::key_changes(*old_store, *build(after));
        REQUIRE(changes.size() == 1);
        CHECK(changes[0].old_tlsa == old_tlsa);
    }
    SUBCASE("different names are not a change, whatever the key") {
        Config after = base_config(dir);
        after.certificates.push_back(
            write_cert(dir.path(), "mail2", {"mail.default.test"}, fresh.get(), 90, 3));
        after.certificates.push_back(write_cert(dir.path(), "new", {"new.test"}, rsa.get(), 90, 4));
        CHECK(postern::tls::key_changes(*old_store, *build(after)).empty());
    }
    SUBCASE("the same store: nothing changed") {
        CHECK(postern::tls::key_changes(*old_store, *old_store).empty());
    }
}
