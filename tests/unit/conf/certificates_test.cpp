// The certificate sources in the config: [[certificate]] as PEM pair or PKCS#12 bundle,
// tls.certificates_dir and its scan, tls.expiry_warning_days.
#include "conf/certificates_dir.hpp"
#include "conf/load.hpp"
#include "tests/unit/conf/conf_test_support.hpp"

#include <doctest/doctest.h>

#include <array>
#include <filesystem>
#include <string>
#include <string_view>
#include <unistd.h>

namespace postern::conf {

namespace fs = std::filesystem;
using test::ConfDir;
using test::contains;
using test::kValidListener;
using test::line_of;
using test::single_error;

namespace {

// A config head with `tls_extra` in [tls] and `certificates` as the certificate tables.
std::string config_text(std::string_view tls_extra, std::string_view certificates) {
    return "[tls]\ndefault_certificate = \"mail.example.net\"\n" + std::string{tls_extra} + "\n" +
           std::string{certificates} +
           "\n[[backend]]\nname = \"imap\"\naddress = \"127.0.0.1:143\"\n" +
           std::string{kValidListener};
}

Config require_config(const LoadResult& result) {
    INFO(format_errors(result.errors));
    REQUIRE(result.errors.empty());
    REQUIRE(result.config.has_value());
    return *result.config;
}

// certbot's live/<name>/{fullchain,privkey}.pem, symlinks into archive/<name>/ (dummy PEM).
void certbot_folder(const ConfDir& dir, const std::string& name) {
    dir.write(fs::path{"le/archive"} / name / "fullchain1.pem", "chain\n");
    dir.write(fs::path{"le/archive"} / name / "privkey1.pem", "key\n");
    const fs::path live = dir.path() / "le/live" / name;
    fs::create_directories(live);
    fs::create_symlink(fs::path{"../../archive"} / name / "fullchain1.pem", live / "fullchain.pem");
    fs::create_symlink(fs::path{"../../archive"} / name / "privkey1.pem", live / "privkey.pem");
}

}  // namespace

TEST_CASE("conf: certificates_dir resolves against the config folder; no [[certificate]] needed") {
    const ConfDir dir;
    fs::create_directories(dir.path() / "le/live");
    const std::string text = config_text("certificates_dir = \"le/live\"", "");
    const Config config = require_config(dir.load(text));
    CHECK(config.tls.certificates_dir == dir.path() / "le/live");
    CHECK(config.tls.certificates_dir_at.line == line_of(text, "certificates_dir"));
    CHECK(config.tls.certificates_dir_at.column == 20);
    CHECK(config.certificates.empty());
    CHECK(config.tls.expiry_warning_days == 30);
}

TEST_CASE("conf: a certificates_dir that cannot be listed is an error at its line") {
    const ConfDir dir;
    const std::string text = config_text("certificates_dir = \"nowhere\"", "");
    SUBCASE("missing") {
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == "tls.certificates_dir");
        CHECK(error.line == line_of(text, "certificates_dir"));
        CHECK(error.message == "cannot read directory \"" + (dir.path() / "nowhere").string() +
                                   "\": No such file or directory");
    }
    SUBCASE("a file") {
        dir.write("nowhere", "not a folder\n");
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == "tls.certificates_dir");
        CHECK(contains(error.message, "Not a directory"));
    }
    SUBCASE("not listable") {
        if (::geteuid() == 0) {
            MESSAGE("running as root, which lists any folder: skipped");
            return;
        }
        fs::create_directories(dir.path() / "nowhere");
        fs::permissions(dir.path() / "nowhere", fs::perms::none);
        const ConfigError error = single_error(dir.load(text));
        fs::permissions(dir.path() / "nowhere", fs::perms::owner_all);
        CHECK(contains(error.message, "Permission denied"));
    }
}

