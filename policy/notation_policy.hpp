#pragma once
// A scope's Notation statements applied to one signature envelope: the trust each
// statement names (its stores' certificates by type) and the first statement that
// accepts the envelope. The glue between the policy document and
// policy/notation.hpp's verifier; pure, as both are.
#include <optional>
#include <string_view>

#include "policy/notation.hpp"
#include "policy/policy.hpp"
#include "policy/signature.hpp"

namespace pullgate::policy {

// The trust one statement names: each of its stores' certificates under the store's
// type, its trusted identities, level and timestamp rule. A store the policy does not
// hold (or not read yet) adds nothing.
notation::NotationTrust notation_trust(const Policy& policy, const NotationStatement& statement);

struct NotationCheck {
  // valid: key is "notation <signer subject>" and detail says who signed, when, by
  // which statement's stores, and what was only logged; otherwise detail is the
  // refusal (each statement's, when there are several).
  SignatureCheck check;
  std::optional<TimePoint> valid_until;  // NotationVerified::valid_until of the accepting statement
};

// The envelope (a Notation signature artifact's layer of `media_type`) checked against
// each of `signatures.notation`'s statements in order, at `now`; the first that
// accepts it decides.
NotationCheck verify_notation_for(const Policy& policy, const SignaturePolicy& signatures, std::string_view media_type,
                                  std::string_view envelope, const registry::Digest& manifest, TimePoint now);

}  // namespace pullgate::policy
