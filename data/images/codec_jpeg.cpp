// JPEG through libjpeg-turbo, set up as PIL's JpegDecode: default DCT (islow) and fancy upsampling, YCbCr -> RGB
// by libjpeg, CMYK/YCCK read as (Adobe-inverted) CMYK and converted with PIL's own formula.
#include <csetjmp>
#include <cstdio>

#include <jpeglib.h>

#include "data/images/codecs.h"

namespace phantom::data::codecs {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<ErrorManager*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}
// Warnings (corrupt data recovered by the decoder) are not printed; truncation is caught before (image_decode.cpp).
void on_message(j_common_ptr, int) {}

// PIL reads CMYK JPEGs as inverted ("CMYK;I") and converts with r = (255-k) - round((c*(255-k))/255), its MULDIV255
// of integers; raw samples here are the stored (inverted) ones, so c = 255 - raw_c and 255 - k = raw_k.
inline uint8_t cmyk_channel(uint8_t raw_c, uint8_t raw_k) {
  const int c = 255 - raw_c, nk = raw_k;
  const int t = c * nk + 128;
  const int v = nk - (((t >> 8) + t) >> 8);
  return static_cast<uint8_t>(v < 0 ? 0 : v);
}

}  // namespace

Samples decode_jpeg(const uint8_t* data, size_t size) {
  Samples out;              // declared before setjmp: nothing with a destructor is created after it
  std::vector<uint8_t> row;
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw DecodeError(std::string("JPEG: ") + err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  const bool gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
  cinfo.out_color_space = cmyk ? JCS_CMYK : gray ? JCS_GRAYSCALE : JCS_RGB;
  // allocate before start_decompress (which allocates the decoder's buffers): an oversized header fails cheaply
  try {
    out.allocate(static_cast<int>(cinfo.image_width), static_cast<int>(cinfo.image_height), gray ? 1 : 3);
  } catch (...) {
    jpeg_destroy_decompress(&cinfo);
    throw;
  }
  jpeg_start_decompress(&cinfo);
  row.resize(size_t(cinfo.output_width) * size_t(cinfo.output_components));
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* t = out.data.data() + size_t(cinfo.output_scanline) * size_t(out.width) * size_t(out.channels);
    JSAMPROW p = cmyk ? row.data() : t;
    jpeg_read_scanlines(&cinfo, &p, 1);
    if (cmyk)
      for (int x = 0; x < out.width; ++x, t += 3) {
        const uint8_t* s = row.data() + 4 * size_t(x);
        t[0] = cmyk_channel(s[0], s[3]), t[1] = cmyk_channel(s[1], s[3]), t[2] = cmyk_channel(s[2], s[3]);
      }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return out;
}

}  // namespace phantom::data::codecs
