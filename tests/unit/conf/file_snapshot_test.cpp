// conf::FileSnapshot: it reads exactly what the config names, a sealed one answers without the
// disk, and it survives the wire (encode/decode) unchanged.

#include "conf/file_snapshot.hpp"

#include "conf/certificates_dir.hpp"
#include "conf/wire.hpp"
#include "conf_test_support.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

namespace postern::conf::test {
namespace {

namespace fs = std::filesystem;

void certbot_pair(const ConfDir& dir, const std::string& name) {
    dir.write(fs::path{"le/archive"} / name / "fullchain1.pem", "chain of " + name + "\n");
    dir.write(fs::path{"le/archive"} / name / "privkey1.pem", "key of " + name + "\n");
    const fs::path live = dir.path() / "le/live" / name;
    fs::create_directories(live);
    fs::create_symlink(fs::path{"../../archive"} / name / "fullchain1.pem", live / "fullchain.pem");
    fs::create_symlink(fs::path{"../../archive"} / name / "privkey1.pem", live / "privkey.pem");
}

// kValidHead with a certificates_dir and a PKCS#12 entry besides the PEM one.
std::string config_with_everything() {
    std::string text{kValidHead};
    text.insert(text.find('\n') + 1, "certificates_dir = \"le/live\"\n");
    text += "\n[[certificate]]\npkcs12 = \"bundle.p12\"\npassword_file = \"pass.txt\"\n";
    text += kValidListener;
    return text;
}

}  // namespace

TEST_CASE("conf: a file snapshot holds the config and every file it names, and nothing else") {
    const ConfDir dir;
    dir.write("bundle.p12", "bundle");
    dir.write("pass.txt", "secret\n");
    dir.write("unrelated.pem", "not named by the config");
    certbot_pair(dir, "a.test");
    certbot_pair(dir, "b.test");
    dir.write("postern.toml", config_with_everything());

    const auto files = take_file_snapshot(dir.config_file());
    CHECK(files->config_file() == dir.config_file());
    CHECK(files->file(dir.config_file()).bytes == config_with_everything());
    CHECK(files->file(dir.path() / "cert.pem").bytes == "dummy certificate\n");
    CHECK(files->file(dir.path() / "key.pem").bytes == "dummy key\n");
    CHECK(files->file(dir.path() / "bundle.p12").bytes == "bundle");
    CHECK(files->file(dir.path() / "pass.txt").bytes == "secret\n");
    const fs::path live = dir.path() / "le/live";
    CHECK(files->dir(live).subfolders == std::vector<std::string>{"a.test", "b.test"});
    const FileRead& chain = files->file(live / "b.test/fullchain.pem");
    CHECK(chain.bytes == "chain of b.test\n");
    CHECK(chain.is_symlink);
    CHECK(chain.link_target == "../../archive/b.test/fullchain1.pem");
    // config, cert, key, bundle, password, two pairs
    CHECK(files->file_count() == 9);

    // Sealed: a path the config does not name is not read, whatever is asked.
    const FileRead& other = files->file(dir.path() / "unrelated.pem");
    CHECK_FALSE(other.bytes.has_value());
    CHECK(other.error == "not among the files the config names");
    CHECK(files->file("/etc/shadow").error == "not among the files the config names");
    CHECK(files->dir("/root").error == "not among the folders the config names");
    CHECK(files->file_count() == 9);
}

TEST_CASE("conf: a config and its certificates load from a snapshot after the files are gone") {
    const ConfDir dir;
    certbot_pair(dir, "a.test");
    dir.write("bundle.p12", "bundle");
    dir.write("pass.txt", "secret\n");
    dir.write("postern.toml", config_with_everything());
    const auto files = take_file_snapshot(dir.config_file());
    fs::remove_all(dir.path() / "le");
    fs::remove(dir.path() / "cert.pem");
    fs::remove(dir.config_file());

    const LoadResult loaded = load_config(*files);
    INFO(format_errors(loaded.errors));
    REQUIRE(loaded.config.has_value());
    const FolderScan scan = scan_certificates_dir(*loaded.config, *files);
    CHECK(scan.errors.empty());
    REQUIRE(scan.certificates.size() == 1);
    CHECK(scan.certificates[0].cert == dir.path() / "le/live/a.test/fullchain.pem");
}

TEST_CASE("conf: a file snapshot records why a file could not be read") {
    const ConfDir dir;
    dir.write("postern.toml", std::string{kValidHead} + std::string{kValidListener});
    fs::remove(dir.path() / "key.pem");
    fs::create_directory(dir.path() / "key.pem");
    SUBCASE("a folder where a file should be") {
        const auto files = take_file_snapshot(dir.config_file());
        CHECK(files->file(dir.path() / "key.pem").error == "Is a directory");
        const ConfigError error = single_error(load_config(*files));
        CHECK(error.key == "certificate[1].key");
        CHECK(error.message ==
              "cannot read \"" + (dir.path() / "key.pem").string() + "\": Is a directory");
    }
    SUBCASE("a file over the size bound") {
        fs::remove(dir.path() / "key.pem");
        dir.write("key.pem", std::string(kMaxSnapshotFileBytes + 1, 'k'));
        const auto files = take_file_snapshot(dir.config_file());
        CHECK(files->file(dir.path() / "key.pem").error ==
              "larger than " + std::to_string(kMaxSnapshotFileBytes) + " bytes");
    }
    SUBCASE("no config file") {
        const auto files = take_file_snapshot(dir.path() / "missing.toml");
        const ConfigError error = single_error(load_config(*files));
        CHECK(error.message == "cannot read config file: No such file or directory");
        CHECK(files->file_count() == 1);
    }
}

TEST_CASE("conf: a file snapshot crosses the wire unchanged; broken bytes are refused") {
    const ConfDir dir;
    certbot_pair(dir, "a.test");
    dir.write("bundle.p12", std::string("\0\x01\xff", 3));
    dir.write("pass.txt", "secret\n");
    dir.write("postern.toml", config_with_everything());
    fs::remove(dir.path() / "cert.pem");  // an error travels as well as bytes
    const auto files = take_file_snapshot(dir.config_file());
    const std::string wire = files->encode();

    const auto back = FileSnapshot::decode(wire);
    REQUIRE(back != nullptr);
    CHECK(back->config_file() == files->config_file());
    CHECK(back->file_count() == files->file_count());
    for (const char* name : {"postern.toml", "cert.pem", "key.pem", "bundle.p12", "pass.txt",
                             "le/live/a.test/privkey.pem"}) {
        CAPTURE(name);
        CHECK(back->file(dir.path() / name) == files->file(dir.path() / name));
    }
    CHECK(back->file(dir.path() / "bundle.p12").bytes == std::string("\0\x01\xff", 3));
    CHECK(back->dir(dir.path() / "le/live") == files->dir(dir.path() / "le/live"));
    CHECK(back->encode() == wire);
    // Decoded means sealed: nothing else is read.
    CHECK(back->file(dir.path() / "le/archive/a.test/privkey1.pem").error ==
          "not among the files the config names");

    CHECK(FileSnapshot::decode("") == nullptr);
    CHECK(FileSnapshot::decode("garbage") == nullptr);
    CHECK(FileSnapshot::decode(wire.substr(0, wire.size() - 1)) == nullptr);
    CHECK(FileSnapshot::decode(wire + "x") == nullptr);
    for (std::size_t cut = 0; cut < wire.size(); cut += 7) {
        CHECK(FileSnapshot::decode(wire.substr(0, cut)) == nullptr);
    }
}

TEST_CASE("conf: a file snapshot past its file bound still crosses the wire") {
    const ConfDir dir;
    auto snapshot = FileSnapshot::reading(dir.path() / "postern.toml");
    // Paths that do not exist are recorded too (their reason): the cheapest way to the bound.
    for (std::size_t i = 0; i <= kMaxSnapshotFiles; ++i) {
        (void)snapshot->file(dir.path() / ("missing-" + std::to_string(i)));
    }
    const FileRead& over = snapshot->file(dir.path() / "one-more");
    CHECK_FALSE(over.bytes);
    CHECK(over.error == "the config names more than 100000 files");
    CHECK(snapshot->file_count() == kMaxSnapshotFiles);
    snapshot->seal();
    CHECK(FileSnapshot::decode(snapshot->encode()) != nullptr);
}

TEST_CASE("conf: a snapshot announcing more entries than its bytes hold is refused") {
    // A folder with 100,000 subfolders announced and none sent; then as many files.
    Writer dirs;
    dirs.str("postern-file-snapshot-2");
    dirs.str("/etc/postern/postern.toml");
    dirs.u32(0);  // files
    dirs.u32(1);  // dirs
    dirs.str("/etc/letsencrypt/live");
    dirs.u32(0);
    dirs.str("");
    dirs.u32(kMaxSnapshotFiles);
    CHECK(FileSnapshot::decode(dirs.take()) == nullptr);
    Writer files;
    files.str("postern-file-snapshot-2");
    files.str("/etc/postern/postern.toml");
    files.u32(kMaxSnapshotFiles);
    CHECK(FileSnapshot::decode(files.take()) == nullptr);
}

}  // namespace postern::conf::test
