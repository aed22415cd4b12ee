// The etcd client against real etcd members (Debian's etcd 3.4) on loopback: the
// key-value calls, paging, transactions, leases, watches (order, resume,
// cancellation, compaction), failover when the leader dies, no endpoint left, and
// etcd's own authentication. Fails where /usr/bin/etcd is not installed.
#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <nlohmann/json.hpp>

#include "cache/etcd.hpp"
#include "tests/unit/etcd_server.hpp"

namespace pullgate::cache::etcd {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing_support::EtcdCluster;
using testing_support::run_command;

template <class T>
T run(asio::io_context& io, asio::awaitable<T> task) {
  auto future = asio::co_spawn(io, std::move(task), asio::use_future);
  io.restart();
  io.run();
  return future.get();
}

asio::awaitable<void> pause(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::use_awaitable);
}

// Polls `ready` every 50 ms until it holds or `limit` passes.
template <class Ready>
asio::awaitable<bool> wait_until(Ready ready, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) co_return false;
    co_await pause(50ms);
  }
  co_return true;
}

// Until the cluster answers a write (members elect a leader after they start).
asio::awaitable<void> wait_for_leader(Client& client) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    try {
      co_await client.put("/ready", "1");
      co_return;
    } catch (const Error&) {
      if (std::chrono::steady_clock::now() > deadline) throw;
    }
    co_await pause(100ms);
  }
}

Settings settings_for(const EtcdCluster& cluster) {
  Settings settings;
  settings.endpoints = cluster.client_urls();
  return settings;
}

class EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing_support::etcd_installed()) << "/usr/bin/etcd is not installed (deploy/install-deps.sh --test)";
  }
  asio::io_context io;
};

TEST(EtcdPrefixEnd, IsTheFirstKeyAfterThePrefix) {
  EXPECT_EQ(prefix_end("/a/"), "/a0");
  EXPECT_EQ(prefix_end("a\xff"), "b");
  EXPECT_EQ(prefix_end("\xff\xff"), std::string(1, '\0'));
  EXPECT_EQ(prefix_end(""), std::string(1, '\0'));
}

TEST(EtcdMake, RefusesSettingsThatCannotWork) {
  asio::io_context io;
  EXPECT_THROW(Client::make(io.get_executor(), Settings{}), std::invalid_argument);
  Settings bad_url;
  bad_url.endpoints = {"etcd:2379"};
  EXPECT_THROW(Client::make(io.get_executor(), bad_url), std::invalid_argument);
  Settings missing_ca;
  missing_ca.endpoints = {"https://127.0.0.1:2379"};
  missing_ca.ca_file = "/nonexistent/ca.pem";
  EXPECT_THROW(Client::make(io.get_executor(), missing_ca), std::invalid_argument);
}

TEST_F(EtcdTest, PutGetEraseAndPagedRanges) {
  EtcdCluster cluster(1);
  auto client = Client::make(io.get_executor(), settings_for(cluster));
  run(io, [&]() -> asio::awaitable<void> {
    co_await wait_for_leader(*client);
    // Bytes that are not text survive the gateway's base64.
    const std::string value("v\0\xff\n", 4);
    auto written = co_await client->put("/t/a", value);
    auto read = co_await client->get("/t/a");
    EXPECT_TRUE(read.has_value());
    if (read) {
      EXPECT_EQ(read->value, value);
      EXPECT_EQ(read->mod_revision, written);
      EXPECT_EQ(read->create_revision, written);
    }
    EXPECT_EQ(client->endpoint(), cluster.members()[0].client_url);
    auto erased = co_await client->erase("/t/a");
    EXPECT_GT(erased, written);
    EXPECT_FALSE((co_await client->get("/t/a")).has_value());
    // Nothing to delete: the store's revision, unchanged.
    EXPECT_EQ(co_await client->erase("/t/a"), erased);

    // 2500 keys: three pages of 1000, read at one revision.
    for (int batch = 0; batch < 25; ++batch) {
      std::vector<Write> writes;
      for (int i = 0; i < 100; ++i) {
        char key[32];
        std::snprintf(key, sizeof key, "/many/%05d", batch * 100 + i);
        writes.push_back(Write{Write::Type::put, key, std::to_string(batch * 100 + i)});
      }
      co_await client->commit(writes);
    }
    co_await client->put("/many0", "outside the prefix");
    auto range = co_await client->range_prefix("/many/");
    EXPECT_EQ(range.kvs.size(), 2500u);
    for (std::size_t i = 0; i < range.kvs.size(); ++i) {
      if (range.kvs[i].value != std::to_string(i)) {
        ADD_FAILURE() << "key " << range.kvs[i].key << " holds " << range.kvs[i].value;
        break;
      }
    }
    EXPECT_EQ(range.revision, co_await client->put("/other", "x") - 1);
    EXPECT_TRUE((co_await client->range_prefix("/none/")).kvs.empty());
  }());
}

