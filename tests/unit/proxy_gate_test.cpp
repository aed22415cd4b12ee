// The gate's per-thread decision memo: every decision is audited and counted, hit
// or not; an entry answers only the request shape it was made for; a write to the
// store (by any process) or a new policy ends it at once. And the Warning header a
// served non-allow decision carries.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/meta_store.hpp"
#include "proxy/telemetry/audit_log.hpp"
#include "proxy/gate/gate.hpp"
#include "proxy/telemetry/metrics.hpp"
#include "tests/unit/stalled_fifo.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::proxy {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

registry::Digest digest(char fill) { return *registry::Digest::parse("sha256:" + std::string(64, fill)); }

policy::Policy parsed(const std::string& document) {
  auto result = policy::parse_policy(document);
  EXPECT_TRUE(result.policy) << (result.errors.empty() ? "" : result.errors.front());
  return result.policy ? *result.policy : policy::Policy{};
}

class GateMemoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("pullgate-gate");
    meta_ = cache::MetaStore::open(dir_ / "lmdb", 64 << 20);
    audit_ = std::make_unique<AuditLog>(dir_ / "audit.log", 0, 2);  // no writer: lines land at once
    gate_ = std::make_unique<Gate>(*meta_, holder_, *audit_, metrics_, false, [this] { return now_; });
  }
  // The gate's clock: tests move it instead of sleeping.
  std::int64_t now_ms() const { return policy::ms_of(now_); }
  policy::TimePoint now_ = policy::time_from_ms(1'800'000'000'000);
  void TearDown() override {
    gate_.reset();
    audit_.reset();
    meta_.reset();
    fs::remove_all(dir_);
  }

  static GateRequest request(std::string_view repository, std::optional<std::string_view> tag,
                             const registry::Digest& d, std::string_view method = "GET",
                             ArtifactKind kind = ArtifactKind::manifest) {
    return GateRequest{kind, "a.io", repository, tag, d, "10.0.0.7:4242", "req-1", method};
  }
  SharedDecision check(std::string_view repository, std::optional<std::string_view> tag, const registry::Digest& d,
                       std::string_view method = "GET", ArtifactKind kind = ArtifactKind::manifest) {
    auto r = request(repository, tag, d, method, kind);
    return kind == ArtifactKind::blob ? gate_->check_blob(r) : gate_->check_manifest(r);
  }

  std::vector<json> audit_lines() {
    std::vector<json> out;
    std::ifstream in(dir_ / "audit.log");
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }

  fs::path dir_;
  std::unique_ptr<cache::MetaStore> meta_;
  PolicyHolder holder_{parsed(R"({"default": {"rules": [{"action": "deny", "repository": "it/bad", "reason": "CVE"}]}})")};
  PullgateMetrics metrics_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<Gate> gate_;
};

TEST_F(GateMemoTest, EveryDecisionIsAuditedWithItsOwnRequestShape) {
  check("it/app", "v1", digest('a'));
  check("it/app", "v1", digest('a'));                // memo hit
  check("it/app", "v1", digest('a'), "HEAD");        // same digest, other method
  check("it/app", std::nullopt, digest('a'));        // by digest
  check("it/app", "v2", digest('a'));                // other tag
  check("it/other", "v1", digest('a'));              // other repository
  EXPECT_EQ(gate_->evaluations(), 1u);  // one digest, one stored verdict

  auto lines = audit_lines();
  ASSERT_EQ(lines.size(), 6u);
  for (auto& l : lines) {
    EXPECT_EQ(l["decision"], "allow");
    EXPECT_EQ(l["client"], "10.0.0.7:4242");
    EXPECT_EQ(l["request_id"], "req-1");
    EXPECT_EQ(l["digest"], digest('a').str());
    EXPECT_EQ(l["policy_version"], holder_.get()->version);
  }
  EXPECT_EQ(lines[1]["tag"], "v1");
  EXPECT_EQ(lines[2]["method"], "HEAD");
  EXPECT_FALSE(lines[3].contains("tag"));
  EXPECT_EQ(lines[4]["tag"], "v2");
  EXPECT_EQ(lines[5]["repository"], "it/other");
  const std::string source = lines[0]["source"];
  EXPECT_EQ(metrics_.gate_decisions.with({"manifest", "allow", "enforce", source}).value(), 6u) << source;
  EXPECT_EQ(metrics_.gate_decision_seconds.snapshot().count, 6u);
}

