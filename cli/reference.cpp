// The hidden commands help-markdown (the generated part of docs/cli.md) and help-json (every
// command's options with their defaults, which tests compare with the Python functions'), both read
// from the command definitions themselves: names, help texts and defaults are written once, in cli/*.cpp.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common.hpp"

namespace voxalign::cli {
namespace {

std::vector<const CLI::App*> visible_commands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); });
}

std::vector<const CLI::Option*> options_of(const CLI::App& cmd) {
  std::vector<const CLI::Option*> out;
  for (const CLI::Option* o : cmd.get_options())
    if (o != cmd.get_help_ptr() && o != cmd.get_help_all_ptr()) out.push_back(o);
  return out;
}

std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool is_flag(const CLI::Option& o) { return o.get_items_expected_max() == 0; }

/// The option's name in help-json: its first long name without dashes, else its short or positional name.
std::string key_of(const CLI::Option& o) {
  if (!o.get_lnames().empty()) return o.get_lnames().front();
  if (!o.get_snames().empty()) return o.get_snames().front();
  return o.get_name(true);
}

/// "`-o, --output`" (markdown) for an option, "`input`" for a positional.
std::string names_of(const CLI::Option& o) {
  std::string s;
  for (const auto& n : o.get_snames()) s += (s.empty() ? "" : ", ") + ("-" + n);
  for (const auto& n : o.get_lnames()) s += (s.empty() ? "" : ", ") + ("--" + n);
  return "`" + (s.empty() ? upper(o.get_name(true)) : s) + "`";
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

/// A default as JSON: a number when the whole text is a finite number, else a string; null when none.
std::string json_value(const std::string& text) {
  if (text.empty()) return "null";
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (*end == '\0' && std::isfinite(v) && text.find_first_of("xX") == std::string::npos) return text;
  return json_string(text);
}

/// Help text as Markdown: '*' and '|' escaped (no emphasis between two "--save-*"; no table column);
/// in a table cell, new lines become spaces.
std::string markdown_text(const std::string& s, bool cell) {
  std::string out;
  for (char c : s) {
    if (c == '*' || (c == '|' && cell)) out += '\\';
    out += cell && c == '\n' ? ' ' : c;
  }
  return out;
}

void print_markdown(const CLI::App& app) {
  for (const CLI::App* cmd : visible_commands(app)) {
    const std::string name = "voxalign " + cmd->get_name();
    std::string usage = name; // positionals, then the required options, then the rest
    for (const CLI::Option* o : options_of(*cmd))
      if (o->get_positional()) usage += " " + upper(o->get_name(true)) + (o->get_items_expected_max() > 1 ? "..." : "");
    for (const CLI::Option* o : options_of(*cmd))
      if (!o->get_positional() && o->get_required())
        usage += " " + (o->get_snames().empty() ? "--" + o->get_lnames().front() : "-" + o->get_snames().front()) + " " +
                 upper(key_of(*o));
    usage += " [options]";
    std::printf("## %s\n%s.\n\n```\n%s\n```\n\n%s\n\n", name.c_str(), cmd->get_description().c_str(), usage.c_str(),
                markdown_text(cmd->get_footer(), false).c_str());
    std::printf("| option | meaning | default |\n|---|---|---|\n");
    for (const CLI::Option* o : options_of(*cmd)) {
      std::string value;
      if (!is_flag(*o) && !o->get_positional()) {
        const std::string t = o->get_type_name();
        value = " " + t.substr(0, t.find(':'));
      }
      const std::string def = o->get_required() ? "required" : o->get_default_str().empty() ? "" : "`" + o->get_default_str() + "`";
      std::printf("| %s%s | %s | %s |\n", names_of(*o).c_str(), markdown_text(value, true).c_str(),
                  markdown_text(o->get_description(), true).c_str(), markdown_text(def, true).c_str());
    }
    std::printf("\n");
  }
}

void print_json(const CLI::App& app) {
  std::printf("{\n");
  const auto cmds = visible_commands(app);
  for (size_t c = 0; c < cmds.size(); ++c) {
    std::printf("  %s: {\n", json_string(cmds[c]->get_name()).c_str());
    const auto opts = options_of(*cmds[c]);
    for (size_t i = 0; i < opts.size(); ++i)
      std::printf("    %s: %s%s\n", json_string(key_of(*opts[i])).c_str(),
                  is_flag(*opts[i]) ? "false" : json_value(opts[i]->get_default_str()).c_str(), i + 1 < opts.size() ? "," : "");
    std::printf("  }%s\n", c + 1 < cmds.size() ? "," : "");
  }
  std::printf("}\n");
}

} // namespace

void register_reference(CLI::App& app) {
  app.add_subcommand("help-markdown", "Print the command reference (Markdown, the generated part of docs/cli.md)")
      ->group("")
      ->callback([&app] { print_markdown(app); });
  app.add_subcommand("help-json", "Print every command's options with their defaults (JSON)")
      ->group("")
      ->callback([&app] { print_json(app); });
}

} // namespace voxalign::cli
