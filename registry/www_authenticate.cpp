#include "registry/www_authenticate.hpp"

namespace pullgate::registry {
namespace {

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token68_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A cursor over the header; every read either advances past what it consumed or
// leaves the position unchanged and reports failure.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }
  std::size_t position() const { return pos_; }
  void rewind(std::size_t pos) { pos_ = pos; }

  void skip_ows() {
    while (!at_end() && (peek() == ' ' || peek() == '\t')) ++pos_;
  }

  // Empty list elements are allowed (RFC 9110 section 5.6.1.2).
  void skip_ows_and_commas() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == ',')) ++pos_;
  }

  std::string_view token() {
    const auto start = pos_;
    while (!at_end() && is_tchar(peek())) ++pos_;
    return text_.substr(start, pos_ - start);
  }

  std::optional<std::string> quoted_string() {
    const auto start = pos_;
    if (at_end() || peek() != '"') return std::nullopt;
    ++pos_;
    std::string value;
    while (!at_end()) {
      const auto c = static_cast<unsigned char>(peek());
      ++pos_;
      if (c == '"') return value;
      if (c == '\\') {
        if (at_end()) break;
        const auto escaped = static_cast<unsigned char>(peek());
        ++pos_;
        if (escaped != '\t' && (escaped < 0x20 || escaped == 0x7f)) break;
        value.push_back(static_cast<char>(escaped));
        continue;
      }
      if (c != '\t' && (c < 0x20 || c == 0x7f)) break;
      value.push_back(static_cast<char>(c));
    }
    pos_ = start;  // unterminated or a control character
    return std::nullopt;
  }

  // auth-param = token BWS "=" BWS ( token / quoted-string )
  std::optional<std::pair<std::string, std::string>> auth_param() {
    const auto start = pos_;
    const auto name = token();
    if (!name.empty()) {
      skip_ows();
      if (!at_end() && peek() == '=') {
        ++pos_;
        skip_ows();
        if (!at_end() && peek() == '"') {
          if (auto value = quoted_string()) return std::pair{lower(name), std::move(*value)};
        } else if (const auto value = token(); !value.empty()) {
          return std::pair{lower(name), std::string(value)};
        }
      }
    }
    pos_ = start;
    return std::nullopt;
  }

  // token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
  std::string_view token68() {
    const auto start = pos_;
    while (!at_end() && is_token68_char(peek())) ++pos_;
    if (pos_ == start) return {};
    while (!at_end() && peek() == '=') ++pos_;
    return text_.substr(start, pos_ - start);
  }

  // True at the end of a list element: end of input or a comma after OWS.
  bool at_element_end() {
    skip_ows();
    return at_end() || peek() == ',';
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

std::optional<std::string> Challenge::param(std::string_view name) const {
  const auto it = params.find(lower(name));
  if (it == params.end()) return std::nullopt;
  return it->second;
}

std::vector<Challenge> parse_www_authenticate(std::string_view header) {
  std::vector<Challenge> challenges;
  Scanner in(header);
  while (true) {
    in.skip_ows_and_commas();
    if (in.at_end()) return challenges;

    Challenge challenge;
    const auto scheme = in.token();
    if (scheme.empty()) return challenges;
    challenge.scheme = lower(scheme);
    if (in.at_element_end()) {  // a bare scheme
      challenges.push_back(std::move(challenge));
      continue;
    }

    if (auto first = in.auth_param()) {
      challenge.params.insert(std::move(*first));
      // Params continue after each comma until the next element is not "name=".
      while (true) {
        if (!in.at_element_end()) return challenges;  // junk after a param
        in.skip_ows_and_commas();
        if (in.at_end()) break;
        auto next = in.auth_param();
        if (!next) break;  // the next challenge's scheme
        // RFC 9110: a parameter name occurs once per challenge; keep the first.
        challenge.params.insert(std::move(*next));
      }
      challenges.push_back(std::move(challenge));
      continue;
    }

    const auto start = in.position();
    const auto token68 = in.token68();
    if (token68.empty() || !in.at_element_end()) {
      in.rewind(start);
      return challenges;
    }
    challenge.token68 = std::string(token68);
    challenges.push_back(std::move(challenge));
  }
}

}  // namespace pullgate::registry
