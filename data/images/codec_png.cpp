// PNG through libpng: palette and low bit depths expanded to 8 bits, 16-bit samples cut to their high byte
// (png_set_strip_16, what PIL does for 16-bit RGB(A)), no gamma or colour-profile correction (PIL applies none).
#include <csetjmp>
#include <cstring>

#include <png.h>

#include "data/images/codecs.h"

namespace phantom::data::codecs {
namespace {

struct Reader {
  const uint8_t* data;
  size_t size, pos;
  char message[256];
};

void on_error(png_structp png, png_const_charp msg) {
  auto* r = static_cast<Reader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof r->message, "%s", msg);
  png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}  // e.g. a bad ancillary chunk's CRC: skipped, as by PIL

void read_bytes(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<Reader*>(png_get_io_ptr(png));
  if (n > r->size - r->pos) png_error(png, "file is truncated");
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

}  // namespace

Samples decode_png(const uint8_t* data, size_t size) {
  Samples out;  // declared before setjmp
  std::vector<png_bytep> rows;
  Reader r{data, size, 0, "unknown error"};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, on_error, on_warning);
  if (!png) throw DecodeError("PNG: out of memory");
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw DecodeError(std::string("PNG: ") + r.message);
  }
  if (!info) png_error(png, "out of memory");
  png_set_read_fn(png, &r, read_bytes);
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);  // our own pixel limit below (libpng's default: 1M x 1M)
  png_read_info(png, info);
  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0;
  png_get_IHDR(png, info, &w, &h, &depth, &color, nullptr, nullptr, nullptr);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);  // (with tRNS: + alpha, dropped later)
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_strip_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int channels = png_get_channels(png, info);
  try {
    out.allocate(static_cast<int>(w), static_cast<int>(h), channels);
  } catch (const DecodeError&) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw;
  }
  if (png_get_rowbytes(png, info) != size_t(w) * size_t(channels)) png_error(png, "unexpected row size");
  rows.resize(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = out.data.data() + size_t(y) * size_t(w) * size_t(channels);
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return out;
}

}  // namespace phantom::data::codecs
