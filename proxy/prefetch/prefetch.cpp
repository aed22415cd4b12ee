#include "proxy/prefetch/prefetch.hpp"


#include <array>
#include <chrono>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <variant>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "proxy/cli/args.hpp"
#include "proxy/mirror/upstream_failure.hpp"
#include "proxy/prefetch/plan.hpp"
#include "proxy/telemetry/progress.hpp"
#include "registry/errors.hpp"
#include "registry/upstream.hpp"
#include "registry/upstream_url.hpp"

namespace pullgate::proxy::prefetch {

const char help[] = R"(Usage:
  pullgate prefetch IMAGE... [--platform OS/ARCH[/VARIANT]] [--mirror URL]
  pullgate prefetch --file LIST [...]      the images named in LIST, one a line (# comments)

Pulls images into the cache of a running mirror through its gate, by making the
requests a client makes to the mirror's listener: the manifest by tag, for an index
every child manifest (or only those of --platform), then the config and every layer,
each body read to the end and its digest checked as it streams. The mirror decides,
caches and audits as for any pull: a denied image is reported with the gate's
reasons and nothing more of it is fetched.

IMAGE is UPSTREAM/REPOSITORY:TAG or UPSTREAM/REPOSITORY@DIGEST, as for bundle export:
UPSTREAM a configured upstream name or alias (without --config, a first component
that looks like a host). The mirror is --mirror URL (http:// or https://, no path),
else the listen address of --config FILE (default 0.0.0.0:5000, reached on
127.0.0.1; https with tls.cert_file as the trusted certificate when it serves TLS).

Prints one line per image: "ok IMAGE DIGEST N blobs, M bytes", "denied IMAGE DIGEST:
REASONS" or "failed IMAGE: WHY" (and a progress line on a terminal). Exit status 0
when every image is ok, 1 when any is denied or failed, 2 for a usage error.
)";

namespace {

namespace asio = boost::asio;
namespace http = registry::http;
using registry::Digest;
using registry::ParsedManifest;

// The gate refused: its reasons, one line.
struct Denied {
  std::string reasons;
};
// Anything else that ends an image: why, one line.
struct Failed {
  std::string why;
};

// The result lines, and on a terminal one progress line that each update rewrites.
class Display {
 public:
  explicit Display(bool progress) : progress_(progress) {}

  void start(const std::string& image, std::uint64_t total) {
    image_ = image;
    total_ = total;
    done_ = 0;
    progress_.show(line(), true);
  }
  void add(std::uint64_t bytes) {
    done_ += bytes;
    progress_.show(line());
  }
  void result(const std::string& line) {
    progress_.clear();
    std::cout << line << std::endl;
  }

 private:
  std::string line() const { return image_ + "  " + human_bytes(done_) + " / " + human_bytes(total_); }

  TerminalProgress progress_;
  std::string image_;
  std::uint64_t total_ = 0, done_ = 0;
};

class Prefetch {
 public:
  Prefetch(registry::Upstream& mirror, std::optional<registry::Platform> platform, Display& display)
      : mirror_(mirror), platform_(std::move(platform)), display_(display) {}

  // One image, its result printed; true when it is ok.
  asio::awaitable<bool> image(const ExplainQuery& q) {
    std::string digest_text = q.digest ? q.digest->str() : "";
    try {
      std::optional<Digest> digest = q.digest;
      if (!digest) digest = co_await resolve_tag(q);
      if (digest) digest_text = digest->str();
      auto [root_digest, root] = co_await manifest(q, digest ? digest->str() : *q.tag, digest);
      digest_text = root_digest.str();
      std::vector<ParsedManifest> images;
      if (root.is_index) {
        auto children = children_to_fetch(root, platform_);
        if (children.empty() && platform_)
          throw Failed{"the index has no manifest for " + platform_name(platform_) + " (it has " +
                       platforms_of(root) + ")"};
        for (const auto& child : children) {
          auto [_, parsed] = co_await manifest(q, child.digest.str(), child.digest);
          if (parsed.is_index) throw Failed{"index " + child.digest.str() + " inside an index"};
          images.push_back(std::move(parsed));
        }
      } else {
        images.push_back(std::move(root));
      }
      auto blobs = blobs_of(images);
      std::uint64_t total = 0;
      for (const auto& b : blobs) total += static_cast<std::uint64_t>(b.size);
      display_.start(q.image, total);
      for (const auto& b : blobs) co_await blob(q, b);
      display_.result(ok_line(q.image, root_digest, blobs.size(), total));
      co_return true;
    } catch (const Denied& d) {
      display_.result(denied_line(q.image, digest_text.empty() ? "(digest unknown)" : digest_text, d.reasons));
    } catch (const Failed& f) {
      display_.result(failed_line(q.image, f.why));
    } catch (const registry::UpstreamError& e) {
      display_.result(failed_line(q.image, std::string("the mirror: ") + e.what()));
    }
    co_return false;
  }

 private:
  static std::string platforms_of(const ParsedManifest& index) {
    std::string out;
    for (const auto& child : index.children) out += (out.empty() ? "" : ", ") + platform_name(child.platform);
    return out.empty() ? "none" : out;
  }

  asio::awaitable<std::unique_ptr<registry::UpstreamResponse>> send(http::verb method, std::string target,
                                                                     bool manifest) {
    registry::UpstreamRequest request;
    request.method = method;
    request.target = std::move(target);
    if (manifest) request.headers.emplace_back("Accept", std::string(registry::media_type::accept_all));
    co_return co_await mirror_.send(std::move(request));
  }

  // A response that is not a 200: the gate's denial, or a failure that says what
  // the mirror answered.
  static asio::awaitable<void> refuse(registry::UpstreamResponse& response, const std::string& what) {
    UpstreamAnswer answer;
    answer.status = response.status();
    answer.decision = std::string(response.headers()[registry::decision_header]);
    try {
      answer.body = co_await registry::read_body(response, registry::max_error_body);
    } catch (const registry::UpstreamError&) {
      // No readable body: the status says enough.
    }
    if (auto denial = upstream_denial(answer)) throw Denied{*denial};
    auto message = oci_error_message(answer.body);
    throw Failed{"the mirror answered " + std::to_string(answer.status) + " for " + what +
                 (message.empty() ? "" : " (" + message + ")")};
  }

  // The tag's digest by a HEAD, as containerd resolves a tag (a denied image's HEAD
  // answers 200 too, so its denial comes with its digest from the GET that follows);
  // nullopt when the HEAD does not say, and the GET by tag tells why.
  asio::awaitable<std::optional<Digest>> resolve_tag(const ExplainQuery& q) {
    auto response = co_await send(http::verb::head, manifest_target(q, *q.tag), true);
    if (response->status() != 200) co_return std::nullopt;
    co_return Digest::parse(std::string(response->headers()["Docker-Content-Digest"]));
  }

  asio::awaitable<std::pair<Digest, ParsedManifest>> manifest(const ExplainQuery& q, const std::string& reference,
                                                              const std::optional<Digest>& expected) {
    const std::string what = "manifest " + reference;
    auto response = co_await send(http::verb::get, manifest_target(q, reference), true);
    if (response->status() != 200) co_await refuse(*response, what);
    auto length = response->content_length();
    if (length && *length > registry::max_manifest_bytes)
      throw Failed{what + " is " + std::to_string(*length) + " bytes, more than a manifest may have (" +
                   std::to_string(registry::max_manifest_bytes) + ")"};
    std::string body;
    try {
      body = co_await registry::read_body(*response, registry::max_manifest_bytes);
    } catch (const registry::UpstreamError& e) {
      if (e.kind() != registry::UpstreamError::Kind::too_large) throw;
      throw Failed{what + " is more than " + std::to_string(registry::max_manifest_bytes) + " bytes"};
    }
    auto algorithm = expected ? expected->algorithm() : registry::DigestAlgorithm::sha256;
    auto digest = registry::digest_of(algorithm, body);
    if (expected && digest != *expected)
      throw Failed{"the mirror sent " + what + " with the digest " + digest.str()};
    auto parsed = registry::parse_manifest(body, std::string(response->headers()[http::field::content_type]));
    if (auto* error = std::get_if<std::string>(&parsed)) throw Failed{what + ": " + *error};
    co_return std::pair{digest, std::move(std::get<ParsedManifest>(parsed))};
  }

  // Reads the blob to its end, hashing it; nothing of it is kept.
  asio::awaitable<void> blob(const ExplainQuery& q, const registry::Descriptor& d) {
    const std::string what = "blob " + d.digest.str();
    auto response = co_await send(http::verb::get, blob_target(q, d.digest), false);
    if (response->status() != 200) co_await refuse(*response, what);
    const auto size = static_cast<std::uint64_t>(d.size);
    registry::DigestHasher hasher(d.digest.algorithm());
    std::array<char, 64 * 1024> buffer;
    std::uint64_t read = 0;
    while (auto n = co_await response->read_some(asio::buffer(buffer))) {
      read += n;
      if (read > size) throw Failed{what + " is longer than the " + std::to_string(size) + " bytes its manifest says"};
      hasher.update(buffer.data(), n);
      display_.add(n);
    }
    if (read != size)
      throw Failed{what + " ended after " + std::to_string(read) + " of " + std::to_string(size) + " bytes"};
    if (hasher.finish() != d.digest) throw Failed{"the mirror sent " + what + " with other content (digest mismatch)"};
  }

  registry::Upstream& mirror_;
  std::optional<registry::Platform> platform_;
  Display& display_;
};

}  // namespace

int run(const std::vector<std::string>& args) {
  auto cli = cli::parse_cli(args, 0, {"--config", "--file", "--platform", "--mirror"});
  if (cli.help) {
    std::cout << help;
    return 0;
  }
  if (!cli.error.empty()) return cli::usage(cli.error, "prefetch");
  std::optional<registry::Platform> platform;
  if (auto* text = cli.get("--platform")) {
    platform = parse_platform(*text);
    if (!platform) return cli::usage("--platform must be OS/ARCH or OS/ARCH/VARIANT, got \"" + *text + "\"", "prefetch");
  }
  auto config = cli::cli_config(cli);
  if (!config) return 1;

  std::vector<std::string> references = cli.positional;
  if (auto* list = cli.get("--file")) {
    auto listed = cli::read_image_list(*list);
    if (!listed) {
      std::cerr << "pullgate: cannot read " << *list << "\n";
      return 1;
    }
    references.insert(references.end(), listed->begin(), listed->end());
  }
  if (references.empty()) return cli::usage("prefetch needs IMAGE... or --file LIST", "prefetch");
  std::vector<ExplainQuery> images;
  for (const auto& reference : references) {
    auto parsed = parse_explain_query(reference, cli::upstream_names(*config, !cli.get("--config"), reference));
    if (parsed.query && parsed.query->upstream.empty())
      parsed.error = reference + ": name the image (UPSTREAM/REPOSITORY@DIGEST), not only a digest";
    if (!parsed.error.empty()) return cli::usage(parsed.error, "prefetch");
    images.push_back(std::move(*parsed.query));
  }

  registry::UpstreamSettings settings;
  settings.name = "the mirror";
  if (auto* url = cli.get("--mirror")) {
    auto parsed = registry::parse_url(*url);
    if (!parsed || parsed->target != "/")
      return cli::usage("--mirror must be an http:// or https:// URL without a path, got \"" + *url + "\"", "prefetch");
    settings.url = *url;
  } else {
    auto listen = mirror_url_of(config->listen, !config->tls_cert_file.empty());
    if (!listen) return cli::usage("the config's listen address " + config->listen + " is not HOST:PORT", "prefetch");
    settings.url = *listen;
  }
  // A mirror serving TLS with its own certificate: trust that one too.
  settings.ca_file = config->tls_cert_file;
  // The gate may hold a first pull for a scan report (gate.unknown "hold").
  settings.response_timeout = std::chrono::minutes(5);
  settings.read_timeout = std::chrono::minutes(2);

  int status = 0;
  try {
    asio::io_context ioc(1);
    auto mirror = registry::make_http_upstream(ioc.get_executor(), settings);
    Display display(stderr_is_terminal());
    Prefetch prefetch(*mirror, platform, display);
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          for (const auto& q : images)
            if (!co_await prefetch.image(q)) status = 1;
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    ioc.run();
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }
  return status;
}

}  // namespace pullgate::proxy::prefetch
