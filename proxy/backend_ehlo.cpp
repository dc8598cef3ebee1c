#include "proxy/backend_ehlo.hpp"

#include "protocols/smtp_ehlo_probe.hpp"
#include "proxy/log.hpp"
#include "proxy/trampoline.hpp"

#include <event2/buffer.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace postern::proxy {
namespace {

constexpr timeval kRefresh{300, 0};
constexpr std::size_t kMaxLine = 1024;

}  // namespace

BackendEhlo::BackendEhlo(std::string backend_name,
                         std::shared_ptr<const BackendConnector> connector, std::string hostname)
    : backend_name_(std::move(backend_name)),
      connector_(std::move(connector)),
      hostname_(std::move(hostname)) {}

void BackendEhlo::start(event_base* base, ChildReaper& children) {
    base_ = base;
    children_ = &children;
    timer_.reset(event_new(base, -1, 0, &event_cb<BackendEhlo, &BackendEhlo::on_timer>, this));
    on_timer();
}

Extensions BackendEhlo::extensions() const {
    const std::lock_guard lock(published_mutex_);
    return published_;
}

// Sessions see a new answer as soon as it is parsed, as when they shared this loop.
void BackendEhlo::on_data() {
    on_read();
    const std::lock_guard lock(published_mutex_);
    published_ = extensions_;
}

void BackendEhlo::on_timer() {
    evtimer_add(timer_.get(), &kRefresh);
    if (bev_ || attempt_) {
        return;  // the previous probe is still running
    }
    probe_ = protocols::EhloProbe{};
    quitting_ = false;
    BackendOutcome failed;
    const BackendRequest request{.base = base_,
                                 .callback = &event_cb<BackendEhlo, &BackendEhlo::on_attempt>,
                                 .arg = this,
                                 .client = {.peer = {},
                                            .local = {},
                                            .address = "postern",
                                            .sni = {},
                                            .hostname = hostname_,
                                            .tls_version = "",
                                            .cipher = ""},
                                 .children = children_};
    attempt_ = connector_->connect(request, failed);
    if (!attempt_) {
        finish(failed.failure.c_str());
    }
}

void BackendEhlo::on_attempt(short what) {
    BackendOutcome outcome;
    if (!attempt_ || !attempt_->on_event(what, outcome)) {
        return;
    }
    attempt_.reset();
    if (outcome.fd.get() < 0) {
        finish(outcome.failure.c_str());
        return;
    }
    bufferevent* b = bufferevent_socket_new(base_, outcome.fd.get(), BEV_OPT_CLOSE_ON_FREE);
    if (b == nullptr) {
        finish("cannot create a buffer event");
        return;
    }
    static_cast<void>(outcome.fd.release());  // the bufferevent closes it (BEV_OPT_CLOSE_ON_FREE)
    bev_.reset(b);
    child_ = std::move(outcome.child);
    bufferevent_setcb(b, &bev_data_cb<BackendEhlo, &BackendEhlo::on_data>, nullptr,
                      &bev_event_cb<BackendEhlo, &BackendEhlo::on_event>, this);
    const timeval t = to_timeval(connector_->timeout());
    bufferevent_set_timeouts(b, &t, &t);
    if (!outcome.preamble.empty()) {
        bufferevent_write(b, outcome.preamble.data(), outcome.preamble.size());
    }
    bufferevent_enable(b, EV_READ | EV_WRITE);
}

void BackendEhlo::on_read() {
    evbuffer* in = bufferevent_get_input(bev_.get());
    while (bev_) {
        std::size_t length = 0;
        std::unique_ptr<char, decltype(&std::free)> line{
            evbuffer_readln(in, &length, EVBUFFER_EOL_CRLF), &std::free};
        if (!line) {
            if (evbuffer_get_length(in) > kMaxLine) {
                finish("line too long");
            }
            return;
        }
        if (length > kMaxLine) {
            finish("line too long");
            return;
        }
        switch (probe_.on_line({line.get(), length})) {
            case protocols::EhloProbe::Next::Read:
                break;
            case protocols::EhloProbe::Next::SendEhlo: {
                const std::string ehlo = "EHLO " + hostname_ + "\r\n";
                bufferevent_write(bev_.get(), ehlo.data(), ehlo.size());
                break;
            }
            case protocols::EhloProbe::Next::SendQuit:
                extensions_ =
                    std::make_shared<const std::vector<std::string>>(probe_.take_extensions());
                bufferevent_write(bev_.get(), "QUIT\r\n", 6);
                quitting_ = true;
                break;
            case protocols::EhloProbe::Next::Done:
                finish(nullptr);
                return;
            case protocols::EhloProbe::Next::Failed:
                finish(probe_.failure());
                return;
        }
    }
}

void BackendEhlo::on_event(short what) {
    if ((what & BEV_EVENT_CONNECTED) != 0) {
        return;
    }
    finish(quitting_                         ? nullptr
           : (what & BEV_EVENT_TIMEOUT) != 0 ? "timed out"
                                             : "connection failed");
}

void BackendEhlo::fail_internal(const char* what) {
    finish(what);
}

void BackendEhlo::finish(const char* failure) {
    quitting_ = false;
    bev_.reset();
    attempt_.reset();
    child_.reset();  // after its socket is closed: the program sees EOF, then SIGTERM
    if (failure == nullptr) {
        if (warned_) {
            spdlog::info("smtp backend {} answers EHLO again", backend_name_);
        }
        warned_ = false;
        spdlog::debug("smtp backend {} offers {} EHLO extension(s)", backend_name_,
                      extensions_->size());
        return;
    }
    if (!warned_) {
        spdlog::warn(
            "cannot learn the EHLO extensions of smtp backend {}: {}; postern's "
            "pre-TLS EHLO offers {} of them",
            backend_name_, failure, extensions_->size());
        warned_ = true;
    }
}

}  // namespace postern::proxy
