// WebP through libwebp's one-shot decoder (lossy, lossless, with alpha). RGB and RGBA give the same colour bytes,
// so alpha is simply not requested: convert('RGB') drops it without compositing.
#include <webp/decode.h>

#include "data/images/codecs.h"

namespace phantom::data::codecs {

Samples decode_webp(const uint8_t* data, size_t size) {
  WebPBitstreamFeatures f;
  if (WebPGetFeatures(data, size, &f) != VP8_STATUS_OK) throw DecodeError("WebP: bad or truncated header");
  if (f.has_animation) throw DecodeError("WebP: animated WebP is not supported");
  Samples out;
  out.allocate(f.width, f.height, 3);
  if (!WebPDecodeRGBInto(data, size, out.data.data(), out.data.size(), 3 * out.width))
    throw DecodeError("WebP: corrupt or truncated data");
  return out;
}

}  // namespace phantom::data::codecs