TEST_CASE("conf: expiry_warning_days takes a whole number of days from 0 to 3650") {
    const ConfDir dir;
    const auto with_days = [](std::string_view value) {
        return config_text("expiry_warning_days = " + std::string{value},
                           "[[certificate]]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    };
    CHECK(require_config(dir.load(with_days("14"))).tls.expiry_warning_days == 14);
    CHECK(require_config(dir.load(with_days("0"))).tls.expiry_warning_days == 0);
    CHECK(require_config(dir.load(with_days("3650"))).tls.expiry_warning_days == 3650);
    const ConfigError negative = single_error(dir.load(with_days("-1")));
    CHECK(negative.key == "tls.expiry_warning_days");
    CHECK(negative.line == 3);
    CHECK(negative.message == "-1 is out of range (0 to 3650)");
    CHECK(single_error(dir.load(with_days("3651"))).message == "3651 is out of range (0 to 3650)");
    CHECK(single_error(dir.load(with_days("\"30d\""))).message ==
          "expected a whole number from 0 to 3650, got a string");
}

TEST_CASE("conf: a [[certificate]] may be a PKCS#12 bundle with an optional password file") {
    const ConfDir dir;
    dir.write("mail.pfx", "bundle\n");
    dir.write("mail.pass", "secret\n");
    const std::string text =
        config_text("",
                    "[[certificate]]\npkcs12 = \"mail.pfx\"\npassword_file = \"mail.pass\"\n\n"
                    "[[certificate]]\npkcs12 = \"mail.pfx\"\n");
    const Config config = require_config(dir.load(text));
    REQUIRE(config.certificates.size() == 2);
    CHECK(config.certificates[0].pkcs12 == dir.path() / "mail.pfx");
    CHECK(config.certificates[0].password_file == dir.path() / "mail.pass");
    CHECK(config.certificates[0].cert.empty());
    CHECK(config.certificates[0].key.empty());
    CHECK(config.certificates[1].password_file.empty());
    CHECK(config.certificates[1].key_name == "certificate[2]");
    CHECK(config.certificates[1].origin == CertificateOrigin::Entry);
}

TEST_CASE("conf: a [[certificate]] is either cert and key or pkcs12, never both or neither") {
    const ConfDir dir;
    dir.write("mail.pfx", "bundle\n");
    dir.write("mail.pass", "secret\n");
    struct Row {
        std::string_view table;
        std::string_view key;
        std::string_view message;
    };
    const auto rows = std::to_array<Row>({
        {"cert = \"cert.pem\"\nkey = \"key.pem\"\npkcs12 = \"mail.pfx\"\n", "certificate[1].pkcs12",
         "give either cert and key (PEM files) or pkcs12 (a PKCS#12 bundle), not both"},
        {"key = \"key.pem\"\npkcs12 = \"mail.pfx\"\n", "certificate[1].pkcs12",
         "give either cert and key (PEM files) or pkcs12 (a PKCS#12 bundle), not both"},
        {"password_file = \"mail.pass\"\n", "certificate[1]",
         "no certificate given: set cert and key (PEM files), or pkcs12 (a PKCS#12 bundle)"},
        {"cert = \"cert.pem\"\nkey = \"key.pem\"\npassword_file = \"mail.pass\"\n",
         "certificate[1].password_file",
         "password_file is only used with pkcs12; a PEM key must not be encrypted"},
        {"pkcs12 = \"gone.pfx\"\n", "certificate[1].pkcs12", "gone.pfx\": No such file"},
        {"pkcs12 = \"mail.pfx\"\npassword_file = \"gone.pass\"\n", "certificate[1].password_file",
         "gone.pass\": No such file"},
    });
    for (const Row& row : rows) {
        CAPTURE(row.table);
        const std::string text = config_text("", "[[certificate]]\n" + std::string{row.table});
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == row.key);
        CHECK(contains(error.message, row.message));
        CHECK(error.line >= line_of(text, "[[certificate]]"));
    }
}

TEST_CASE("conf: the certificates_dir scan takes certbot folders, skips the rest, by name") {
    const ConfDir dir;
    certbot_folder(dir, "mail.zeta.test");
    certbot_folder(dir, "mail.alpha.test");
    certbot_folder(dir, "b.test");
    dir.write("le/live/README", "This directory contains your keys and certificates.\n");
    fs::create_directories(dir.path() / "le/live/empty");
    dir.write("le/live/docs/README", "no certificate here\n");
    // A symlinked subfolder is followed like a real one.
    fs::create_directory_symlink(dir.path() / "le/live/b.test", dir.path() / "le/live/c.test");

    Config config;
    config.file = dir.config_file();
    config.tls.certificates_dir = dir.path() / "le/live";
    config.tls.certificates_dir_at = {.line = 3, .column = 20};
    const FolderScan scan = scan_certificates_dir(config);
    INFO(format_errors(scan.errors));
    CHECK(scan.errors.empty());
    REQUIRE(scan.certificates.size() == 4);
    const auto expected =
        std::to_array<std::string_view>({"b.test", "c.test", "mail.alpha.test", "mail.zeta.test"});
    for (std::size_t i = 0; i < scan.certificates.size(); ++i) {
        const CertificateSpec& spec = scan.certificates[i];
        const fs::path folder = dir.path() / "le/live" / expected[i];
        CHECK(spec.cert == folder / "fullchain.pem");
        CHECK(spec.key == folder / "privkey.pem");
        CHECK(spec.pkcs12.empty());
        CHECK(spec.key_name == "tls.certificates_dir");
        CHECK(spec.origin == CertificateOrigin::Folder);
        CHECK(spec.at.line == 3);
        CHECK(spec.at.column == 20);
    }
}

TEST_CASE("conf: a certificates_dir folder with half a pair or a dangling link is an error") {
    const ConfDir dir;
    certbot_folder(dir, "good.test");
    Config config;
    config.file = dir.config_file();
    config.tls.certificates_dir = dir.path() / "le/live";
    config.tls.certificates_dir_at = {.line = 3, .column = 20};
    const fs::path live = dir.path() / "le/live";

    SUBCASE("no privkey.pem") {
        dir.write("le/live/half.test/fullchain.pem", "chain\n");
        const FolderScan scan = scan_certificates_dir(config);
        REQUIRE(scan.errors.size() == 1);
        CHECK(scan.errors[0].key == "tls.certificates_dir");
        CHECK(scan.errors[0].file == dir.config_file().string());
        CHECK(scan.errors[0].line == 3);
        CHECK(scan.errors[0].message ==
              "\"" + (live / "half.test").string() + "\" has fullchain.pem but no privkey.pem");
        CHECK(scan.certificates.size() == 1);  // the good one is still found
    }
    SUBCASE("a symlink into an archive that is gone") {
        certbot_folder(dir, "dangling.test");
        fs::remove(dir.path() / "le/archive/dangling.test/privkey1.pem");
        const FolderScan scan = scan_certificates_dir(config);
        REQUIRE(scan.errors.size() == 1);
        CHECK(scan.errors[0].message == "cannot read \"" +
                                            (live / "dangling.test/privkey.pem").string() +
                                            "\": No such file or directory (a symlink to "
                                            "\"../../archive/dangling.test/privkey1.pem\")");
    }
    SUBCASE("the folder itself is gone") {
        config.tls.certificates_dir = dir.path() / "le/dead";
        const FolderScan scan = scan_certificates_dir(config);
        REQUIRE(scan.errors.size() == 1);
        CHECK(contains(scan.errors[0].message, "cannot read directory"));
        CHECK(scan.certificates.empty());
    }
    SUBCASE("not set: nothing to scan") {
        config.tls.certificates_dir.clear();
        const FolderScan scan = scan_certificates_dir(config);
        CHECK(scan.errors.empty());
        CHECK(scan.certificates.empty());
    }
}

}  // namespace postern::conf
