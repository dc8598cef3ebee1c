#include "proxy/drain.hpp"

#include "proxy/balancer.hpp"
#include "proxy/trampoline.hpp"
#include "proxy/worker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace postern::proxy {
namespace {

std::string seconds(Drain::Clock::duration d) {
    return fmt::format("{:.1f}s", std::chrono::duration<double>(d).count());
}

}  // namespace

Drain::Drain(event_base* main_base, const std::vector<std::unique_ptr<Worker>>& workers,
             const Balancer* balancer, std::chrono::milliseconds timeout)
    : main_base_(main_base), workers_(workers), balancer_(balancer), timeout_(timeout) {
    const event_callback_fn wake = &event_cb<Drain, &Drain::on_wake>;
    const event_callback_fn deadline = &event_cb<Drain, &Drain::on_deadline>;
    wake_.reset(event_new(main_base_, -1, 0, wake, this));
    deadline_.reset(evtimer_new(main_base_, deadline, this));
}

void Drain::start(const std::string& why) {
    if (started_) {
        return;
    }
    started_ = true;
    began_ = Clock::now();
    // Sessions per worker: the Balancer's atomics (sockets on their way count too); with one
    // worker this is its own thread.
    std::size_t total = 0;
    std::string per_worker;
    if (balancer_ == nullptr) {
        total = workers_.front()->session_count();
    } else {
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            total += balancer_->count(i);
        }
        per_worker = per_worker_text([this](std::size_t i) { return balancer_->count(i); });
    }
    if (timeout_.count() == 0 || !wake_ || !deadline_) {
        spdlog::info("{}: closing {} session(s){} at once (shutdown_timeout = 0)", why, total,
                     per_worker);
        finish(End::Immediate);
        return;
    }
    spdlog::info(
        "{}: no new connections; draining {} session(s){} for at most {} (a second signal "
        "closes them at once)",
        why, total, per_worker, seconds(timeout_));
    const timeval tv = to_timeval(timeout_);
    evtimer_add(deadline_.get(), &tv);
    for (const auto& worker : workers_) {
        worker->drain(*this);
    }
}

void Drain::hurry() {
    if (end_ == End::Running) {
        spdlog::info("second stop signal: closing every session now");
        finish(End::Hurried);
    }
}

void Drain::worker_drained() {
    event_active(wake_.get(), 0, 0);
}

void Drain::on_wake() {
    if (end_ != End::Running) {
        return;
    }
    if (std::all_of(workers_.begin(), workers_.end(),
                    [](const auto& worker) { return worker->drained(); })) {
        finish(End::Drained);
    }
}

void Drain::on_deadline() {
    if (end_ == End::Running) {
        finish(End::Deadline);
    }
}

void Drain::finish(End end) {
    end_ = end;
    if (deadline_) {
        evtimer_del(deadline_.get());
    }
    event_base_loopbreak(main_base_);  // run() breaks the other loops and stops what is left
}

void Drain::log_end() const {
    std::size_t open = 0;
    for (const auto& worker : workers_) {
        open += worker->session_count();
    }
    const std::string per_worker =
        per_worker_text([this](std::size_t i) { return workers_[i]->session_count(); });
    const std::string after = seconds(Clock::now() - began_);
    switch (end_) {
        case End::Drained:
            spdlog::info("drained in {}: every session ended", after);
            return;
        case End::Deadline:
            spdlog::info("shutdown_timeout passed ({}): closing {} session(s){}", after, open,
                         per_worker);
            return;
        case End::Hurried:
            spdlog::info("closing {} session(s){} after {} of draining", open, per_worker, after);
            return;
        case End::Immediate:
        case End::Running:
            if (open != 0) {
                spdlog::info("closing {} session(s){}", open, per_worker);
            }
            return;
    }
}

void Drain::fail_internal(const char* what) const {
    spdlog::error("drain: {}", what);
}

}  // namespace postern::proxy
