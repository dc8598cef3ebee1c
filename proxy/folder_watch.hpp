#pragma once
// inotify on the folders whose changes can change what is served: the folder of each
// configured certificate file (a symlink swapped there is seen: certbot's live/, Kubernetes'
// "..data") and the folder its link finally points into (a file rewritten in place there is
// seen), the same for tls.ticket_keys_file, plus tls.certificates_dir and each of its
// subfolders. Used by the Reloader when
// postern reads its own files, and by the privileged helper when that one does
// (proxy/privileged_helper.hpp); whoever reads the files watches them.

#include "conf/config.hpp"
#include "proxy/event.hpp"

#include <filesystem>
#include <map>
#include <set>
#include <string>

namespace postern::proxy {

[[nodiscard]] std::set<std::filesystem::path> folders_to_watch(const conf::Config& config);

class FolderWatch {
public:
    // False (with the reason) when inotify is unavailable.
    [[nodiscard]] bool open(std::string& error);
    // The inotify descriptor (non-blocking, close-on-exec); -1 before open().
    [[nodiscard]] int fd() const noexcept { return inotify_.get(); }

    // Watches exactly folders_to_watch(config). Only the difference is applied: removing a
    // watch queues an IN_IGNORED event, and re-adding every watch after every reload would read
    // as yet another change. A folder that cannot be watched is logged and skipped.
    void watch(const conf::Config& config);

    // Reads every queued event; true when one of them can change what is served.
    [[nodiscard]] bool drain();

private:
    UniqueFd inotify_;
    std::map<std::filesystem::path, int> watches_;  // folder -> inotify watch descriptor
};

}  // namespace postern::proxy