TEST_F(EtcdTest, CommitWritesOnlyWhenTheAbsentKeysAreAbsent) {
  EtcdCluster cluster(1);
  auto client = Client::make(io.get_executor(), settings_for(cluster));
  run(io, [&]() -> asio::awaitable<void> {
    co_await wait_for_leader(*client);
    co_await client->put("/c/old", "1");
    std::vector<Write> writes{Write{Write::Type::put, "/c/claim", "first"},
                              Write{Write::Type::erase, "/c/old", {}}};
    const std::vector<std::string> absent{"/c/claim"};
    auto first = co_await client->commit(writes, absent);
    EXPECT_TRUE(first.has_value());
    std::vector<Write> again{Write{Write::Type::put, "/c/claim", "second"}};
    EXPECT_FALSE((co_await client->commit(again, absent)).has_value());
    auto claim = co_await client->get("/c/claim");
    EXPECT_EQ(claim ? claim->value : "", "first");
    if (claim && first) {
      EXPECT_EQ(claim->mod_revision, *first);
    }
    EXPECT_FALSE((co_await client->get("/c/old")).has_value());
  }());
}

TEST_F(EtcdTest, CommitWritesOnlyWhenTheGuardedKeysAreUnchanged) {
  EtcdCluster cluster(1);
  auto client = Client::make(io.get_executor(), settings_for(cluster));
  run(io, [&]() -> asio::awaitable<void> {
    co_await wait_for_leader(*client);
    auto read_at = co_await client->put("/u/queue", "1");
    std::vector<Write> writes{Write{Write::Type::put, "/u/claim", "x"}};
    const std::vector<Unchanged> as_read{{"/u/queue", read_at}};
    EXPECT_TRUE((co_await client->commit(writes, {}, as_read)).has_value());
    co_await client->put("/u/queue", "2");  // written since
    EXPECT_FALSE((co_await client->commit(writes, {}, as_read)).has_value());
    co_await client->erase("/u/queue");
    EXPECT_FALSE((co_await client->commit(writes, {}, as_read)).has_value());
    const std::vector<Unchanged> none{{"/u/queue", 0}};  // 0: still absent
    EXPECT_TRUE((co_await client->commit(writes, {}, none)).has_value());
  }());
}

TEST_F(EtcdTest, LeasesKeepAndRevokeTheirKeys) {
  EtcdCluster cluster(1);
  auto client = Client::make(io.get_executor(), settings_for(cluster));
  run(io, [&]() -> asio::awaitable<void> {
    co_await wait_for_leader(*client);
    auto lease = co_await client->grant(60s);
    EXPECT_NE(lease, 0);
    co_await client->put("/l/heartbeat", "alive", lease);
    auto held = co_await client->get("/l/heartbeat");
    EXPECT_EQ(held ? held->lease : 0, lease);
    auto ttl = co_await client->keep_alive(lease);
    EXPECT_GT(ttl, 0);
    EXPECT_LE(ttl, 60);
    co_await client->revoke(lease);
    EXPECT_FALSE((co_await client->get("/l/heartbeat")).has_value());
    EXPECT_EQ(co_await client->keep_alive(lease), 0);
    // Revoked already: nothing left to do, not an error.
    co_await client->revoke(lease);
    // A put under a lease that is gone is etcd's refusal.
    try {
      co_await client->put("/l/late", "x", lease);
      ADD_FAILURE() << "a put under a revoked lease succeeded";
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), Error::Kind::failed) << error.what();
    }
  }());
}

