// The fleet store (cache/fleet.hpp) against a real etcd (Debian's 3.4) on loopback,
// with two replicas' LMDB stores: writes reach the other replica through its watch;
// exception ids are the fleet's; a report ends the shared pending entry; a replica
// back from a restart resumes from its revision, one away past a compaction or
// facing a store behind it reads the whole store again; a mirror joining keeps its
// manual verdicts; with etcd gone writes throw and land nowhere, and the replica is
// no longer in step. Fails where /usr/bin/etcd is not installed.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "cache/fleet.hpp"
#include "cache/meta_store.hpp"
#include "tests/unit/etcd_server.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::cache {
namespace {

using namespace std::chrono_literals;
using testing_support::EtcdCluster;
using testing_support::run_command;

Digest digest(char fill) { return *Digest::parse("sha256:" + std::string(64, fill)); }

VerdictRecord manual(std::string decision, std::string reason) {
  return VerdictRecord{std::move(decision), "manual", {std::move(reason)}, "", "ops", 1, std::nullopt, ""};
}

ExceptionRecord exception(std::string id) {
  ExceptionRecord e;
  e.id = std::move(id);
  e.digest = digest('e').str();
  e.reason = "vetted";
  e.who = "alice";
  e.created_at_ms = 1;
  return e;
}

bool eventually(const std::function<bool()>& ready, std::chrono::milliseconds limit = 15s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing_support::etcd_installed()) << "etcd-server is not installed (deploy/install-deps.sh --test)";
    dir_ = testing_support::make_temp_dir("pullgate-fleet");
    etcd_ = std::make_unique<EtcdCluster>(1);
  }
  void TearDown() override {
    etcd_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::unique_ptr<MetaStore> store(const std::string& name) {
    return MetaStore::open(dir_ / name, 64 << 20);
  }
  FleetSettings settings(const std::string& replica, const EtcdCluster& cluster) {
    FleetSettings s;
    s.etcd.endpoints = cluster.client_urls();
    s.etcd.request_timeout = 3s;
    s.replica_id = replica;
    s.heartbeat = 200ms;
    s.log = [replica](const char* level, const std::string& message) {
      std::fprintf(stderr, "[%s] %s: %s\n", replica.c_str(), level, message.c_str());
    };
    return s;
  }
  std::unique_ptr<Fleet> syncing(MetaStore& meta, const std::string& replica) {
    return syncing(meta, replica, *etcd_);
  }
  std::unique_ptr<Fleet> syncing(MetaStore& meta, const std::string& replica, const EtcdCluster& cluster) {
    auto fleet = Fleet::make(meta, settings(replica, cluster));
    fleet->start_sync();
    EXPECT_TRUE(eventually([&] { return fleet->in_step(); }, 30s)) << fleet->status().last_error;
    return fleet;
  }
  std::int64_t etcd_revision() {
    auto out = run_command(std::string(testing_support::kEtcdctlBinary) + " " + etcd_->endpoints_flag() +
                           " endpoint status -w json");
    return nlohmann::json::parse(out)[0]["Status"]["header"]["revision"].get<std::int64_t>();
  }

  std::filesystem::path dir_;
  std::unique_ptr<EtcdCluster> etcd_;
};

TEST_F(FleetTest, AWriteOnOneReplicaReachesTheOther) {
  auto a_store = store("a"), b_store = store("b");
  auto a = syncing(*a_store, "a");
  auto b = syncing(*b_store, "b");

  a->put_verdict(digest('1'), manual("deny", "CVE-2026-1"));
  EXPECT_TRUE(a_store->get_verdict(digest('1')));  // the writer has it when the call returns
  ASSERT_TRUE(eventually([&] { return b_store->get_verdict(digest('1')).has_value(); }));
  EXPECT_EQ(b_store->get_verdict(digest('1'))->reasons, std::vector<std::string>{"CVE-2026-1"});

  EXPECT_TRUE(b->add_exception(exception("vetted-1")));
  EXPECT_FALSE(a->add_exception(exception("vetted-1")));  // the id is the fleet's
  ASSERT_TRUE(eventually([&] { return a_store->get_exception("vetted-1").has_value(); }));

  EXPECT_TRUE(a->remove_verdict(digest('1')));
  EXPECT_FALSE(a->remove_verdict(digest('1')));
  ASSERT_TRUE(eventually([&] { return !b_store->get_verdict(digest('1')); }));
  EXPECT_TRUE(b->remove_exception("vetted-1"));
  ASSERT_TRUE(eventually([&] { return !a_store->get_exception("vetted-1"); }));

  // The pending queue is shared; a report filed on the other replica ends the wait.
  a_store->add_pending(digest('2'), "up.io/it/app:v1", 100);
  a->offer_pending(digest('2'), *a_store->get_pending(digest('2')));
  ASSERT_TRUE(eventually([&] { return b_store->get_pending(digest('2')).has_value(); }));
  b->put_report(digest('2'), ReportRecord{R"({"counts":{}})", "trivy", 1000, 2000});
  ASSERT_TRUE(eventually([&] { return a_store->get_report(digest('2')) && !a_store->get_pending(digest('2')); }));
  EXPECT_FALSE(b_store->get_pending(digest('2')));

  // Both replicas' heartbeats are seen.
  ASSERT_TRUE(eventually([&] { return a->status().replicas.size() == 2; }));
  EXPECT_TRUE(a->status().replicas.contains("b"));
  EXPECT_EQ(a->status().full_reads, 1u);  // the first sync only
}

