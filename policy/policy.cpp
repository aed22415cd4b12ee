#include "policy/policy.hpp"


namespace pullgate::policy {

std::string_view to_string(Decision decision) {
  switch (decision) {
    case Decision::allow: return "allow";
    case Decision::warn: return "warn";
    case Decision::deny: return "deny";
  }
  return "deny";
}

std::string_view to_string(Mode mode) {
  switch (mode) {
    case Mode::enforce: return "enforce";
    case Mode::warn: return "warn";
    case Mode::audit: return "audit";
  }
  return "enforce";
}

std::string_view to_string(Unknown unknown) {
  switch (unknown) {
    case Unknown::evaluate: return "evaluate";
    case Unknown::allow: return "allow";
    case Unknown::warn: return "warn";
    case Unknown::deny: return "deny";
  }
  return "evaluate";
}

std::string_view to_string(Source source) {
  switch (source) {
    case Source::rule: return "rule";
    case Source::default_: return "default";
    case Source::manual: return "manual";
    case Source::exception: return "exception";
    case Source::unknown: return "unknown";
    case Source::report: return "report";
    case Source::unscanned: return "unscanned";
    case Source::signature: return "signature";
    case Source::sbom: return "sbom";
    case Source::provenance: return "provenance";
    case Source::upstream: return "upstream";
  }
  return "unknown";
}

std::optional<Source> parse_source(std::string_view text) {
  for (auto source : {Source::rule, Source::default_, Source::manual, Source::exception, Source::unknown,
                      Source::report, Source::unscanned, Source::signature, Source::sbom, Source::provenance,
                      Source::upstream})
    if (to_string(source) == text) return source;
  return std::nullopt;
}

std::optional<Decision> parse_decision(std::string_view text) {
  if (text == "allow") return Decision::allow;
  if (text == "warn") return Decision::warn;
  if (text == "deny") return Decision::deny;
  return std::nullopt;
}

TimePoint time_from_ms(std::int64_t ms_since_epoch) {
  using std::chrono::milliseconds;
  constexpr auto max_ms = std::chrono::duration_cast<milliseconds>(TimePoint::max().time_since_epoch()).count();
  constexpr auto min_ms = std::chrono::duration_cast<milliseconds>(TimePoint::min().time_since_epoch()).count();
  if (ms_since_epoch >= max_ms) return TimePoint::max();
  if (ms_since_epoch <= min_ms) return TimePoint::min();
  return TimePoint(milliseconds(ms_since_epoch));
}

}  // namespace pullgate::policy