// Collects a watch's batches until it ends; `ended` holds how it ended.
struct Watcher {
  std::vector<WatchBatch> batches;
  std::vector<Event> events() const {
    std::vector<Event> all;
    for (const auto& batch : batches) all.insert(all.end(), batch.events.begin(), batch.events.end());
    return all;
  }
  bool done = false;
  std::exception_ptr ended;
  asio::cancellation_signal cancel;

  void start(asio::io_context& io, Client& client, std::string prefix, std::int64_t from) {
    asio::co_spawn(io, client.watch(prefix, from, [this](const WatchBatch& batch) { batches.push_back(batch); }),
                   asio::bind_cancellation_slot(cancel.slot(), [this](std::exception_ptr e) {
                     done = true;
                     ended = e;
                   }));
  }
};

TEST_F(EtcdTest, WatchDeliversPutsAndDeletesInOrderResumesAndCancels) {
  EtcdCluster cluster(1);
  auto client = Client::make(io.get_executor(), settings_for(cluster));
  Watcher watcher;
  Watcher resumed;
  run(io, [&]() -> asio::awaitable<void> {
    co_await wait_for_leader(*client);
    auto start = co_await client->put("/outside", "x") + 1;
    watcher.start(io, *client, "/w/", start);
    auto a = co_await client->put("/w/a", "1");
    auto b = co_await client->put("/w/b", "2");
    co_await client->put("/x/not-watched", "3");
    auto erased = co_await client->erase("/w/a");
    EXPECT_TRUE(co_await wait_until([&] { return watcher.events().size() >= 3 || watcher.done; }));
    auto events = watcher.events();
    EXPECT_EQ(events.size(), 3u);
    if (events.size() == 3) {
      EXPECT_EQ(events[0].type, Event::Type::put);
      EXPECT_EQ(events[0].kv.key, "/w/a");
      EXPECT_EQ(events[0].kv.value, "1");
      EXPECT_EQ(events[0].kv.mod_revision, a);
      EXPECT_EQ(events[1].kv.key, "/w/b");
      EXPECT_EQ(events[1].kv.mod_revision, b);
      EXPECT_EQ(events[2].type, Event::Type::erase);
      EXPECT_EQ(events[2].kv.key, "/w/a");
      EXPECT_EQ(events[2].kv.mod_revision, erased);
    }
    EXPECT_FALSE(watcher.done);

    // From b's revision on: b and the delete, nothing before.
    resumed.start(io, *client, "/w/", b);
    EXPECT_TRUE(co_await wait_until([&] { return resumed.events().size() >= 2 || resumed.done; }));
    auto later = resumed.events();
    EXPECT_EQ(later.size(), 2u);
    if (later.size() == 2) {
      EXPECT_EQ(later[0].kv.mod_revision, b);
      EXPECT_EQ(later[1].kv.mod_revision, erased);
    }

    // A cancelled watch ends at once with operation_aborted.
    auto cancelled_at = std::chrono::steady_clock::now();
    watcher.cancel.emit(asio::cancellation_type::terminal);
    resumed.cancel.emit(asio::cancellation_type::terminal);
    EXPECT_TRUE(co_await wait_until([&] { return watcher.done && resumed.done; }, 2s));
    EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, 1s);
  }());
  for (auto* ended : {&watcher, &resumed}) {
    ASSERT_TRUE(ended->ended);
    try {
      std::rethrow_exception(ended->ended);
    } catch (const boost::system::system_error& error) {
      EXPECT_EQ(error.code(), asio::error::operation_aborted);
    } catch (const std::exception& error) {
      ADD_FAILURE() << "the watch ended with " << error.what();
    }
  }
}

