#include "conf/toml_reader.hpp"

#include "conf/parse_value.hpp"

#include <algorithm>

namespace postern::conf::detail {

void ErrorSink::add(Source at, std::string key, std::string message) {
    errors_.push_back(ConfigError{file_, at.line, at.column, std::move(key), std::move(message)});
}

std::vector<ConfigError> ErrorSink::take() {
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const ConfigError& a, const ConfigError& b) {
                         return a.line != b.line ? a.line < b.line : a.column < b.column;
                     });
    return std::move(errors_);
}

Source source_of(const toml::source_region& region) noexcept {
    return Source{region.begin.line, region.begin.column};
}

const char* describe(toml::node_type type) noexcept {
    switch (type) {
        case toml::node_type::none:
            return "nothing";
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a floating-point number";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
    }
    return "an unknown type";
}

std::string join(std::span<const std::string_view> names) {
    std::string out;
    for (const std::string_view name : names) {
        if (!out.empty()) {
            out += ", ";
        }
        out += name;
    }
    return out;
}

std::string TableReader::key_path(std::string_view key) const {
    if (path_.empty()) {
        return std::string{key};
    }
    return path_ + "." + std::string{key};
}

void TableReader::error(std::string_view key, Source at, std::string message) {
    errors_.add(at, key_path(key), std::move(message));
}

void TableReader::reject_unknown_keys(std::initializer_list<std::string_view> allowed) {
    for (const auto& [key, value] : table_) {
        if (std::find(allowed.begin(), allowed.end(), key.str()) == allowed.end()) {
            error(key.str(), source_of(key.source()),
                  "unknown key \"" + std::string{key.str()} +
                      "\" (allowed: " + join(std::span{allowed.begin(), allowed.size()}) + ")");
        }
    }
}

Source TableReader::at(std::string_view key) const noexcept {
    const toml::node* node = table_.get(key);
    return node != nullptr ? source_of(node->source()) : at();
}

void TableReader::wrong_type(std::string_view key, const toml::node& node,
                             std::string_view expected) {
    std::string message = "expected ";
    message += expected;
    message += ", got ";
    message += describe(node.type());
    error(key, source_of(node.source()), std::move(message));
}

const toml::node* TableReader::find(std::string_view key, Need need) {
    const toml::node* node = table_.get(key);
    if (node == nullptr && need == Need::Required) {
        error(key, at(), "missing required key \"" + std::string{key} + "\"");
    }
    return node;
}

std::optional<std::string> TableReader::string(std::string_view key, Need need) {
    const toml::node* node = find(key, need);
    if (node == nullptr) {
        return std::nullopt;
    }
    const auto* value = node->as_string();
    if (value == nullptr) {
        // min_version = 1.2 parses as a float; say how to fix it, not only what is wrong.
        const bool number = node->is_number();
        wrong_type(key, *node, number ? "a string (put the value in quotes)" : "a string");
        return std::nullopt;
    }
    if (value->get().empty()) {
        error(key, source_of(node->source()), "must not be empty");
        return std::nullopt;
    }
    return value->get();
}

std::optional<bool> TableReader::boolean(std::string_view key) {
    const toml::node* node = find(key, Need::Optional);
    if (node == nullptr) {
        return std::nullopt;
    }
    if (const auto* value = node->as_boolean(); value != nullptr) {
        return value->get();
    }
    wrong_type(key, *node, "a boolean (true or false)");
    return std::nullopt;
}

std::optional<std::int64_t> TableReader::integer(std::string_view key, std::int64_t min,
                                                 std::int64_t max) {
    const toml::node* node = find(key, Need::Optional);
    if (node == nullptr) {
        return std::nullopt;
    }
    const std::string range = std::to_string(min) + " to " + std::to_string(max);
    const auto* value = node->as_integer();
    if (value == nullptr) {
        wrong_type(key, *node, "a whole number from " + range);
        return std::nullopt;
    }
    if (value->get() < min || value->get() > max) {
        error(key, source_of(node->source()),
              std::to_string(value->get()) + " is out of range (" + range + ")");
        return std::nullopt;
    }
    return value->get();
}

