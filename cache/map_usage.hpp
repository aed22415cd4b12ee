#pragma once
// How full the LMDB map is and what its growth did (cache/lmdb.hpp, MapGrowth), for
// metrics and the log.
#include <cstddef>
#include <string>

namespace pullgate::cache {

// Bytes up to the last page in use (free pages inside count as used: LMDB reuses
// them, so this is an upper bound), the map's size now, and the size it may grow to.
struct MapUsage {
  std::size_t used_bytes = 0;
  std::size_t map_bytes = 0;
  std::size_t max_bytes = 0;
};

// Grown (from before.map_bytes to new_map_bytes), or could not grow while the map is
// past the growth threshold: at its maximum, or mdb_env_set_mapsize failed (error).
struct MapEvent {
  enum class Kind { grown, at_max, failed } kind;
  MapUsage before;
  std::size_t new_map_bytes = 0;
  std::string error;
};

}  // namespace pullgate::cache