TEST_F(GateMemoTest, DigestsThatShareTheirLastCharactersStayApart) {
  // Entries are bucketed by the digest's last characters: two digests alike there
  // must still get their own decisions.
  auto good = *registry::Digest::parse("sha256:" + std::string(56, 'a') + std::string(8, 'f'));
  auto other = *registry::Digest::parse("sha256:" + std::string(56, 'b') + std::string(8, 'f'));
  meta_->put_verdict(other, cache::VerdictRecord{"deny", "manual", {"hand-set"}, "", "ops", 1, std::nullopt, ""});
  EXPECT_TRUE(check("it/app", "v1", good)->serve);
  EXPECT_FALSE(check("it/app", "v1", other)->serve);
  EXPECT_TRUE(check("it/app", "v1", good)->serve);
  EXPECT_FALSE(check("it/app", "v1", other)->serve);
}

registry::Digest nth(int i) {
  char hex[65];
  std::snprintf(hex, sizeof hex, "%064x", i);
  return *registry::Digest::parse(std::string("sha256:") + hex);
}

TEST_F(GateMemoTest, EntriesPastTheirSecondAreSweptAsTheTableGrows) {
  // A digest decided once and never asked for again (a new image's) must not stay in
  // memory: within a second, a table that has doubled since its last sweep (from
  // 1,024) drops what is past its second.
  int next = 0;
  while (next < 1024) check("it/app", std::nullopt, nth(next++));
  EXPECT_EQ(metrics_.gate_memo_entries.value(), 1024);
  check("it/app", std::nullopt, nth(next++));  // a sweep: every entry still within its second
  EXPECT_EQ(metrics_.gate_memo_entries.value(), 1025);
  EXPECT_NE(metrics_.render().find("pullgate_gate_memo_entries 1025\n"), std::string::npos);
}

TEST_F(GateMemoTest, EntriesPastTheirSecondAreSweptASecondLater) {
  // One-off decisions at a slow pace (the soak's new image a second) never double a
  // table: they go with the first request a second after the last sweep, so the table
  // holds about the last second's requests, not the floor's worth.
  int next = 0;
  while (next < 500) check("it/app", std::nullopt, nth(next++));
  EXPECT_EQ(metrics_.gate_memo_entries.value(), 500);
  now_ += std::chrono::milliseconds(1500);
  check("it/app", std::nullopt, nth(next++));  // the 500 are past their second
  EXPECT_EQ(metrics_.gate_memo_entries.value(), 1);
  // A table of a few entries is left alone (64 at most wait for their request).
  while (next < 560) check("it/app", std::nullopt, nth(next++));
  now_ += std::chrono::seconds(2);
  check("it/app", std::nullopt, nth(next++));
  EXPECT_EQ(metrics_.gate_memo_entries.value(), 61);
  // A clock stepped back sweeps too (an entry made "later" than now does not count):
  // the 61 go with the first request once the table holds more than 64.
  now_ -= std::chrono::seconds(10);
  for (int i = 0; i < 10; ++i) check("it/app", std::nullopt, nth(next++));
  EXPECT_EQ(metrics_.gate_memo_entries.value(), 10);
}

TEST_F(GateMemoTest, ATableStillMoreThanHalfFullAfterASweepIsCleared) {
  // Within one second every entry counts: the sweeps at 1,024, 2,048, 4,096 and 8,192
  // drop nothing; at 16,384 more than half of the 20,000 entries a table may hold are
  // live, so it is cleared rather than left to grow past its bound. (128 tags of 128
  // digests: few verdicts to store.)
  for (int d = 0; d < 128; ++d)
    for (int t = 0; t < 128; ++t) check("it/app", "t" + std::to_string(t), nth(d));
  EXPECT_EQ(metrics_.gate_memo_entries.value(), 16384);
  check("it/app", "t0", nth(128));
  EXPECT_EQ(metrics_.gate_memo_entries.value(), 1);
}

TEST_F(GateMemoTest, AStoreWriteEndsTheEntryAtOnce) {
  EXPECT_FALSE(gate_->remembers(request("it/app", "v1", digest('a'))));
  EXPECT_TRUE(check("it/app", "v1", digest('a'))->serve);
  // The first decision stored the digest's verdict, a write after the entry was
  // made: the entry counts from the next decision on.
  EXPECT_FALSE(gate_->remembers(request("it/app", "v1", digest('a'))));
  EXPECT_TRUE(check("it/app", "v1", digest('a'))->serve);
  EXPECT_TRUE(gate_->remembers(request("it/app", "v1", digest('a'))));
  EXPECT_FALSE(gate_->remembers(request("it/app", "v1", digest('a'), "HEAD")));  // its own request shape only
  EXPECT_TRUE(check("it/app", "v1", digest('a'))->serve);
  // As `pullgate verdict set` does from another process: the store's generation moves.
  meta_->put_verdict(digest('a'), cache::VerdictRecord{"deny", "manual", {"hand-set"}, "", "ops", 1, std::nullopt, ""});
  EXPECT_FALSE(gate_->remembers(request("it/app", "v1", digest('a'))));
  auto d = check("it/app", "v1", digest('a'));
  EXPECT_FALSE(d->serve);
  EXPECT_EQ(d->source, "manual");
  meta_->remove_verdict(digest('a'));
  EXPECT_TRUE(check("it/app", "v1", digest('a'))->serve);
}

