#include "proxy/mirror/upstream_failure.hpp"

#include <nlohmann/json.hpp>

namespace pullgate::proxy {

using registry::ErrorCode;
namespace http = registry::http;

std::optional<std::string> upstream_denial(const UpstreamAnswer& answer) {
  if (answer.status != 403 || answer.decision != "deny") return std::nullopt;
  auto body = nlohmann::json::parse(answer.body, nullptr, false);
  if (!body.is_object()) return std::nullopt;
  auto errors = body.find("errors");
  if (errors == body.end() || !errors->is_array() || errors->empty() || !(*errors)[0].is_object())
    return std::nullopt;
  const auto& first = (*errors)[0];
  auto code = first.find("code");
  if (code == first.end() || !code->is_string() || *code != "DENIED") return std::nullopt;
  auto message = first.find("message");
  std::string text = message != first.end() && message->is_string() ? message->get<std::string>() : "";
  // One printable line, bounded: it ends up in logs, verdicts and the client's error.
  std::string line;
  for (char c : text.substr(0, 4096)) line += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
  return line.empty() ? std::string("denied (no reason given)") : line;
}

boost::asio::awaitable<UpstreamAnswer> upstream_answer(registry::UpstreamResponse& response) {
  UpstreamAnswer answer;
  answer.status = response.status();
  answer.retry_after = std::string(response.headers()[http::field::retry_after]);
  answer.decision = std::string(response.headers()[decision_header]);
  if (answer.status == 403 && answer.decision == "deny") {
    try {
      answer.body = co_await registry::read_body(response, max_error_body);
    } catch (const registry::UpstreamError&) {
      // No readable body: not a denial this mirror can pass on.
    }
  }
  co_return answer;
}

ErrorReply upstream_failure_reply(std::string_view upstream, std::string_view repository, std::string_view what,
                                  const UpstreamAnswer& answer, ErrorCode not_found) {
  const std::string name(upstream);
  const std::string where = std::string(repository) + (what.empty() ? "" : " " + std::string(what));
  if (auto denial = upstream_denial(answer))
    return {403, ErrorCode::denied, "upstream " + name + " (a pullgate) denied " + where + ": " + *denial, "", false};
  switch (answer.status) {
    case 0:
      return {502, ErrorCode::unknown, "upstream " + name + " is unreachable: " + answer.detail, "", true};
    case 404:
      return {404, not_found, "upstream " + name + " does not know " + where, "", false};
    case 401:
    case 403:
      // Docker Hub answers 401 for repositories that do not exist as well as for
      // private ones; either way the mirror cannot get it.
      return {404, ErrorCode::name_unknown,
              "upstream " + name + " refused access to " + std::string(repository) + " (" +
                  std::to_string(answer.status) + "): it does not exist or needs credentials the mirror does not have",
              "", true};
    case 429:
      return {429, ErrorCode::toomanyrequests,
              "upstream " + name + " is rate-limiting the mirror (429) and " +
                  (what.empty() ? std::string(repository) : std::string(what)) + " is not cached",
              answer.retry_after, true};
    default:
      return {502, ErrorCode::unknown, "upstream " + name + " answered " + std::to_string(answer.status) + " for " + where,
              "", true};
  }
}

}  // namespace pullgate::proxy