TEST_F(FleetTest, ARestartResumesFromTheRevisionItApplied) {
  auto a_store = store("a"), b_store = store("b");
  auto a = syncing(*a_store, "a");
  {
    auto b = syncing(*b_store, "b");
    a->put_verdict(digest('1'), manual("deny", "before"));
    ASSERT_TRUE(eventually([&] { return b_store->get_verdict(digest('1')).has_value(); }));
  }
  const auto left_at = b_store->fleet_revision();
  a->put_verdict(digest('2'), manual("deny", "while b was away"));
  a->remove_verdict(digest('1'));
  auto b = syncing(*b_store, "b");
  EXPECT_TRUE(b_store->get_verdict(digest('2')));
  EXPECT_FALSE(b_store->get_verdict(digest('1')));
  EXPECT_GT(b_store->fleet_revision(), left_at);
  EXPECT_EQ(b->status().full_reads, 0u);  // resumed by the watch
  EXPECT_GE(b->status().batches, 1u);
}

TEST_F(FleetTest, AReplicaAwayPastACompactionReadsTheWholeStoreAgain) {
  auto a_store = store("a"), b_store = store("b");
  auto a = syncing(*a_store, "a");
  {
    auto b = syncing(*b_store, "b");
    a->put_verdict(digest('1'), manual("deny", "before"));
    ASSERT_TRUE(eventually([&] { return b_store->get_verdict(digest('1')).has_value(); }));
  }
  a->remove_verdict(digest('1'));
  a->put_verdict(digest('2'), manual("deny", "while b was away"));
  run_command(std::string(testing_support::kEtcdctlBinary) + " " + etcd_->endpoints_flag() + " compact " +
              std::to_string(etcd_revision()));
  auto b = syncing(*b_store, "b");
  EXPECT_EQ(b->status().full_reads, 1u);
  EXPECT_TRUE(b_store->get_verdict(digest('2')));
  EXPECT_FALSE(b_store->get_verdict(digest('1')));  // deleted where b could not see it
}

TEST_F(FleetTest, AStoreBehindTheReplicaIsReadInFull) {
  auto a_store = store("a");
  {
    auto a = syncing(*a_store, "a");
    for (char c : std::string("123456789")) a->put_verdict(digest(c), manual("deny", "old fleet"));
  }
  EXPECT_GT(a_store->fleet_revision(), 9);
  // A new, empty cluster (etcd restored from nothing): its revisions start again.
  EtcdCluster fresh(1);
  auto a = Fleet::make(*a_store, settings("a", fresh));
  a->start_sync();
  ASSERT_TRUE(eventually([&] { return a->in_step(); }, 30s)) << a->status().last_error;
  EXPECT_EQ(a->status().full_reads, 1u);
  EXPECT_FALSE(a_store->get_verdict(digest('1')));  // the fleet now holds none
}

TEST_F(FleetTest, AMirrorJoiningKeepsItsManualVerdictsAndExceptions) {
  auto a_store = store("a"), b_store = store("b");
  b_store->put_verdict(digest('7'), manual("deny", "set before the fleet"));
  b_store->put_exception(exception("local-1"));
  auto a = syncing(*a_store, "a");
  a->put_verdict(digest('8'), manual("allow", "the fleet's"));
  auto b = syncing(*b_store, "b");
  EXPECT_TRUE(b_store->get_verdict(digest('7')));
  EXPECT_TRUE(b_store->get_verdict(digest('8')));
  ASSERT_TRUE(eventually([&] { return a_store->get_verdict(digest('7')) && a_store->get_exception("local-1"); }));
}

