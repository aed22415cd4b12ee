#include "proxy/admin/status_page.hpp"

#include <cstdio>

#include "policy/rfc3339.hpp"

namespace pullgate::proxy {

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string age_text(std::int64_t now_ms, std::int64_t then_ms) {
  std::int64_t s = now_ms > then_ms ? (now_ms - then_ms) / 1000 : 0;
  auto two = [](std::int64_t big, const char* a, std::int64_t small, const char* b) {
    return std::to_string(big) + a + (small ? " " + std::to_string(small) + b : std::string());
  };
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return two(s / 60, "m", s % 60, "s");
  if (s < 86400) return two(s / 3600, "h", s % 3600 / 60, "m");
  return two(s / 86400, "d", s % 86400 / 3600, "h");
}

namespace {

std::string bytes_text(std::uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 5) v /= 1024, ++unit;
  char buf[32];
  std::snprintf(buf, sizeof buf, unit ? "%.1f %s" : "%.0f %s", v, units[unit]);
  return buf;
}

std::string percent_text(std::uint64_t part, std::uint64_t whole) {
  if (whole == 0) return "–";
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

// "2026-12-06T23:14:36Z (3m 12s ago)"; "never" for 0.
std::string when_text(std::int64_t now_ms, std::int64_t at_ms) {
  if (at_ms <= 0) return "never";
  return html_escape(policy::format_ms(at_ms)) + " <span class=\"age\">(" + age_text(now_ms, at_ms) + " ago)</span>";
}

std::string image_text(const NotableDecision& d) {
  std::string name = d.upstream + "/" + d.repository;
  if (!d.tag.empty()) name += ":" + d.tag;
  return "<span class=\"image\">" + html_escape(name) + "</span><br><span class=\"digest\">" + html_escape(d.digest) +
         "</span>";
}

std::string reasons_text(const std::vector<std::string>& reasons) {
  if (reasons.empty()) return "–";
  std::string out = "<ul class=\"reasons\">";
  for (const auto& r : reasons) out += "<li>" + html_escape(r) + "</li>";
  return out + "</ul>";
}

const char* style = R"(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:20px;margin:0}
header span{color:#c6cbd6}
main{padding:16px 24px;max-width:1400px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 16px;margin:0 0 16px}
h2{font-size:16px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:4px 8px;border-top:1px solid #eceef2}
th{font-weight:600;color:#4a5263;border-top:none}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px 16px;min-width:150px}
.card b{display:block;font-size:22px}
.bad{color:#b3261e}.warn{color:#9a6700}.good{color:#1a7f37}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.badge.bad{background:#b3261e;color:#fff}.badge.warn{background:#9a6700;color:#fff}.badge.good{background:#1a7f37;color:#fff}
.digest,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px;color:#4a5263;word-break:break-all}
.image{font-weight:600;word-break:break-all}
.age{color:#6b7385}
ul.reasons{margin:0;padding-left:18px}
.empty{color:#6b7385;font-style:italic}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dt{color:#4a5263}dd{margin:0;word-break:break-all}
)";

void card(std::string& out, const std::string& label, const std::string& value, const char* tone) {
  out += "<div class=\"card\"><span>" + label + "</span><b class=\"" + tone + "\">" + value + "</b></div>";
}

void decisions_table(std::string& out, const StatusPage& page, const std::vector<NotableDecision>& list,
                     const char* empty) {
  if (list.empty()) {
    out += std::string("<p class=\"empty\">") + empty + "</p>";
    return;
  }
  out += "<table><tr><th>Time (UTC)</th><th>Image</th><th>Decision</th><th>Reasons</th><th>Client</th></tr>";
  for (const auto& d : list) {
    const char* tone = d.decision == "deny" ? "bad" : "warn";
    out += "<tr><td>" + when_text(page.now_ms, d.at_ms) + "</td><td>" + image_text(d) + "<br><span class=\"age\">" +
           html_escape(d.method + " " + d.kind) + "</span></td><td><span class=\"badge " + tone + "\">" +
           html_escape(d.decision) + "</span><br><span class=\"age\">" + html_escape(d.mode) +
           (d.served ? ", served" : ", refused") + (d.source.empty() ? "" : ", " + html_escape(d.source)) +
           "</span></td><td>" + reasons_text(d.reasons) + "</td><td class=\"mono\">" + html_escape(d.client) +
           "</td></tr>";
  }
  out += "</table>";
}

}  // namespace

std::string render_status_page(const StatusPage& page) {
  std::string out;
  out.reserve(16 * 1024);
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
         "<title>pullgate status: " + html_escape(page.replica) + "</title><style>" + style + "</style></head><body>";

  const auto& ready = page.readiness;
  const char* ready_tone = ready.status == "ok" ? "good" : "warn";
  out += "<header><h1>pullgate status</h1><span>replica <b>" + html_escape(page.replica) + "</b></span><span>version " +
         html_escape(page.version) + "</span><span class=\"badge " + ready_tone + "\">" +
         html_escape(ready.status.empty() ? "unknown" : ready.status) + "</span><span>" +
         html_escape(policy::format_ms(page.now_ms)) + "</span></header><main>";

  // At a glance.
  const auto& t = page.traffic;
  out += "<div class=\"cards\">";
  card(out, "Recent denials &amp; warnings", std::to_string(page.denials.size()), page.denials.empty() ? "good" : "bad");
  card(out, "Pending scans", std::to_string(page.pending_count), page.pending_count ? "warn" : "good");
  card(out, "Bypass alarms", std::to_string(page.bypass_total), page.bypass_total ? "bad" : "good");
  card(out, "Cache hit ratio", percent_text(t.cache_hits, t.cache_hits + t.cache_misses), "");
  card(out, "Gate decisions", std::to_string(t.allowed + t.warned + t.denied), "");
  out += "</div>";

  out += "<section id=\"denials\"><h2>Recent denials and warnings</h2>";
  decisions_table(out, page, page.denials, "No denial or warning since this replica started.");
  out += "<p class=\"age\">The last " + std::to_string(page.denials.size()) + " of " +
         std::to_string(page.notable_total) +
         " since start (this replica, in memory); the audit log has them all (pullgate audit).</p></section>";

  out += "<section id=\"bypass\"><h2>Bypass alarms</h2>";
  out += "<p>" + std::to_string(page.bypass_total) +
         " since start: a client refused a manifest that then asked for its blobs, so it took the manifest from the "
         "upstream directly (close the node's route to the upstream; pullgate doctor, docs/clients.md).</p>";
  decisions_table(out, page, page.bypass_alarms, "No bypass suspected since this replica started.");
  out += "</section>";

  out += "<section id=\"pending\"><h2>Pending scans (" + std::to_string(page.pending_count) + ")</h2>";
  if (page.pending.empty()) {
    out += "<p class=\"empty\">No digest awaits a scan.</p>";
  } else {
    out += "<table><tr><th>Digest</th><th>Asked for as</th><th>Waiting</th><th>Requests</th><th>Claimed by</th></tr>";
    for (const auto& p : page.pending) {
      std::string refs;
      for (const auto& r : p.references) refs += (refs.empty() ? "" : "<br>") + html_escape(r);
      out += "<tr><td class=\"mono\">" + html_escape(p.digest) + "</td><td class=\"image\">" + refs + "</td><td>" +
             age_text(page.now_ms, p.first_seen_ms) + "<br><span class=\"age\">since " +
             html_escape(policy::format_ms(p.first_seen_ms)) + "</span></td><td class=\"n\">" +
             std::to_string(p.requests) + "</td><td>" +
             (p.claimed_by.empty() ? std::string("<span class=\"empty\">nobody</span>") : html_escape(p.claimed_by)) +
             "</td></tr>";
    }
    out += "</table>";
    if (page.pending_count > page.pending.size())
      out += "<p class=\"age\">The oldest " + std::to_string(page.pending.size()) + " shown (GET /v1/pending lists more).</p>";
  }
  out += "</section>";

  out += "<section id=\"cache\"><h2>Cache</h2>";
  out += "<dl><dt>Hit ratio</dt><dd>" + percent_text(t.cache_hits, t.cache_hits + t.cache_misses) + " (" +
         std::to_string(t.cache_hits) + " hits, " + std::to_string(t.cache_misses) + " misses, " +
         std::to_string(t.cache_stale) + " stale serves)</dd>";
  if (page.cache) {
    const auto& c = *page.cache;
    out += "<dt>Size</dt><dd>" + bytes_text(c.bytes) +
           (c.max_bytes ? " of " + bytes_text(*c.max_bytes) + " (" + percent_text(c.bytes, *c.max_bytes) + ")"
                        : std::string(" (no size limit)")) +
           "</dd><dt>Images</dt><dd>" + std::to_string(c.image_count) + " (" + std::to_string(c.manifests) +
           " manifests, " + std::to_string(c.blob_files) + " blob files; pinned " + bytes_text(c.pinned_bytes) +
           ")</dd></dl>";
    if (!c.biggest.empty()) {
      out += "<h2 style=\"margin-top:12px\">Biggest images</h2><table><tr><th>Image</th><th>Size</th><th>Alone</th>"
             "<th>Last pull</th><th>Pinned</th></tr>";
      for (const auto& i : c.biggest) {
        std::string names;
        for (const auto& n : i.names) names += (names.empty() ? "" : "<br>") + html_escape(n);
        out += "<tr><td><span class=\"image\">" + (names.empty() ? std::string("(no name)") : names) +
               "</span><br><span class=\"digest\">" + html_escape(i.root) + "</span></td><td class=\"n\">" +
               bytes_text(i.bytes) + "</td><td class=\"n\">" + bytes_text(i.bytes_alone) + "</td><td>" +
               when_text(page.now_ms, i.last_pull_ms) + "</td><td>" + (i.pinned ? "yes" : "") + "</td></tr>";
      }
      out += "</table>";
    }
  } else {
    out += "</dl><p class=\"empty\">The cache's contents are not known to this listener.</p>";
  }
  out += "</section>";

  out += "<section id=\"traffic\"><h2>Traffic since start</h2><dl><dt>Gate decisions</dt><dd>" +
         std::to_string(t.allowed) + " allowed, " + std::to_string(t.warned) + " warned, " + std::to_string(t.denied) +
         " denied</dd><dt>HTTP requests</dt><dd>" + std::to_string(t.http_requests) + "</dd><dt>Served</dt><dd>" +
         bytes_text(t.bytes_served) + "</dd><dt>Fetched from upstreams</dt><dd>" + bytes_text(t.bytes_fetched) +
         "</dd></dl></section>";

  out += "<section id=\"upstreams\"><h2>Upstreams</h2>";
  out += "<table><tr><th>Upstream</th><th>Requests</th><th>Trouble</th><th>429s</th><th>Last good answer</th>"
         "<th>Last trouble</th></tr>";
  for (const auto& u : page.upstreams) {
    const bool failing = u.last_trouble_ms > u.last_ok_ms;
    out += "<tr><td class=\"image\">" + html_escape(u.upstream) + "</td><td class=\"n\">" +
           std::to_string(u.requests) + "</td><td class=\"n" + (u.troubles ? " bad" : "") + "\">" +
           std::to_string(u.troubles) + "</td><td class=\"n" + (u.rate_limited ? " warn" : "") + "\">" +
           std::to_string(u.rate_limited) + "</td><td>" + when_text(page.now_ms, u.last_ok_ms) + "</td><td>" +
           (u.last_trouble_ms ? "<span class=\"" + std::string(failing ? "bad" : "") + "\">" +
                                    html_escape(u.last_trouble) + "</span><br>" + when_text(page.now_ms, u.last_trouble_ms)
                              : std::string("<span class=\"empty\">none</span>")) +
           "</td></tr>";
  }
  out += "</table></section>";

  out += "<section id=\"policy\"><h2>Policy</h2><dl><dt>Version</dt><dd class=\"mono\">" +
         html_escape(page.policy.version) + "</dd><dt>From</dt><dd>" + html_escape(page.policy.source) +
         "</dd><dt>In force since</dt><dd>" + when_text(page.now_ms, page.policy.loaded_at_ms) + "</dd></dl></section>";

  out += "<section id=\"fleet\"><h2>Replica and fleet</h2><dl><dt>Replica</dt><dd>" + html_escape(page.replica) +
         "</dd><dt>Ready</dt><dd>" + html_escape(ready.status) + (ready.reason.empty() ? "" : ": " + html_escape(ready.reason)) +
         "</dd>";
  if (!ready.fleet) {
    out += "<dt>Fleet store</dt><dd>off (this replica decides alone)</dd></dl>";
  } else {
    const auto& f = *ready.fleet;
    out += std::string("<dt>Fleet store</dt><dd>") + html_escape(f.endpoint) + "</dd><dt>In step</dt><dd class=\"" +
           (f.in_step ? "good\">yes" : "bad\">no") + "</dd><dt>Store answers</dt><dd class=\"" +
           (f.store_up ? "good\">yes" : "bad\">no") + "</dd><dt>Revision</dt><dd>" + std::to_string(f.revision) +
           "</dd><dt>When the store is down</dt><dd>" + html_escape(f.on_store_down) + "</dd>";
    if (!f.last_error.empty())
      out += "<dt>Last error</dt><dd class=\"bad\">" + html_escape(f.last_error) + " (" + html_escape(f.last_error_at) +
             ")</dd>";
    out += "</dl><table><tr><th>Replica</th><th>Last heartbeat</th></tr>";
    for (const auto& [id, at] : f.replicas)
      out += "<tr><td>" + html_escape(id) + "</td><td>" + html_escape(at) + "</td></tr>";
    out += "</table>";
  }
  out += "</section></main></body></html>\n";
  return out;
}

}  // namespace pullgate::proxy
