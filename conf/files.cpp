#include "conf/files.hpp"

#include <cerrno>
#include <system_error>

namespace postern::conf {

std::string errno_text(int code) {
    return std::error_code{code, std::generic_category()}.message();
}

}  // namespace postern::conf