TEST_F(FleetTest, AnAgedReportQueuesItsDigestAgainButANewerOneWins) {
  auto a_store = store("a"), b_store = store("b");
  auto a = syncing(*a_store, "a");
  auto b = syncing(*b_store, "b");
  const ReportRecord old_report{R"({"counts":{}})", "trivy", 1000, 2000};
  a->put_report(digest('5'), old_report);
  ASSERT_TRUE(eventually([&] { return b_store->get_report(digest('5')).has_value(); }));
  // b's gate finds the report it has aged and queues the digest: the fleet takes it.
  b_store->add_pending(digest('5'), "up.io/it/app:v1", 3000);
  b->offer_pending(digest('5'), *b_store->get_pending(digest('5')));
  ASSERT_TRUE(eventually([&] { return a_store->get_pending(digest('5')).has_value(); }));
  // A replica that has not yet seen a newer report does not queue the digest again.
  a->put_report(digest('6'), old_report);
  auto c_store = store("c");  // never synced: it has neither report
  auto c = Fleet::make(*c_store, settings("c", *etcd_));
  c_store->add_pending(digest('6'), "up.io/it/app:v1", 3000);
  c->offer_pending(digest('6'), *c_store->get_pending(digest('6')));
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(a_store->get_pending(digest('6')));
  EXPECT_FALSE(b_store->get_pending(digest('6')));
}

TEST_F(FleetTest, ThePolicyDocumentReachesEveryReplicaThatListens) {
  auto a_store = store("a"), b_store = store("b");
  auto a = syncing(*a_store, "a");
  a->put_policy("first");  // written before b listens: b reads it when it connects
  std::mutex mutex;
  std::vector<std::string> seen;
  auto s = settings("b", *etcd_);
  s.on_policy = [&](const std::string& text) {
    std::lock_guard lock(mutex);
    seen.push_back(text);
  };
  auto b = Fleet::make(*b_store, s);
  b->start_sync();
  ASSERT_TRUE(eventually([&] { return b->in_step(); }, 30s));
  a->put_policy("second");
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mutex);
    return !seen.empty() && seen.back() == "second";
  }));
  std::lock_guard lock(mutex);
  EXPECT_EQ(seen.front(), "first");
}

TEST_F(FleetTest, ClientTokensReachEveryReplicaAndGoWithTheirRemoval) {
  auto a_store = store("a"), b_store = store("b");
  auto a = syncing(*a_store, "a");
  const std::string hash_ci = "sha256:" + std::string(64, 'c'), hash_ops = "sha256:" + std::string(64, 'd');
  ASSERT_TRUE(a->add_token("ci", hash_ci));  // before b listens: b reads it when it connects
  EXPECT_FALSE(a->add_token("ci", hash_ops)) << "a name has one token; a second is refused, not overwritten";
  std::mutex mutex;
  std::vector<std::map<std::string, std::string>> seen;
  auto s = settings("b", *etcd_);
  s.on_tokens = [&](const std::map<std::string, std::string>& tokens) {
    std::lock_guard lock(mutex);
    seen.push_back(tokens);
  };
  auto b = Fleet::make(*b_store, s);
  b->start_sync();
  ASSERT_TRUE(eventually([&] { return b->in_step(); }, 30s));
  auto last = [&] {
    std::lock_guard lock(mutex);
    return seen.empty() ? std::map<std::string, std::string>{{"-", "nothing delivered"}} : seen.back();
  };
  EXPECT_EQ(last(), (std::map<std::string, std::string>{{"ci", hash_ci}}));
  ASSERT_TRUE(a->add_token("ops@corp", hash_ops));
  ASSERT_TRUE(eventually([&] { return last().size() == 2; })) << last().size();
  EXPECT_EQ(last().at("ops@corp"), hash_ops);
  EXPECT_EQ(a->tokens(), last());
  ASSERT_TRUE(a->remove_token("ci"));
  EXPECT_FALSE(a->remove_token("ci"));
  ASSERT_TRUE(eventually([&] { return last().size() == 1; }));
  EXPECT_EQ(last(), (std::map<std::string, std::string>{{"ops@corp", hash_ops}}));
  // Tokens are not records: the full read and the watch leave LMDB as it was.
  EXPECT_EQ(b_store->verdict_count(), 0u);
  EXPECT_TRUE(b_store->list_exceptions().empty());
}

TEST_F(FleetTest, WithEtcdGoneWritesThrowAndLandNowhere) {
  auto a_store = store("a");
  auto a = syncing(*a_store, "a");
  etcd_->stop(0);
  EXPECT_THROW(a->put_verdict(digest('1'), manual("deny", "x")), FleetUnavailable);
  EXPECT_FALSE(a_store->get_verdict(digest('1')));
  try {
    a->add_exception(exception("e-1"));
    ADD_FAILURE() << "no throw";
  } catch (const FleetUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find("the fleet store (etcd) did not take the exception"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(a_store->get_exception("e-1"));
  EXPECT_TRUE(eventually([&] { return !a->in_step(); }));
  EXPECT_FALSE(a->status().reachable);
  EXPECT_FALSE(a->status().last_error.empty());
}

}  // namespace
}  // namespace pullgate::cache
