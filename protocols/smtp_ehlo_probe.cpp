#include "protocols/smtp_ehlo_probe.hpp"

#include "protocols/smtp_reply.hpp"

#include <utility>

namespace postern::protocols {

static_assert(EhloProbe::kMaxReplyLines == 64, "the failure texts name the limit");

EhloProbe::Next EhloProbe::on_line(std::string_view line) {
    if (step_ == Step::Over) {
        return fail("line after the end of the dialogue");
    }
    const auto reply = parse_smtp_line(line);
    if (!reply) {
        return fail("not an SMTP reply");
    }
    if (++lines_ > kMaxReplyLines) {
        return fail(step_ == Step::Greeting ? "greeting over 64 lines"
                    : step_ == Step::Ehlo   ? "EHLO reply over 64 lines"
                                            : "QUIT reply over 64 lines");
    }
    const bool ok = reply->code / 100 == 2;
    switch (step_) {
        case Step::Greeting:
            if (!ok) {
                return fail("greeting is not 2xx");
            }
            break;
        case Step::Ehlo:
            if (!ok) {
                return fail("EHLO refused");
            }
            if (lines_ > 1) {  // the first line names the server
                extensions_.emplace_back(reply->text);
            }
            break;
        case Step::Quit:
        case Step::Over:
            break;
    }
    if (!reply->last) {
        return Next::Read;
    }
    lines_ = 0;
    switch (step_) {
        case Step::Greeting:
            step_ = Step::Ehlo;
            return Next::SendEhlo;
        case Step::Ehlo:
            step_ = Step::Quit;
            return Next::SendQuit;
        case Step::Quit:
        case Step::Over:
            break;
    }
    step_ = Step::Over;
    return Next::Done;
}

std::vector<std::string> EhloProbe::take_extensions() noexcept {
    return std::exchange(extensions_, {});
}

EhloProbe::Next EhloProbe::fail(const char* why) noexcept {
    failure_ = why;
    step_ = Step::Over;
    extensions_.clear();
    return Next::Failed;
}

}  // namespace postern::protocols