TEST_F(EtcdTest, WatchFromACompactedRevisionSaysWhereHistoryStarts) {
  EtcdCluster cluster(1);
  auto client = Client::make(io.get_executor(), settings_for(cluster));
  Watcher watcher;
  std::int64_t compacted_at = 0;
  run(io, [&]() -> asio::awaitable<void> {
    co_await wait_for_leader(*client);
    auto first = co_await client->put("/k/a", "1");
    co_await client->put("/k/a", "2");
    compacted_at = co_await client->put("/k/a", "3");
    run_command(std::string(testing_support::kEtcdctlBinary) + " " + cluster.endpoints_flag() + " compact " +
                std::to_string(compacted_at));
    watcher.start(io, *client, "/k/", first);
    EXPECT_TRUE(co_await wait_until([&] { return watcher.done; }));
  }());
  ASSERT_TRUE(watcher.ended);
  EXPECT_TRUE(watcher.batches.empty());
  try {
    std::rethrow_exception(watcher.ended);
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), Error::Kind::compacted) << error.what();
    EXPECT_EQ(error.compact_revision(), compacted_at);
  }
}

TEST_F(EtcdTest, WatchEndsUnavailableWhenItsMemberGoesAway) {
  EtcdCluster cluster(1);
  auto client = Client::make(io.get_executor(), settings_for(cluster));
  Watcher watcher;
  run(io, [&]() -> asio::awaitable<void> {
    co_await wait_for_leader(*client);
    // From a revision, not 0 ("from now"): the put below may land before the watch
    // is set up on a loaded machine, and a watch from now would never see it.
    auto start = co_await client->put("/outside", "x") + 1;
    watcher.start(io, *client, "/w/", start);
    co_await client->put("/w/a", "1");
    EXPECT_TRUE(co_await wait_until([&] { return !watcher.batches.empty(); }));
    cluster.stop(0);
    EXPECT_TRUE(co_await wait_until([&] { return watcher.done; }));
  }());
  ASSERT_TRUE(watcher.ended);
  try {
    std::rethrow_exception(watcher.ended);
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), Error::Kind::unavailable) << error.what();
  }
}

// The member that leads, by etcdctl endpoint status.
std::size_t leader_of(const EtcdCluster& cluster) {
  auto status = nlohmann::json::parse(run_command(std::string(testing_support::kEtcdctlBinary) + " " +
                                                  cluster.endpoints_flag() + " endpoint status -w json"));
  for (const auto& entry : status) {
    const auto& member = entry.at("Status");
    if (member.at("header").at("member_id") == member.at("leader")) {
      auto endpoint = entry.at("Endpoint").get<std::string>();
      for (std::size_t i = 0; i < cluster.members().size(); ++i) {
        if (cluster.members()[i].client_url == endpoint) return i;
      }
    }
  }
  throw std::runtime_error("no leader in etcdctl endpoint status");
}

