#pragma once
// The layer between toml++ nodes and conf/load.cpp: reads one TOML table into typed values and
// turns every problem into a ConfigError instead of stopping. Each error carries the dotted key
// path with 1-based indexes ("listener[2].idle_timeout") and the toml++ position of the
// offending node, or of the table itself when a required key is missing. Private to conf/;
// nothing here throws, toml++ documents are only read.

#include "conf/config.hpp"
#include "conf/errors.hpp"
#include "conf/parse_value.hpp"

#include <toml++/toml.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace postern::conf::detail {

// Collects the errors for one config file.
class ErrorSink {
public:
    explicit ErrorSink(std::string file) : file_(std::move(file)) {}

    void add(Source at, std::string key, std::string message);
    [[nodiscard]] const std::string& file() const noexcept { return file_; }
    [[nodiscard]] std::size_t count() const noexcept { return errors_.size(); }
    // Sorted by position (stable, so same-line errors keep the order they were found in):
    // toml++ tables iterate by key name, not in document order.
    [[nodiscard]] std::vector<ConfigError> take();

private:
    std::string file_;
    std::vector<ConfigError> errors_;
};

[[nodiscard]] Source source_of(const toml::source_region& region) noexcept;
// "a string", "an integer", "a floating-point number", ... for "expected X, got Y".
[[nodiscard]] const char* describe(toml::node_type type) noexcept;
// "imap, pop3, smtp": the lists in "(allowed: ...)", "(accepted: ...)" and "(have: ...)".
[[nodiscard]] std::string join(std::span<const std::string_view> names);

template <class T>
struct Choice {
    std::string_view name;
    T value;
};

enum class Need : std::uint8_t { Optional, Required };

class TableReader {
public:
    // `path` is the table's own key path: "" for the document root, "tls", "listener[2]".
    TableReader(const toml::table& table, std::string path, ErrorSink& errors)
        : table_(table), path_(std::move(path)), errors_(errors) {}

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] Source at() const noexcept { return source_of(table_.source()); }
    [[nodiscard]] bool has(std::string_view key) const noexcept { return table_.contains(key); }
    [[nodiscard]] std::string key_path(std::string_view key) const;
    void error(std::string_view key, Source at, std::string message);

    // Reports every key of the table that is not in `allowed`, at the key's own position.
    void reject_unknown_keys(std::initializer_list<std::string_view> allowed);

    // Each getter returns nullopt when the key is absent (an error only if Required) or its
    // value was reported as wrong; a present value is never silently ignored.
    [[nodiscard]] std::optional<std::string> string(std::string_view key, Need need);
    [[nodiscard]] std::optional<bool> boolean(std::string_view key);
    // An optional TOML integer from `min` to `max`; anything else is reported with the range.
    [[nodiscard]] std::optional<std::int64_t> integer(std::string_view key, std::int64_t min,
                                                      std::int64_t max);
    // `zero`: whether 0 ("0s", 0) is a value (shutdown_timeout: no drain) or refused.
    [[nodiscard]] std::optional<std::chrono::milliseconds> duration(std::string_view key,
                                                                    Zero zero = Zero::Refused);
    // A string: "off" or "count/window" (conf/parse_value.hpp's parse_rate).
    [[nodiscard]] std::optional<Rate> rate(std::string_view key);
    [[nodiscard]] std::optional<Endpoint> endpoint(std::string_view key, Need need);
    // One of `choices` by name; an unknown name is reported as "unknown <what> ..." listing
    // every accepted name (`what` defaults to the key).
    template <class T>
    [[nodiscard]] std::optional<T> choice(std::string_view key, std::span<const Choice<T>> choices,
                                          Need need, std::string_view what = {});

    // One value of a list or table read below, with its own key ("address[2]",
    // "routes.\"mail.example\"") for errors, and its position.
    struct Item {
        std::string name;  // strings(): empty; string_table(): the key as written
        std::string text;
        std::string key;
        Source at;
    };
    // A string, or a non-empty array of strings (`address = "a"` or `address = ["a", "b"]`).
    [[nodiscard]] std::optional<std::vector<Item>> strings(std::string_view key, Need need);
    // A table whose values are all strings (`routes = { "a.example" = "x" }`), in key order.
    [[nodiscard]] std::optional<std::vector<Item>> string_table(std::string_view key);

    // A sub-table such as [tls]; nullptr when absent or not a table (reported).
    [[nodiscard]] const toml::table* table(std::string_view key);
    // Calls fn(TableReader&) for each table of an array of tables such as [[listener]], each
    // named "listener[i]" (1-based). A value that is not an array, and elements that are not
    // tables, are reported and skipped. Returns how many elements there were.
    template <class Fn>
    std::size_t for_each_table(std::string_view key, Fn&& fn);

    // Position of the value under `key`, or of the table when the key is absent.
    [[nodiscard]] Source at(std::string_view key) const noexcept;

private:
    [[nodiscard]] const toml::array* array(std::string_view key);
    void wrong_type(std::string_view key, const toml::node& node, std::string_view expected);
    const toml::node* find(std::string_view key, Need need);

    const toml::table& table_;
    std::string path_;
    ErrorSink& errors_;
};

template <class T>
std::optional<T> TableReader::choice(std::string_view key, std::span<const Choice<T>> choices,
                                     Need need, std::string_view what) {
    const std::optional<std::string> text = string(key, need);
    if (!text) {
        return std::nullopt;
    }
    std::vector<std::string_view> names;
    for (const Choice<T>& c : choices) {
        if (c.name == *text) {
            return c.value;
        }
        names.push_back(c.name);
    }
    error(key, at(key),
          "unknown " + std::string{what.empty() ? key : what} + " \"" + *text +
              "\" (accepted: " + join(names) + ")");
    return std::nullopt;
}

template <class Fn>
std::size_t TableReader::for_each_table(std::string_view key, Fn&& fn) {
    const toml::array* elements = array(key);
    if (elements == nullptr) {
        return 0;
    }
    std::size_t index = 0;
    for (const toml::node& element : *elements) {
        ++index;
        const std::string element_path = key_path(key) + "[" + std::to_string(index) + "]";
        if (const toml::table* t = element.as_table(); t != nullptr) {
            TableReader reader{*t, element_path, errors_};
            fn(reader);
        } else {
            errors_.add(source_of(element.source()), element_path,
                        std::string{"expected a table ([["} + std::string{key} + "]]), got " +
                            describe(element.type()));
        }
    }
    return index;
}

}  // namespace postern::conf::detail