TEST_F(GateMemoTest, WhileTheFleetStoreIsDownADigestNeverDecidedHereIsRefused) {
  // fleet.on_store_down: fail_closed. A digest this replica has a verdict for follows
  // it; one it never decided may be denied elsewhere in the fleet: refused, not stored.
  bool down = true;
  std::vector<registry::Digest> queued;
  gate_->set_fleet_hooks([&down] { return down; }, [&queued](const registry::Digest& d) { queued.push_back(d); });
  gate_->set_replica("edge-1");
  meta_->put_verdict(digest('b'), cache::VerdictRecord{"allow", "manual", {"vetted"}, "", "ops", 1, std::nullopt, ""});
  const auto stored_before = meta_->verdict_count();

  auto unknown = check("it/app", "v1", digest('a'));
  EXPECT_FALSE(unknown->serve);
  EXPECT_EQ(unknown->decision, policy::Decision::deny);
  EXPECT_EQ(unknown->source, "fleet");
  ASSERT_EQ(unknown->reasons.size(), 1u);
  EXPECT_NE(unknown->reasons[0].find("fleet.on_store_down: fail_closed"), std::string::npos) << unknown->reasons[0];
  EXPECT_EQ(meta_->verdict_count(), stored_before);  // nothing stored
  EXPECT_TRUE(check("it/app", "v1", digest('b'))->serve);

  down = false;
  now_ += std::chrono::seconds(2);  // past the memo's second
  EXPECT_TRUE(check("it/app", "v1", digest('a'))->serve);
  EXPECT_EQ(meta_->verdict_count(), stored_before + 1);  // decided and stored now
  down = true;
  now_ += std::chrono::seconds(2);
  EXPECT_TRUE(check("it/app", "v1", digest('a'))->serve);  // known here: its verdict stands
  EXPECT_FALSE(check("it/bad", "v1", digest('c'))->serve);
  EXPECT_TRUE(queued.empty());  // this policy asks for no scans

  auto lines = audit_lines();
  ASSERT_EQ(lines.size(), 5u);
  for (auto& l : lines) EXPECT_EQ(l["replica"], "edge-1");
  EXPECT_EQ(lines[0]["source"], "fleet");
}

TEST_F(GateMemoTest, AnEntryEndsWhenItsVerdictExpires) {
  // A remembered decision counts for a second at most, and never past the expiry of
  // the verdict it came from.
  meta_->put_verdict(digest('a'), cache::VerdictRecord{"deny", "manual", {"briefly"}, "", "ops", now_ms(),
                                                       now_ms() + 300, ""});
  EXPECT_FALSE(check("it/app", "v1", digest('a'))->serve);
  EXPECT_FALSE(check("it/app", "v1", digest('a'))->serve);  // remembered
  now_ += std::chrono::milliseconds(299);
  EXPECT_FALSE(check("it/app", "v1", digest('a'))->serve);  // remembered up to the expiry
  EXPECT_TRUE(gate_->remembers(request("it/app", "v1", digest('a'))));
  now_ += std::chrono::milliseconds(1);
  EXPECT_FALSE(gate_->remembers(request("it/app", "v1", digest('a'))));
  EXPECT_TRUE(check("it/app", "v1", digest('a'))->serve);
}

TEST_F(GateMemoTest, AChildServedThroughAnIndexIsRememberedNoLongerThanTheIndexVerdict) {
  meta_->add_references(digest('e'), {digest('f')});
  meta_->mark_seen(digest('e'), "a.io", "it/app");
  meta_->put_verdict(digest('e'), cache::VerdictRecord{"allow", "manual", {"briefly"}, "", "ops", now_ms(),
                                                       now_ms() + 300, ""});
  EXPECT_TRUE(check("it/app", std::nullopt, digest('f'))->serve);  // the child's verdict stored
  EXPECT_TRUE(check("it/app", std::nullopt, digest('f'))->serve);  // remembered from here
  const auto evaluations = gate_->evaluations();
  EXPECT_TRUE(check("it/app", std::nullopt, digest('f'))->serve);
  EXPECT_EQ(gate_->evaluations(), evaluations);
  now_ += std::chrono::milliseconds(300);
  // The index's verdict expired: the child is decided again, and with it the index.
  EXPECT_TRUE(check("it/app", std::nullopt, digest('f'))->serve);
  EXPECT_EQ(gate_->evaluations(), evaluations + 1);
}