TEST_F(EtcdTest, WritesGoOnWhenTheLeaderDiesAndFailWithinTheDeadlineWhenAllDo) {
  EtcdCluster cluster(3);
  {
    auto client = Client::make(io.get_executor(), settings_for(cluster));
    run(io, wait_for_leader(*client));
  }
  auto leader = leader_of(cluster);
  // The leader first, so the client's first try goes to the member that dies.
  Settings settings;
  settings.endpoints.push_back(cluster.members()[leader].client_url);
  for (std::size_t i = 0; i < 3; ++i) {
    if (i != leader) settings.endpoints.push_back(cluster.members()[i].client_url);
  }
  auto client = Client::make(io.get_executor(), settings);
  run(io, [&]() -> asio::awaitable<void> {
    co_await client->put("/f/before", "1");
    EXPECT_EQ(client->endpoint(), cluster.members()[leader].client_url);
    cluster.stop(leader);
    auto revision = co_await client->put("/f/after", "2");
    EXPECT_GT(revision, 0);
    EXPECT_NE(client->endpoint(), cluster.members()[leader].client_url);
    auto after = co_await client->get("/f/after");
    EXPECT_EQ(after ? after->value : "", "2");
  }());

  for (std::size_t i = 0; i < 3; ++i) cluster.stop(i);
  Settings short_deadline = settings;
  short_deadline.request_timeout = 1500ms;
  auto hopeless = Client::make(io.get_executor(), short_deadline);
  auto started = std::chrono::steady_clock::now();
  try {
    run(io, hopeless->put("/f/none", "x"));
    ADD_FAILURE() << "a put succeeded with every member stopped";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), Error::Kind::unavailable) << error.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

TEST_F(EtcdTest, AuthenticatesAndRenewsATokenEtcdForgot) {
  EtcdCluster cluster(1);
  {
    auto client = Client::make(io.get_executor(), settings_for(cluster));
    run(io, wait_for_leader(*client));
  }
  const std::string etcdctl = std::string(testing_support::kEtcdctlBinary) + " " + cluster.endpoints_flag();
  run_command(etcdctl + " user add root:s3cret --interactive=false");
  run_command(etcdctl + " auth enable");

  auto anonymous = Client::make(io.get_executor(), settings_for(cluster));
  try {
    run(io, anonymous->put("/a/x", "1"));
    ADD_FAILURE() << "a put without credentials succeeded";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), Error::Kind::auth) << error.what();
  }

  Settings wrong = settings_for(cluster);
  wrong.username = "root";
  wrong.password = "wrong";
  auto refused = Client::make(io.get_executor(), wrong);
  try {
    run(io, refused->put("/a/x", "1"));
    ADD_FAILURE() << "a put with a wrong password succeeded";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), Error::Kind::auth) << error.what();
  }

  Settings right = wrong;
  right.password = "s3cret";
  auto client = Client::make(io.get_executor(), right);
  run(io, [&]() -> asio::awaitable<void> {
    co_await client->put("/a/x", "1");
    auto read = co_await client->get("/a/x");
    EXPECT_EQ(read ? read->value : "", "1");
  }());
  // Turning auth off and on drops every token etcd gave: the next call gets "invalid
  // auth token" and authenticates again.
  run_command(etcdctl + " --user=root:s3cret auth disable");
  run_command(etcdctl + " auth enable");
  run(io, [&]() -> asio::awaitable<void> {
    co_await client->put("/a/x", "2");
    auto read = co_await client->get("/a/x");
    EXPECT_EQ(read ? read->value : "", "2");
  }());
  // A watch refused for a forgotten token authenticates again too (etcd cancels it at
  // creation with the token error as its reason).
  run_command(etcdctl + " --user=root:s3cret auth disable");
  run_command(etcdctl + " auth enable");
  Watcher watcher;
  run(io, [&]() -> asio::awaitable<void> {
    // From revision 1: the history of /a/x arrives as soon as the watch is open.
    watcher.start(io, *client, "/a/", 1);
    bool seen = co_await wait_until([&] { return !watcher.batches.empty() || watcher.done; });
    EXPECT_TRUE(seen);
    EXPECT_FALSE(watcher.done);
    watcher.cancel.emit(asio::cancellation_type::terminal);
    co_await wait_until([&] { return watcher.done; });
  }());
  EXPECT_FALSE(watcher.batches.empty());
}

