// The policy document (policy/policy.hpp), from a file or the fleet store: parsed
// into a policy or refused with one-line errors, never half of each; a parsed policy
// decides.
#include "policy/policy.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::policy;
using pullgate::fuzz::one_line;
using pullgate::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto document = pullgate::fuzz::as_text(data, size);
  const auto result = parse_policy(document);
  require(result.policy.has_value() == result.errors.empty(), "a policy exactly when there are no errors");
  for (const auto& line : result.errors) require(one_line(line), "one-line errors", line);
  for (const auto& line : result.warnings) require(one_line(line), "one-line warnings", line);
  if (!result.policy) return 0;

  static const auto digest = *pullgate::registry::Digest::parse("sha256:" + std::string(64, 'a'));
  const Policy& policy = *result.policy;
  for (const auto& [upstream, repository] : {std::pair{"docker.io", "library/nginx"}, {"ghcr.io", "org/app/x"}}) {
    const Scope& scope = scope_for(policy, upstream, repository);
    (void)can_refuse(scope);
    for (const auto* tag : {"latest", "1.25"}) {
      const Subject subject{upstream, repository, std::string(tag), digest};
      const auto outcome = evaluate(policy, subject, std::nullopt, TimePoint{} + std::chrono::hours(500'000));
      require(outcome.scope == scope.name, "the outcome names the scope that decided", outcome.scope);
      for (const auto& reason : outcome.reasons) require(one_line(reason), "one-line reasons", reason);
      if (outcome.decision == Decision::deny && outcome.mode == Mode::enforce)
        require(!outcome.serve, "an enforced deny is not served");
    }
  }
  return 0;
}