std::optional<std::chrono::milliseconds> TableReader::duration(std::string_view key, Zero zero) {
    const toml::node* node = find(key, Need::Optional);
    if (node == nullptr) {
        return std::nullopt;
    }
    Parsed<std::chrono::milliseconds> parsed;
    if (const auto* text = node->as_string(); text != nullptr) {
        parsed = parse_duration(text->get(), zero);
    } else if (const auto* seconds = node->as_integer(); seconds != nullptr) {
        parsed = duration_from_seconds(seconds->get(), zero);
    } else {
        wrong_type(key, *node, "a duration such as \"30s\" or a whole number of seconds");
        return std::nullopt;
    }
    if (!parsed.value) {
        error(key, source_of(node->source()), std::move(parsed.error));
    }
    return parsed.value;
}

std::optional<Rate> TableReader::rate(std::string_view key) {
    const toml::node* node = find(key, Need::Optional);
    if (node == nullptr) {
        return std::nullopt;
    }
    const auto* text = node->as_string();
    if (text == nullptr) {
        wrong_type(key, *node, R"(a rate such as "30/10s" (in quotes), or "off")");
        return std::nullopt;
    }
    Parsed<Rate> parsed = parse_rate(text->get());
    if (!parsed.value) {
        error(key, source_of(node->source()), std::move(parsed.error));
    }
    return parsed.value;
}

std::optional<Endpoint> TableReader::endpoint(std::string_view key, Need need) {
    const std::optional<std::string> text = string(key, need);
    if (!text) {
        return std::nullopt;
    }
    Parsed<Endpoint> parsed = parse_endpoint(*text);
    if (!parsed.value) {
        error(key, at(key), std::move(parsed.error));
    }
    return std::move(parsed.value);
}

std::optional<std::vector<TableReader::Item>> TableReader::strings(std::string_view key,
                                                                   Need need) {
    const toml::node* node = find(key, need);
    if (node == nullptr) {
        return std::nullopt;
    }
    if (node->is_string()) {
        if (auto text = string(key, need)) {
            return std::vector<Item>{{{}, std::move(*text), std::string{key}, at(key)}};
        }
        return std::nullopt;
    }
    const toml::array* list = node->as_array();
    if (list == nullptr || list->empty()) {
        wrong_type(key, *node, "a string or a non-empty list of strings");
        return std::nullopt;
    }
    std::vector<Item> items;
    bool ok = true;
    std::size_t index = 0;
    for (const toml::node& element : *list) {
        Item item{{},
                  {},
                  std::string{key} + "[" + std::to_string(++index) + "]",
                  source_of(element.source())};
        const auto* text = element.as_string();
        if (text == nullptr || text->get().empty()) {
            error(item.key, item.at,
                  text == nullptr
                      ? std::string{"expected a string, got "} + describe(element.type())
                      : std::string{"must not be empty"});
            ok = false;
            continue;
        }
        item.text = text->get();
        items.push_back(std::move(item));
    }
    return ok ? std::optional{std::move(items)} : std::nullopt;
}

std::optional<std::vector<TableReader::Item>> TableReader::string_table(std::string_view key) {
    const toml::node* node = find(key, Need::Optional);
    if (node == nullptr) {
        return std::nullopt;
    }
    const toml::table* entries = node->as_table();
    if (entries == nullptr) {
        wrong_type(key, *node, R"(a table such as { "name" = "value" })");
        return std::nullopt;
    }
    std::vector<Item> items;
    bool ok = true;
    for (const auto& [name, value] : *entries) {
        Item item{std::string{name.str()},
                  {},
                  std::string{key} + ".\"" + std::string{name.str()} + "\"",
                  source_of(value.source())};
        const auto* text = value.as_string();
        if (text == nullptr) {
            error(item.key, item.at,
                  std::string{"expected a string, got "} + describe(value.type()));
            ok = false;
            continue;
        }
        item.text = text->get();
        items.push_back(std::move(item));
    }
    return ok ? std::optional{std::move(items)} : std::nullopt;
}

const toml::table* TableReader::table(std::string_view key) {
    const toml::node* node = find(key, Need::Optional);
    if (node == nullptr) {
        return nullptr;
    }
    if (const toml::table* t = node->as_table(); t != nullptr) {
        return t;
    }
    wrong_type(key, *node, "a table ([" + std::string{key} + "])");
    return nullptr;
}

const toml::array* TableReader::array(std::string_view key) {
    const toml::node* node = find(key, Need::Optional);
    if (node == nullptr) {
        return nullptr;
    }
    if (const toml::array* a = node->as_array(); a != nullptr) {
        return a;
    }
    wrong_type(key, *node, "an array of tables ([[" + std::string{key} + "]])");
    return nullptr;
}

}  // namespace postern::conf::detail
