#pragma once
// Bearer tokens for the upstream client: parsing the token endpoint's answer and a
// per-scope cache in which concurrent callers share one fetch (single flight).
#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

namespace pullgate::registry {

namespace asio = boost::asio;

struct BearerToken {
  std::string token;
  std::chrono::seconds lifetime{60};
};

// {"token": ...} or {"access_token": ...} with an optional "expires_in" (default 60 s).
// nullopt when the body is not such an object or the token is not header-safe.
std::optional<BearerToken> parse_token_response(std::string_view body);

class TokenFlight;

class TokenCache {
 public:
  using Clock = std::chrono::steady_clock;
  using Fetch = std::function<asio::awaitable<BearerToken>()>;

  // The cached token for scope while it is fresh.
  std::optional<std::string> cached(const std::string& scope);

  // A token for scope: the cached one unless it is `rejected` (the upstream just
  // refused it), else the result of one `fetch` shared by every concurrent caller.
  // Rethrows the fetch's exception to all of them.
  asio::awaitable<std::string> get(const std::string& scope, const std::optional<std::string>& rejected,
                                   Fetch fetch);

 private:
  struct Entry {
    std::string token;
    Clock::time_point good_until;
  };

  std::mutex mutex_;
  std::map<std::string, Entry> tokens_;
  std::map<std::string, std::shared_ptr<TokenFlight>> flights_;
};

}  // namespace pullgate::registry