TEST_F(GateMemoTest, ANewPolicyEndsTheEntryAtOnce) {
  EXPECT_TRUE(check("it/app", "v1", digest('a'))->serve);
  EXPECT_TRUE(check("it/app", "v1", digest('a'))->serve);
  EXPECT_TRUE(gate_->remembers(request("it/app", "v1", digest('a'))));
  holder_.set(parsed(R"({"default": {"rules": [{"action": "deny", "repository": "it/app", "reason": "retired"}]}})"));
  EXPECT_FALSE(gate_->remembers(request("it/app", "v1", digest('a'))));
  auto d = check("it/app", "v1", digest('a'));
  EXPECT_FALSE(d->serve);
  EXPECT_EQ(d->reasons.size(), 1u);
  auto lines = audit_lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["policy_version"], lines[1]["policy_version"]);
  EXPECT_NE(lines[1]["policy_version"], lines[2]["policy_version"]);
}

TEST_F(GateMemoTest, AVerdictComputedInOneScopeDoesNotDecideAnother) {
  // One image in a lenient and a strict scope: the lenient scope's stored allow must
  // not skip the strict scope's `unknown: deny` (or its report and signal checks).
  holder_.set(parsed(R"({"scopes": [{"name": "dev", "repository": "dev/**", "unknown": "evaluate", "fallback": "allow"},
                                    {"name": "prod", "repository": "prod/**", "unknown": "deny"}]})"));
  EXPECT_TRUE(check("dev/app", "v1", digest('a'))->serve);
  auto stored = meta_->get_verdicts_in(digest('a'), "dev").computed;
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->scope, "dev");
  auto strict = check("prod/app", "v1", digest('a'));
  EXPECT_FALSE(strict->serve);
  EXPECT_EQ(strict->scope, "prod");
  EXPECT_EQ(strict->source, "unknown");
  // Each scope keeps its own verdict, and each decides from it.
  EXPECT_EQ(meta_->get_verdicts_in(digest('a'), "dev").computed->decision, "allow");
  EXPECT_EQ(meta_->get_verdicts_in(digest('a'), "prod").computed->decision, "deny");
  EXPECT_EQ(gate_->evaluations(), 2u);
  EXPECT_TRUE(check("dev/app", "v1", digest('a'))->serve);
  EXPECT_EQ(gate_->evaluations(), 2u);
  EXPECT_FALSE(check("prod/app", std::nullopt, digest('a'))->serve);
  // A blob of the image, asked for in the strict scope, follows the strict decision.
  meta_->add_references(digest('a'), {digest('b')});
  meta_->mark_seen(digest('a'), "a.io", "dev/app");
  meta_->mark_seen(digest('a'), "a.io", "prod/app");
  EXPECT_FALSE(check("prod/app", std::nullopt, digest('b'), "GET", ArtifactKind::blob)->serve);
  EXPECT_TRUE(check("dev/app", std::nullopt, digest('b'), "GET", ArtifactKind::blob)->serve);
}

TEST_F(GateMemoTest, ARuntimeExceptionWhoseDigestDoesNotReadAppliesToNothing) {
  holder_.set(parsed(R"({"scopes": [{"name": "prod", "repository": "prod/**", "unknown": "deny"}]})"));
  cache::ExceptionRecord record;
  record.id = "RT-bad";
  record.digest = "sha256:NOT-A-DIGEST";  // read as "any digest" it would open prod/** to all
  record.repository = "prod/**";
  record.reason = "rollback";
  record.who = "bob";
  meta_->put_exception(record);
  EXPECT_FALSE(check("prod/app", "v1", digest('a'))->serve);
  record.id = "RT-good";
  record.digest = digest('a').str();
  meta_->put_exception(record);
  EXPECT_TRUE(check("prod/app", "v1", digest('a'))->serve);
  EXPECT_FALSE(check("prod/app", "v1", digest('c'))->serve);
}

TEST_F(GateMemoTest, EachScopeKeepsTheVerdictItMadeFromATag) {
  // Two scopes that allow by tag: the image pulled by tag in both, then its blobs in
  // both. Blobs are decided without a tag, from each scope's stored verdict.
  holder_.set(parsed(R"({"scopes": [
      {"name": "a", "repository": "a/**", "fallback": "deny", "rules": [{"action": "allow", "tag": "v*"}]},
      {"name": "b", "repository": "b/**", "fallback": "deny", "rules": [{"action": "allow", "tag": "v*"}]}]})"));
  meta_->add_references(digest('a'), {digest('b')});
  meta_->mark_seen(digest('a'), "a.io", "a/app");
  meta_->mark_seen(digest('a'), "a.io", "b/app");
  EXPECT_TRUE(check("a/app", "v1", digest('a'))->serve);
  EXPECT_TRUE(check("b/app", "v1", digest('a'))->serve);
  EXPECT_TRUE(check("a/app", std::nullopt, digest('b'), "GET", ArtifactKind::blob)->serve);
  EXPECT_TRUE(check("b/app", std::nullopt, digest('b'), "GET", ArtifactKind::blob)->serve);
  EXPECT_TRUE(check("b/app", std::nullopt, digest('a'))->serve);  // by digest, after the tag
  // A manual verdict counts in every scope; removing it leaves the computed ones.
  meta_->put_verdict(digest('a'), cache::VerdictRecord{"deny", "manual", {"ops"}, "", "ops", 1, std::nullopt, ""});
  EXPECT_FALSE(check("a/app", "v1", digest('a'))->serve);
  EXPECT_FALSE(check("b/app", "v1", digest('a'))->serve);
  EXPECT_TRUE(meta_->remove_computed_verdicts(digest('a')));
  EXPECT_EQ(meta_->get_verdict(digest('a'))->source, "manual");
  EXPECT_TRUE(meta_->remove_verdict(digest('a')));
  EXPECT_FALSE(meta_->get_verdict(digest('a')));
  EXPECT_FALSE(meta_->remove_verdict(digest('a')));
}

TEST_F(GateMemoTest, ABlobEntryIsNotAManifestEntry) {
  // A manifest allowed by digest 'a', and a blob request for the same digest string:
  // the blob rule (known only from manifests seen) decides the blob, not the memo.
  EXPECT_TRUE(check("it/app", std::nullopt, digest('a'))->serve);
  auto blob = check("it/app", std::nullopt, digest('a'), "GET", ArtifactKind::blob);
  EXPECT_FALSE(blob->serve);
  EXPECT_EQ(audit_lines().back()["kind"], "blob");
}

TEST_F(GateMemoTest, AServedWarningCarriesItsReasonsInOneQuotedString) {
  // Reasons come from policy files, scanner reports and hand-set verdicts: quotes,
  // backslashes and control characters must not end the quoted-string or the line.
  meta_->put_verdict(digest('a'), cache::VerdictRecord{"warn", "manual", {"say \"no\" to C:\\temp", "a\r\nX-Evil: 1"},
                                                       "", "ops", 1, std::nullopt, ""});
  auto d = check("it/app", "v1", digest('a'));
  EXPECT_TRUE(d->serve);
  EXPECT_EQ(d->warning, "299 pullgate \"manual verdict: warn (say 'no' to C:'temp; a  X-Evil: 1)\"");
  // Allowed, or refused: no Warning.
  EXPECT_TRUE(check("it/other", "v1", digest('b'))->warning.empty());
  auto refused = check("it/bad", "v1", digest('c'));
  EXPECT_FALSE(refused->serve);
  EXPECT_TRUE(refused->warning.empty());
}

// With the audit queue full (its disk stalled), a decision is never served unaudited
// unless the config says so: by default the gate answers with a refusal the mirror
// turns into a 503 and counts it; with serve_unaudited it serves and counts the line
// as dropped. Either way, once the disk is back, decisions are audited again.
TEST(GateAuditFull, RefusesOrServesAndCountsWhenTheAuditQueueIsFull) {
  for (bool serve_unaudited : {false, true}) {
    SCOPED_TRACE(serve_unaudited ? "serve" : "refuse");
    auto dir = testing_support::make_temp_dir("pullgate-gate-audit-full");
    auto meta = cache::MetaStore::open(dir / "lmdb", 64 << 20);
    PolicyHolder holder{default_policy()};
    PullgateMetrics metrics;
    testing_support::StalledFifo fifo(dir / "audit.fifo");
    {
      AuditLog audit(fifo.path(), 0, 2, 16 * 1024);
      audit.start_writer();
      Gate gate(*meta, holder, audit, metrics, serve_unaudited);
      const auto d = digest('a');
      const GateRequest request{ArtifactKind::manifest, "a.io", "it/app", "v1", d, "10.0.0.7:4242", "req-1", "GET"};
      EXPECT_TRUE(gate.check_manifest(request)->serve);  // audited: the writer takes it and stalls
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (audit.queued_bytes() > 0) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the writer never took the line";
        std::this_thread::yield();
      }
      for (int i = 0; i < 100'000 && audit.write_line("{\"filler\":true}\n"); ++i) {
      }
      auto full = gate.check_manifest(request);
      if (serve_unaudited) {
        EXPECT_TRUE(full->serve);
        EXPECT_FALSE(full->audit_unavailable);
        EXPECT_EQ(metrics.audit_lines_dropped.value(), 1u);
        EXPECT_EQ(metrics.audit_refused.value(), 0u);
      } else {
        EXPECT_FALSE(full->serve);
        EXPECT_TRUE(full->audit_unavailable);
        EXPECT_EQ(metrics.audit_refused.value(), 1u);
        EXPECT_EQ(metrics.audit_lines_dropped.value(), 0u);
      }
      fifo.drain();
      // Until a decision is audited again: neither refused nor served with its line dropped.
      for (;;) {
        const auto dropped = metrics.audit_lines_dropped.value();
        if (!gate.check_manifest(request)->audit_unavailable && metrics.audit_lines_dropped.value() == dropped) break;
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the writer never caught up";
        std::this_thread::yield();
      }
    }
    // The first decision and those after the disk came back are in the log, whole.
    const auto& lines = fifo.received();
    const std::string line_end = "\"request_id\":\"req-1\"}\n";
    const auto first = lines.find(line_end);
    ASSERT_NE(first, std::string::npos);
    EXPECT_NE(lines.find(line_end, first + 1), std::string::npos);
    fs::remove_all(dir);
  }
}

// The bypass reason sends operators to a document; it must be in the repository.
TEST_F(GateMemoTest, TheBypassReasonCitesADocumentThatExists) {
  const auto manifest = digest('c');
  const auto layer = digest('d');
  meta_->add_references(manifest, {layer});
  meta_->mark_seen(manifest, "a.io", "it/bad");
  EXPECT_FALSE(check("it/bad", "v1", manifest)->serve);
  auto blob = request("it/bad", std::nullopt, layer, "GET", ArtifactKind::blob);
  blob.via_ns = true;
  auto decision = gate_->check_blob(blob);
  ASSERT_TRUE(decision->bypass_suspected);
  std::string reasons;
  for (const auto& r : decision->reasons) reasons += r + "\n";
  std::smatch cited;
  ASSERT_TRUE(std::regex_search(reasons, cited, std::regex(R"(see (docs/[A-Za-z0-9_./-]+\.md))"))) << reasons;
  EXPECT_TRUE(fs::is_regular_file(fs::path(PULLGATE_SOURCE_DIR) / cited[1].str()))
      << cited[1] << " is cited by the reason but not in the repository";
}

// The status page's recent refusals: every refusal and warning as audited (image,
// reasons, client, time), memo hits included; allows never; bypass alarms apart.
TEST_F(GateMemoTest, RefusalsAndWarningsAreKeptForTheStatusPageAllowsAreNot) {
  check("it/app", "v1", digest('a'));
  check("it/app", "v1", digest('a'));
  EXPECT_TRUE(gate_->recent().decisions().empty());
  EXPECT_FALSE(check("it/bad", "v1", digest('b'))->serve);
  now_ += std::chrono::seconds(3);
  EXPECT_FALSE(check("it/bad", "v1", digest('b'))->serve);  // a memo hit is a refusal too
  auto kept = gate_->recent().decisions();
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(gate_->recent().added(), 2u);
  const auto& newest = kept.front();
  EXPECT_EQ(newest.at_ms, now_ms());
  EXPECT_EQ(kept.back().at_ms, now_ms() - 3000);
  EXPECT_EQ(newest.client, "10.0.0.7:4242");
  EXPECT_EQ(newest.upstream, "a.io");
  EXPECT_EQ(newest.repository, "it/bad");
  EXPECT_EQ(newest.tag, "v1");
  EXPECT_EQ(newest.digest, digest('b').str());
  EXPECT_EQ(newest.kind, "manifest");
  EXPECT_EQ(newest.decision, "deny");
  EXPECT_FALSE(newest.served);
  EXPECT_EQ(newest.reasons, std::vector<std::string>{"rule 1 of scope default denies it/bad:v1: CVE"});
  EXPECT_EQ(newest.policy_version, holder_.get()->version);
  EXPECT_TRUE(gate_->recent().bypass_alarms().empty());

  // A blob of the refused manifest, asked for through ?ns= by the same client: an alarm.
  const auto layer = digest('d');
  meta_->add_references(digest('b'), {layer});
  meta_->mark_seen(digest('b'), "a.io", "it/bad");
  EXPECT_FALSE(check("it/bad", "v1", digest('b'))->serve);
  auto blob = request("it/bad", std::nullopt, layer, "GET", ArtifactKind::blob);
  blob.via_ns = true;
  ASSERT_TRUE(gate_->check_blob(blob)->bypass_suspected);
  auto alarms = gate_->recent().bypass_alarms();
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms.front().digest, layer.str());
  EXPECT_EQ(alarms.front().kind, "blob");
  EXPECT_EQ(gate_->recent().decisions().front().digest, layer.str());
}

// The real store, with a hook called before each verdict is stored: a test can hold
// one evaluation there, in the middle of a first decision.
class HookedStore final : public cache::MetaStore {
  using Digest = registry::Digest;

 public:
  explicit HookedStore(cache::MetaStore& real) : real_(real) {}
  std::function<void(const registry::Digest&)> before_put_verdict;

  void put_verdict(const Digest& d, const cache::VerdictRecord& r) override {
    if (before_put_verdict) before_put_verdict(d);
    real_.put_verdict(d, r);
  }
  std::optional<cache::TagRecord> get_tag(std::string_view u, std::string_view r, std::string_view t) override {
    return real_.get_tag(u, r, t);
  }
  void put_tag(std::string_view u, std::string_view r, std::string_view t, const cache::TagRecord& v) override {
    real_.put_tag(u, r, t, v);
  }
  std::optional<cache::ManifestRecord> get_manifest(const Digest& d) override { return real_.get_manifest(d); }
  void put_manifest(const Digest& d, const cache::ManifestRecord& r) override { real_.put_manifest(d, r); }
  std::optional<cache::BlobRecord> get_blob(const Digest& d) override { return real_.get_blob(d); }
  void put_blob(const Digest& d, const cache::BlobRecord& r) override { real_.put_blob(d, r); }
  void remove_blob(const Digest& d) override { real_.remove_blob(d); }
  std::optional<cache::CachedResponse> get_response(std::string_view k) override { return real_.get_response(k); }
  void put_response(std::string_view k, const cache::CachedResponse& r) override { real_.put_response(k, r); }
  std::optional<cache::VerdictRecord> get_verdict(const Digest& d) override { return real_.get_verdict(d); }
  ScopeVerdicts get_verdicts_in(const Digest& d, std::string_view s) override { return real_.get_verdicts_in(d, s); }
  bool remove_verdict(const Digest& d) override { return real_.remove_verdict(d); }
  bool remove_computed_verdicts(const Digest& d) override { return real_.remove_computed_verdicts(d); }
  std::vector<std::pair<Digest, cache::VerdictRecord>> list_verdicts(const cache::VerdictFilter& f) override {
    return real_.list_verdicts(f);
  }
  void add_references(const Digest& m, const std::vector<Digest>& r) override { real_.add_references(m, r); }
  std::vector<Digest> referenced_by(const Digest& d, std::size_t l) override { return real_.referenced_by(d, l); }
  using cache::MetaStore::mark_seen;
  void mark_seen(std::span<const Digest> m, std::string_view u, std::string_view r) override {
    real_.mark_seen(m, u, r);
  }
  bool seen_in(const Digest& m, std::string_view u, std::string_view r) override { return real_.seen_in(m, u, r); }
  std::vector<StoredTag> list_tags() override { return real_.list_tags(); }
  std::vector<std::pair<std::string, std::string>> seen_where(const Digest& m, std::size_t l) override {
    return real_.seen_where(m, l);
  }
  void write(const cache::ManifestBatch& b) override { real_.write(b); }
  std::vector<Digest> referenced_by_in(const Digest& d, std::string_view u, std::string_view r,
                                       std::size_t l) override {
    return real_.referenced_by_in(d, u, r, l);
  }
  std::optional<cache::ExceptionRecord> get_exception(std::string_view id) override { return real_.get_exception(id); }
  void put_exception(const cache::ExceptionRecord& r) override { real_.put_exception(r); }
  bool remove_exception(std::string_view id) override { return real_.remove_exception(id); }
  std::vector<cache::ExceptionRecord> list_exceptions() override { return real_.list_exceptions(); }
  std::optional<cache::ReportRecord> get_report(const Digest& d) override { return real_.get_report(d); }
  void put_report(const Digest& d, const cache::ReportRecord& r) override { real_.put_report(d, r); }
  bool remove_report(const Digest& d) override { return real_.remove_report(d); }
  std::vector<cache::VexRecord> vex_for(const Digest& d) override { return real_.vex_for(d); }
  bool put_vex(const Digest& d, const cache::VexRecord& r) override { return real_.put_vex(d, r); }
  std::size_t remove_vex(const Digest& d, std::string_view name) override { return real_.remove_vex(d, name); }
  std::optional<cache::SignalRecord> get_signals(const Digest& d, std::string_view s) override {
    return real_.get_signals(d, s);
  }
  void put_signals(const Digest& d, std::string_view s, const cache::SignalRecord& r) override {
    real_.put_signals(d, s, r);
  }
  void add_pending(const Digest& d, std::string_view r, std::int64_t n) override { real_.add_pending(d, r, n); }
  std::optional<cache::PendingRecord> get_pending(const Digest& d) override { return real_.get_pending(d); }
  bool remove_pending(const Digest& d) override { return real_.remove_pending(d); }
  std::vector<std::pair<Digest, cache::PendingRecord>> list_pending(std::size_t l) override {
    return real_.list_pending(l);
  }
  std::uint64_t generation() override { return real_.generation(); }
  std::size_t stale_readers_cleared() const override { return real_.stale_readers_cleared(); }
  std::vector<long> reader_pids() override { return real_.reader_pids(); }
  cache::MapUsage map_usage() override { return real_.map_usage(); }
  void on_map_event(std::function<void(const cache::MapEvent&)> l) override { real_.on_map_event(std::move(l)); }
  std::uint64_t manifest_count() override { return real_.manifest_count(); }
  std::uint64_t blob_count() override { return real_.blob_count(); }
  std::uint64_t verdict_count() override { return real_.verdict_count(); }
  std::uint64_t report_count() override { return real_.report_count(); }
  std::uint64_t pending_count() override { return real_.pending_count(); }
  std::size_t import_records(const cache::ImportBatch& batch) override { return real_.import_records(batch); }
  void put_pull_times(std::span<const cache::PullTime> t) override { real_.put_pull_times(t); }
  std::optional<std::int64_t> get_pull_time(std::string_view k) override { return real_.get_pull_time(k); }
  std::vector<cache::PullTime> list_pull_times() override { return real_.list_pull_times(); }
  void for_each_manifest(const std::function<void(const Digest&, const cache::ManifestRecord&)>& v) override {
    real_.for_each_manifest(v);
  }
  std::vector<std::pair<Digest, cache::BlobRecord>> list_blobs() override { return real_.list_blobs(); }
  std::vector<StoredResponse> list_responses() override { return real_.list_responses(); }
  void remove_cached(const cache::EvictionBatch& b) override { real_.remove_cached(b); }
  bool remove_blob_if(const Digest& d, std::int64_t at) override { return real_.remove_blob_if(d, at); }
  RecordsRemoved remove_orphan_manifest_records(std::int64_t before) override {
    return real_.remove_orphan_manifest_records(before);
  }
  RecordsRemoved remove_records_of_other_scopes(const std::vector<std::string>& live) override {
    return real_.remove_records_of_other_scopes(live);
  }
  std::optional<cache::PinRecord> get_pin(std::string_view pin) override { return real_.get_pin(pin); }
  bool add_pin(const cache::PinRecord& r) override { return real_.add_pin(r); }
  bool remove_pin(std::string_view pin) override { return real_.remove_pin(pin); }
  std::vector<cache::PinRecord> list_pins() override { return real_.list_pins(); }
  cache::FleetApplied apply_fleet(const cache::FleetBatch& b) override { return real_.apply_fleet(b); }
  std::int64_t fleet_revision() override { return real_.fleet_revision(); }

 private:
  cache::MetaStore& real_;
};

// A latch with a bounded wait: a test that would deadlock fails instead.
class Latch {
 public:
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  bool wait(std::chrono::seconds limit) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

TEST_F(GateMemoTest, FirstEvaluationsOfDifferentDigestsRunSideBySide) {
  // Digest 'a' is evaluated on a thread that stops just before storing its verdict
  // and waits there until digest 'b' has been decided on this thread. Had 'a' held
  // every evaluation up (one lock for all digests), 'b' could not be decided until
  // 'a' gave up waiting.
  HookedStore hooked(*meta_);
  Gate gate(hooked, holder_, *audit_, metrics_);
  Latch a_evaluating, b_decided;
  bool b_decided_while_a_waited = false;
  hooked.before_put_verdict = [&](const registry::Digest& d) {
    if (d != digest('a')) return;
    a_evaluating.open();
    b_decided_while_a_waited = b_decided.wait(std::chrono::seconds(20));
  };
  std::thread first([&] { gate.check_manifest(request("it/app", "v1", digest('a'))); });
  ASSERT_TRUE(a_evaluating.wait(std::chrono::seconds(20)));
  EXPECT_TRUE(gate.check_manifest(request("it/app", "v1", digest('b')))->serve);
  b_decided.open();
  first.join();
  EXPECT_TRUE(b_decided_while_a_waited);
  EXPECT_EQ(gate.evaluations(), 2u);
}

TEST_F(GateMemoTest, ConcurrentFirstEvaluationsOfOneDigestShareOne) {
  // Digest 'a' is held just before its verdict is stored while eight more first
  // decisions of it start: they wait for it and take its stored verdict (without the
  // hold, those that read before the store would evaluate again).
  HookedStore hooked(*meta_);
  Gate gate(hooked, holder_, *audit_, metrics_);
  Latch a_evaluating, others_started;
  std::atomic<int> stores{0};
  hooked.before_put_verdict = [&](const registry::Digest&) {
    if (++stores > 1) return;
    a_evaluating.open();
    others_started.wait(std::chrono::seconds(20));
  };
  std::thread first([&] { gate.check_manifest(request("it/app", "v1", digest('a'))); });
  ASSERT_TRUE(a_evaluating.wait(std::chrono::seconds(20)));
  std::vector<std::thread> others;
  for (int i = 0; i < 8; ++i)
    others.emplace_back([&] { EXPECT_TRUE(gate.check_manifest(request("it/app", "v1", digest('a')))->serve); });
  others_started.open();
  first.join();
  for (auto& t : others) t.join();
  EXPECT_EQ(gate.evaluations(), 1u);
  EXPECT_EQ(stores.load(), 1);
}

}  // namespace
}  // namespace pullgate::proxy
