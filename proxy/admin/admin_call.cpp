#include "proxy/admin/admin_call.hpp"

#include <chrono>
#include <exception>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "proxy/admin/admin.hpp"

namespace pullgate::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

AdminAnswer call_admin(const Config& config, std::string_view method, std::string_view target, std::string body,
                       int timeout_s) {
  if (config.admin_listen.empty()) throw std::runtime_error("the config has no admin listener (admin.listen)");
  auto listen = parse_host_port(config.admin_listen);
  if (!listen) throw std::runtime_error("the admin listen address " + config.admin_listen + " is not HOST:PORT");
  // Not a structured binding: clang 14 cannot capture one in the lambda below.
  const auto reach = reachable_locally(*listen);
  const auto& host = reach.host;
  const auto port = reach.port;
  const std::string token = load_token(config.admin_token_path());
  const std::string where = "the admin API at " + config.admin_listen;

  http::request<http::string_body> request{http::string_to_verb(method), std::string(target), 11};
  request.set(http::field::host, host);
  request.set(http::field::authorization, "Bearer " + token);
  request.set(http::field::user_agent, "pullgate/" PULLGATE_VERSION);
  if (!body.empty()) request.set(http::field::content_type, "application/json");
  request.body() = std::move(body);
  request.prepare_payload();

  AdminAnswer answer;
  asio::io_context ioc(1);
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        auto executor = co_await asio::this_coro::executor;
        asio::ip::tcp::resolver resolver(executor);
        beast::tcp_stream stream(executor);
        stream.expires_after(std::chrono::seconds(timeout_s));
        auto endpoints = co_await resolver.async_resolve(host, std::to_string(port), asio::use_awaitable);
        co_await stream.async_connect(endpoints, asio::use_awaitable);
        co_await http::async_write(stream, request, asio::use_awaitable);
        beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        parser.body_limit(1 << 20);
        co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
        answer.status = parser.get().result_int();
        answer.body = std::move(parser.get().body());
      },
      [&](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& error) {
          throw std::runtime_error(where + " did not answer: " + error.what());
        }
      });
  ioc.run();
  return answer;
}

}  // namespace pullgate::proxy
