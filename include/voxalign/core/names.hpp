// NameTable<T>: the names of an enum's values, in one place. Every face (CLI options and help, error
// messages, the Python bindings, docs/cli.md) takes an option's names from its table, so a name is
// written once. Parsing ignores case ("MI", "Grid-Constant"); `name()` gives the canonical spelling.
#pragma once
#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "voxalign/core/error.hpp"

namespace voxalign {

template <class T> class NameTable {
public:
  struct Entry {
    T value;
    std::string_view name;
    bool alias = false; ///< accepted when parsing; not listed, never returned by name()
  };

  /// `what` names the kind of value in errors ("boundary mode": "unknown boundary mode 'x' (...)").
  NameTable(std::string_view what, std::initializer_list<Entry> entries) : what_(what), entries_(entries) {}

  /// The value named `text` in any case, or nothing.
  std::optional<T> find(std::string_view text) const {
    for (const Entry& e : entries_)
      if (same_ignoring_case(e.name, text)) return e.value;
    return std::nullopt;
  }
  /// The value named `text` in any case; InvalidArgument "unknown WHAT 'text' (choose from a, b, c)" otherwise.
  T parse(std::string_view text) const {
    if (const auto v = find(text)) return *v;
    throw InvalidArgument(unknown(text));
  }
  /// The message parse() throws for `text`.
  std::string unknown(std::string_view text) const {
    return "unknown " + std::string(what_) + " '" + std::string(text) + "' (choose from " + choices() + ")";
  }
  /// The canonical name of `v` (the first non-alias entry with that value).
  std::string name(T v) const {
    for (const Entry& e : entries_)
      if (!e.alias && e.value == v) return std::string(e.name);
    throw InvalidArgument("no name for this " + std::string(what_));
  }
  /// Canonical names in table order (help text, error messages, docs).
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const Entry& e : entries_)
      if (!e.alias) out.emplace_back(e.name);
    return out;
  }
  /// names() joined by `sep`.
  std::string choices(std::string_view sep = ", ") const {
    std::string out;
    for (const std::string& n : names()) out += (out.empty() ? "" : std::string(sep)) + n;
    return out;
  }
  std::string_view what() const { return what_; }

private:
  static bool same_ignoring_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
  }
  std::string_view what_;
  std::vector<Entry> entries_;
};

} // namespace voxalign
