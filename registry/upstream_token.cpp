#include "registry/upstream_token.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "registry/upstream_url.hpp"

namespace pullgate::registry {

// One token fetch in progress; the callers that arrive meanwhile wait on it. Each
// waiter is resumed on its own executor, whatever thread completes the fetch.
class TokenFlight {
 public:
  template <class CompletionToken>
  auto async_wait(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr, std::string)>(
        [this](auto handler) { add_waiter(std::move(handler)); }, token);
  }

  void complete(std::exception_ptr error, const std::string& token) {
    std::vector<Waiter> waiters;
    {
      std::lock_guard lock(mutex_);
      done_ = true;
      error_ = error;
      token_ = token;
      waiters.swap(waiters_);
    }
    for (auto& waiter : waiters) waiter(error, token);
  }

 private:
  using Waiter = std::function<void(std::exception_ptr, std::string)>;

  template <class Handler>
  void add_waiter(Handler handler) {
    auto executor = asio::get_associated_executor(handler);
    auto work = asio::make_work_guard(executor);
    // std::function needs a copyable target; the handler itself is move-only.
    auto shared = std::make_shared<Handler>(std::move(handler));
    Waiter resume = [shared, executor, work](std::exception_ptr error, std::string token) {
      asio::post(executor, [shared, error, token = std::move(token)]() mutable {
        std::move (*shared)(error, std::move(token));
      });
    };
    std::unique_lock lock(mutex_);
    if (!done_) {
      waiters_.push_back(std::move(resume));
      return;
    }
    auto error = error_;
    auto token = token_;
    lock.unlock();
    resume(error, token);
  }

  std::mutex mutex_;
  bool done_ = false;
  std::exception_ptr error_;
  std::string token_;
  std::vector<Waiter> waiters_;
};

std::optional<BearerToken> parse_token_response(std::string_view body) {
  auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  BearerToken result;
  for (const char* name : {"token", "access_token"}) {
    auto found = json.find(name);
    if (found != json.end() && found->is_string() && !found->get_ref<const std::string&>().empty()) {
      result.token = found->get<std::string>();
      break;
    }
  }
  if (result.token.empty() || !is_visible_ascii(result.token)) return std::nullopt;
  auto expires = json.find("expires_in");
  if (expires != json.end() && expires->is_number()) {
    double seconds = expires->get<double>();
    // A day at most: a bogus huge value must not pin a token forever.
    if (seconds >= 1) result.lifetime = std::chrono::seconds(static_cast<long>(std::min(seconds, 86400.0)));
  }
  return result;
}

std::optional<std::string> TokenCache::cached(const std::string& scope) {
  std::lock_guard lock(mutex_);
  auto found = tokens_.find(scope);
  if (found == tokens_.end() || found->second.good_until <= Clock::now()) return std::nullopt;
  return found->second.token;
}

asio::awaitable<std::string> TokenCache::get(const std::string& scope,
                                             const std::optional<std::string>& rejected, Fetch fetch) {
  std::shared_ptr<TokenFlight> flight;
  bool leader = false;
  {
    std::lock_guard lock(mutex_);
    auto found = tokens_.find(scope);
    if (found != tokens_.end() && found->second.good_until > Clock::now() &&
        found->second.token != rejected) {
      co_return found->second.token;
    }
    auto& slot = flights_[scope];
    if (!slot) {
      slot = std::make_shared<TokenFlight>();
      leader = true;
    }
    flight = slot;
  }
  if (!leader) co_return co_await flight->async_wait(asio::use_awaitable);

  BearerToken result;
  std::exception_ptr error;
  try {
    result = co_await fetch();
  } catch (...) {
    error = std::current_exception();
  }
  {
    std::lock_guard lock(mutex_);
    flights_.erase(scope);
    if (!error) {
      auto now = Clock::now();
      std::erase_if(tokens_, [now](const auto& entry) { return entry.second.good_until <= now; });
      // Refresh before the upstream's expiry: a fifth of the lifetime, 30 s at most.
      auto margin = std::min<Clock::duration>(std::chrono::seconds(30), result.lifetime / 5);
      tokens_[scope] = Entry{result.token, now + result.lifetime - margin};
    }
  }
  flight->complete(error, result.token);
  if (error) std::rethrow_exception(error);
  co_return result.token;
}

}  // namespace pullgate::registry
