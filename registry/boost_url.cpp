// Boost.URL, compiled here: Debian's libboost1.81-all-dev ships its headers but not
// its library (libboost-url1.81-dev), and this one translation unit makes the
// library header-only for the build (Boost.URL's documented way).
#include <boost/url/src.hpp>
