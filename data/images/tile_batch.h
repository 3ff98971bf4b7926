// The images of one batch tiled straight into one tensor, and the optional cache of tiled images.
//
// A batch is built in two steps because its tensor's size is known only once every image has been decoded (the
// tile count follows from each image's size) and every sample has passed its checks: `add` decodes an image (or
// finds its tiles in the cache) and returns its tile count; `write` resizes and normalises every added image
// directly into the batch tensor. No per-sample tensor and no concatenation: the tiles are written once.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/images/image.h"

namespace phantom::data {

// 8-bit tiles of one image, HWC per tile, in dynamic_preprocess's order.
struct CachedTiles {
  int64_t count = 0;
  std::vector<uint8_t> bytes;  // count * tile * tile * 3
};

// Tiled images kept in memory under a byte budget, least recently used dropped first; thread-safe. The key is the
// file's path, modification time and size, and the tiling options: an edited image or another tiling is a miss.
// Worth it when images repeat (several epochs, several questions per image); one pass over unique images only
// pays the copy into the cache.
class ImageCache {
 public:
  explicit ImageCache(size_t budget_bytes) : budget_(budget_bytes) {}

  // The key of `path` under `opt`; empty when the file cannot be stat'ed (decoding then reports why).
  static std::string key(const std::string& path, const TileOptions& opt);

  std::shared_ptr<const CachedTiles> get(const std::string& key);
  void put(const std::string& key, std::shared_ptr<const CachedTiles> tiles);

  struct Stats {
    int64_t hits = 0, misses = 0, entries = 0;
    size_t bytes = 0;
  };
  Stats stats() const;

 private:
  using Lru = std::list<std::pair<std::string, std::shared_ptr<const CachedTiles>>>;  // most recent first
  mutable std::mutex mu_;
  size_t budget_, bytes_ = 0;
  int64_t hits_ = 0, misses_ = 0;
  Lru lru_;
  std::unordered_map<std::string, Lru::iterator> index_;
};

class TileBatch {
 public:
  explicit TileBatch(const TileOptions& opt, ImageCache* cache = nullptr) : opt_(opt), cache_(cache) {}

  // Decodes `path` (unless its tiles are cached); returns how many tiles it takes. Throws std::runtime_error
  // naming the file when it cannot be read or decoded.
  int64_t add(const std::string& path);
  size_t size() const { return items_.size(); }
  void truncate(size_t n) { items_.resize(n); }  // drops the images of a sample that was skipped
  int64_t total_tiles() const;

  // Every added image's tiles, in order, into `out`: total_tiles() * 3 * tile * tile floats. Fills the cache.
  void write(float* out);

 private:
  struct Item {
    std::string key;                             // cache key, empty when not cached
    std::shared_ptr<const CachedTiles> cached;  // from the cache, or
    RgbImage image;                              // decoded
    int64_t tiles = 0;
  };
  TileOptions opt_;
  ImageCache* cache_;
  std::vector<Item> items_;
};

}  // namespace phantom::data
