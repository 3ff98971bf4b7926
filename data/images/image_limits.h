// Decompression-bomb guard for image decoding, process-wide like PIL's Image.MAX_IMAGE_PIXELS: an image declaring
// more pixels than the limit is an error naming the file, checked from the PNG/JPEG/GIF/BMP/WebP header before
// any pixel is decoded (after decoding for other formats). docs/reliability.md.
#pragma once

#include <cstdint>

namespace phantom::data {

// PIL's default: 1 GiB / 4 bytes / 3 channels = 89,478,485 pixels.
constexpr int64_t kDefaultMaxImagePixels = 89478485;

// The limit in force: set_max_image_pixels, else the environment variable PHANTOM_MAX_IMAGE_PIXELS (a decimal
// integer; 0 disables the check), else the default. A malformed variable is an error at the first decode.
int64_t max_image_pixels();
void set_max_image_pixels(int64_t n);

}  // namespace phantom::data
