#include "proxy/telemetry/upstream_health.hpp"

namespace pullgate::proxy {

void UpstreamHealth::note(std::string_view upstream, unsigned status, std::string_view error, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(upstream);
  if (it == entries_.end()) {
    it = entries_.emplace(std::string(upstream), Entry{}).first;
    it->second.upstream = std::string(upstream);
  }
  auto& e = it->second;
  ++e.requests;
  if (!is_trouble(status)) {
    e.last_ok_ms = now_ms;
    return;
  }
  ++e.troubles;
  if (status == 429) ++e.rate_limited;
  e.last_trouble_ms = now_ms;
  e.last_trouble_status = status;
  std::string text = status ? "answered " + std::to_string(status) : std::string("no answer");
  if (!error.empty()) text += ": " + std::string(error.substr(0, max_error_chars));
  e.last_trouble = std::move(text);
}

std::vector<UpstreamHealth::Entry> UpstreamHealth::entries() const {
  std::lock_guard lock(mutex_);
  std::vector<Entry> out;
  out.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) out.push_back(entry);
  return out;
}

}  // namespace pullgate::proxy
