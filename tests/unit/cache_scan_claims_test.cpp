// Scanners' claims on pending digests (cache/scan_claims.hpp): the same contract for
// this mirror's own book and for the fleet's (etcd leases, against a real etcd 3.4 on
// loopback; failing where /usr/bin/etcd is not installed). One claim per digest; the
// second claimer learns the holder; only the claim's id renews or releases it; a claim
// not renewed expires and the digest is anyone's again; a released claim can be
// taken at once; every claim is listed with its holder. The fleet's book: a claim
// made through one replica is seen, refused and released through another, and a
// filed report ends the claim with the wait.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <variant>

#include "cache/fleet.hpp"
#include "cache/meta_store.hpp"
#include "cache/scan_claims.hpp"
#include "tests/unit/etcd_server.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::cache {
namespace {

using namespace std::chrono_literals;

Digest digest(char fill) { return *Digest::parse("sha256:" + std::string(64, fill)); }

const ScanClaim* taken(const ClaimAnswer& answer) {
  return std::get_if<ScanClaim>(&answer);
}

// The contract, run against a book. `ttl` is the shortest a book honours; `queue`
// makes a digest pending where the book looks.
void claims_contract(ScanClaims& book, std::chrono::seconds ttl,
                     const std::function<void(const Digest&)>& queue = [](const Digest&) {}) {
  queue(digest('1'));
  queue(digest('2'));
  auto first = book.claim(digest('1'), ttl, "scanner-a");
  ASSERT_TRUE(taken(first));
  const std::string id = taken(first)->id;
  EXPECT_EQ(taken(first)->ttl, ttl);

  auto second = book.claim(digest('1'), ttl, "scanner-b");
  ASSERT_TRUE(std::holds_alternative<ClaimedElsewhere>(second));
  EXPECT_EQ(std::get<ClaimedElsewhere>(second).holder, "scanner-a");

  EXPECT_TRUE(taken(book.claim(digest('2'), 60s, "scanner-b")));  // another digest is free
  auto held = book.held();
  EXPECT_EQ(held.size(), 2u);
  EXPECT_EQ(held[digest('1').str()], "scanner-a");
  EXPECT_EQ(held[digest('2').str()], "scanner-b");

  EXPECT_FALSE(book.keep_alive(digest('1'), "not-the-id"));
  EXPECT_FALSE(book.keep_alive(digest('2'), id));  // the id is of another digest's claim
  EXPECT_FALSE(book.release(digest('1'), "12345"));
  auto renewed = book.keep_alive(digest('1'), id);
  ASSERT_TRUE(renewed);
  EXPECT_GE(*renewed, ttl - 1s);

  // Not renewed: gone after its TTL, and the digest is anyone's again.
  auto deadline = std::chrono::steady_clock::now() + ttl + 10s;
  while (book.held().contains(digest('1').str()) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(book.held().contains(digest('1').str()));
  EXPECT_FALSE(book.keep_alive(digest('1'), id));
  EXPECT_FALSE(book.release(digest('1'), id));
  auto again = book.claim(digest('1'), ttl, "scanner-b");
  ASSERT_TRUE(taken(again));
  EXPECT_NE(taken(again)->id, id);

  // Released: free at once.
  EXPECT_TRUE(book.release(digest('1'), taken(again)->id));
  EXPECT_FALSE(book.release(digest('1'), taken(again)->id));
  EXPECT_TRUE(taken(book.claim(digest('1'), ttl, "scanner-c")));
}

TEST(LocalScanClaims, KeepTheContract) {
  auto book = local_scan_claims();
  EXPECT_FALSE(book->remote());
  claims_contract(*book, 1s);
}

TEST(ScanClaimHolder, IsShortPrintableText) {
  EXPECT_TRUE(valid_claim_holder("node-1:4242"));
  EXPECT_FALSE(valid_claim_holder(""));
  EXPECT_FALSE(valid_claim_holder(std::string(129, 'a')));
  EXPECT_FALSE(valid_claim_holder("a\nb"));
  EXPECT_FALSE(valid_claim_holder("a\"b"));
  EXPECT_FALSE(valid_claim_holder("caf\xc3\xa9"));
}

class FleetScanClaims : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing_support::etcd_installed()) << "etcd-server is not installed (deploy/install-deps.sh --test)";
    dir_ = testing_support::make_temp_dir("pullgate-claims");
    etcd_ = std::make_unique<testing_support::EtcdCluster>(1);
  }
  void TearDown() override {
    fleets_.clear();
    stores_.clear();
    etcd_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  Fleet& replica(const std::string& id) {
    stores_.push_back(MetaStore::open(dir_ / id, 64 << 20));
    FleetSettings s;
    s.etcd.endpoints = etcd_->client_urls();
    s.etcd.request_timeout = 3s;
    s.replica_id = id;
    fleets_.push_back(Fleet::make(*stores_.back(), s));
    return *fleets_.back();
  }

  std::filesystem::path dir_;
  std::unique_ptr<testing_support::EtcdCluster> etcd_;
  std::vector<std::unique_ptr<MetaStore>> stores_;
  std::vector<std::unique_ptr<Fleet>> fleets_;
};

TEST_F(FleetScanClaims, KeepTheContract) {
  auto& a = replica("a");
  EXPECT_TRUE(a.scan_claims().remote());
  // Queued on this replica only (as while etcd was out of reach): the claim shares it.
  claims_contract(a.scan_claims(), 2s,  // etcd's shortest lease: 1.5 x its election timeout
                  [&](const Digest& d) { stores_[0]->add_pending(d, "up.io/it/app:v1", 100); });
}

TEST_F(FleetScanClaims, AreOneAcrossReplicasAndEndWithTheReport) {
  auto& a = replica("a");
  auto& b = replica("b");
  EXPECT_TRUE(std::holds_alternative<NotPending>(a.scan_claims().claim(digest('3'), 60s, "scanner-a")));
  stores_[0]->add_pending(digest('3'), "up.io/it/app:v1", 100);
  auto claim = a.scan_claims().claim(digest('3'), 60s, "scanner-a");
  ASSERT_TRUE(taken(claim));
  auto other = b.scan_claims().claim(digest('3'), 60s, "scanner-b");
  ASSERT_TRUE(std::holds_alternative<ClaimedElsewhere>(other));
  EXPECT_EQ(std::get<ClaimedElsewhere>(other).holder, "scanner-a");
  EXPECT_EQ(b.scan_claims().held()[digest('3').str()], "scanner-a");
  EXPECT_TRUE(b.scan_claims().keep_alive(digest('3'), taken(claim)->id));  // a lease is the cluster's

  // The report ends the claim with the wait; the digest is no longer claimable, even
  // through a replica whose LMDB still has it queued and has not seen the report (a
  // claim is checked against etcd).
  b.put_report(digest('3'), ReportRecord{R"({"counts":{}})", "trivy", 1000, 2000});
  EXPECT_FALSE(a.scan_claims().held().contains(digest('3').str()));
  ASSERT_TRUE(stores_[0]->get_pending(digest('3')));  // a does not sync here: still queued in its LMDB
  EXPECT_TRUE(std::holds_alternative<NotPending>(a.scan_claims().claim(digest('3'), 60s, "scanner-a")));
}

TEST_F(FleetScanClaims, WithEtcdGoneAClaimFailsClearly) {
  auto& a = replica("a");
  etcd_->stop(0);
  try {
    a.scan_claims().claim(digest('4'), 60s, "scanner-a");
    ADD_FAILURE() << "no throw";
  } catch (const FleetUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find("did not take the scan claim"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pullgate::cache
