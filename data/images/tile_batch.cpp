#include "data/images/tile_batch.h"

#include <sys/stat.h>

namespace phantom::data {

std::string ImageCache::key(const std::string& path, const TileOptions& opt) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return path + '\n' + std::to_string(st.st_mtim.tv_sec) + '.' + std::to_string(st.st_mtim.tv_nsec) + ' ' +
         std::to_string(st.st_size) + ' ' + std::to_string(opt.tile) + ' ' + std::to_string(opt.min_num) + ' ' +
         std::to_string(opt.max_num) + ' ' + (opt.use_thumbnail ? "thumb" : "nothumb");
}

std::shared_ptr<const CachedTiles> ImageCache::get(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);  // now the most recent
  return it->second->second;
}

void ImageCache::put(const std::string& key, std::shared_ptr<const CachedTiles> tiles) {
  const size_t size = tiles->bytes.size();
  std::lock_guard<std::mutex> lock(mu_);
  if (size > budget_ || index_.count(key)) return;  // too large to keep; or another thread was first
  while (bytes_ + size > budget_) {
    bytes_ -= lru_.back().second->bytes.size();
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  lru_.emplace_front(key, std::move(tiles));
  index_[key] = lru_.begin();
  bytes_ += size;
}

ImageCache::Stats ImageCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {hits_, misses_, static_cast<int64_t>(index_.size()), bytes_};
}

int64_t TileBatch::add(const std::string& path) {
  Item item;
  if (cache_) {
    item.key = ImageCache::key(path, opt_);
    if (!item.key.empty()) item.cached = cache_->get(item.key);
  }
  if (item.cached) {
    item.tiles = item.cached->count;
  } else {
    item.image = load_image(path);
    item.tiles = tile_count(item.image.width, item.image.height, opt_);
  }
  items_.push_back(std::move(item));
  return items_.back().tiles;
}

int64_t TileBatch::total_tiles() const {
  int64_t n = 0;
  for (auto& it : items_) n += it.tiles;
  return n;
}

void TileBatch::write(float* out) {
  const size_t tile_floats = size_t(3) * size_t(opt_.tile) * size_t(opt_.tile);
  for (auto& it : items_) {
    if (it.cached) {
      normalize_tiles_into(it.cached->bytes.data(), it.tiles, opt_.tile, out);
    } else if (cache_ && !it.key.empty()) {
      auto entry = std::make_shared<CachedTiles>();
      entry->count = it.tiles;
      entry->bytes.resize(size_t(it.tiles) * tile_floats);  // tile * tile * 3 bytes per tile
      preprocess_image_into(it.image, opt_, out, entry->bytes.data());
      cache_->put(it.key, std::move(entry));
    } else {
      preprocess_image_into(it.image, opt_, out);
    }
    out += size_t(it.tiles) * tile_floats;
  }
}

}  // namespace phantom::data
