// The four decoders behind decode_image (image_decode.cpp), each straight on the library PIL itself decodes with:
// libjpeg-turbo, libpng (PIL's own PNG reader sits on zlib, but libpng's output bytes are the same), libwebp, and
// our BMP reader. Each returns the image's own samples (1-4 channels, 8 bits) and throws DecodeError with a
// reason; image_decode.cpp converts to RGB and names the file. Internal to data/images.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace phantom::data::codecs {

struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Interleaved 8-bit samples, rows top to bottom: 1 = gray, 2 = gray + alpha, 3 = RGB, 4 = RGBA.
struct Samples {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> data;
  void allocate(int w, int h, int c);  // checks the size (at most 2^30 pixels, as OpenCV and PIL's bomb limit)
};

Samples decode_jpeg(const uint8_t* data, size_t size);  // CMYK converted to RGB exactly as PIL's convert('RGB')
Samples decode_png(const uint8_t* data, size_t size);   // 16-bit samples keep their high byte
Samples decode_webp(const uint8_t* data, size_t size);  // still images only (animated: error)
Samples decode_bmp(const uint8_t* data, size_t size);   // 1/4/8-bit palette, 16/24/32-bit, uncompressed or bitfields

}  // namespace phantom::data::codecs