// A CA, a server certificate for `san` and a client certificate signed by it, made
// by openssl in `dir`.
void make_certificates(const std::filesystem::path& dir, const std::string& san) {
  const std::string in = "cd '" + dir.string() + "' && ";
  const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  run_command(in + "openssl req -x509" + key + " -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca");
  for (std::string name : {"server", "client"}) {
    run_command(in + "openssl req" + key + " -keyout " + name + ".key -out " + name + ".csr -subj /CN=" + name);
    std::string extensions = name == "server" ? "subjectAltName=" + san : "extendedKeyUsage=clientAuth";
    run_command(in + "printf '%s\\n' '" + extensions + "' > " + name + ".ext && openssl x509 -req -in " + name +
                ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile " + name + ".ext -out " + name + ".pem");
  }
}

std::vector<std::string> tls_flags(const std::filesystem::path& dir) {
  return {"--cert-file=" + (dir / "server.pem").string(), "--key-file=" + (dir / "server.key").string(),
          "--client-cert-auth", "--trusted-ca-file=" + (dir / "ca.pem").string()};
}

class EtcdTlsTest : public EtcdTest {
 protected:
  void SetUp() override {
    EtcdTest::SetUp();
    if (IsSkipped()) return;
    certificates = testing_support::make_temp_dir("pullgate-etcd-tls");
  }
  void TearDown() override {
    std::error_code ignored;
    if (!certificates.empty()) std::filesystem::remove_all(certificates, ignored);
  }
  Settings tls_settings(const EtcdCluster& cluster) {
    Settings settings = settings_for(cluster);
    settings.ca_file = (certificates / "ca.pem").string();
    settings.cert_file = (certificates / "client.pem").string();
    settings.key_file = (certificates / "client.key").string();
    return settings;
  }
  void expect_refused(Settings settings) {
    settings.request_timeout = 1000ms;
    auto client = Client::make(io.get_executor(), settings);
    try {
      run(io, client->put("/tls/x", "1"));
      ADD_FAILURE() << "a put succeeded over TLS that should fail";
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), Error::Kind::unavailable) << error.what();
      EXPECT_NE(std::string(error.what()).find("certificate"), std::string::npos) << error.what();
    }
  }
  std::filesystem::path certificates;
};

TEST_F(EtcdTlsTest, VerifiesTheMemberAndShowsAClientCertificate) {
  make_certificates(certificates, "IP:127.0.0.1");
  EtcdCluster cluster(1, tls_flags(certificates));
  ASSERT_TRUE(cluster.members()[0].client_url.starts_with("https://"));
  auto client = Client::make(io.get_executor(), tls_settings(cluster));
  run(io, [&]() -> asio::awaitable<void> {
    co_await wait_for_leader(*client);
    co_await client->put("/tls/x", "1");
    auto read = co_await client->get("/tls/x");
    EXPECT_EQ(read ? read->value : "", "1");
  }());

  // The system's CAs do not know this one.
  Settings system_store = tls_settings(cluster);
  system_store.ca_file.clear();
  expect_refused(system_store);
  // etcd asks for a client certificate.
  Settings anonymous = tls_settings(cluster);
  anonymous.cert_file.clear();
  anonymous.key_file.clear();
  expect_refused(anonymous);
}

// Until the member listens, a refusal would be "connection refused", not the
// certificate's: wait for its port (no leader check can pass with this certificate).
void wait_until_listening(const std::string& url) {
  const auto port = static_cast<unsigned short>(std::stoi(url.substr(url.rfind(':') + 1)));
  asio::io_context io;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    asio::ip::tcp::socket socket(io);
    boost::system::error_code ec;
    socket.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
    if (!ec) return;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << url << " never listened: " << ec.message();
    std::this_thread::sleep_for(50ms);
  }
}

TEST_F(EtcdTlsTest, RefusesACertificateForAnotherHost) {
  make_certificates(certificates, "DNS:etcd.example");
  EtcdCluster cluster(1, tls_flags(certificates));
  wait_until_listening(cluster.members()[0].client_url);
  expect_refused(tls_settings(cluster));
}

}  // namespace
}  // namespace pullgate::cache::etcd
