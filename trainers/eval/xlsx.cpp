// Minimal .xlsx writer (xlsx.h): SpreadsheetML parts in a stored (uncompressed) zip archive.
#include "trainers/eval/xlsx.h"

#include <array>
#include <cstdint>
#include <filesystem>

#include "phantom/util/atomic_file.h"

namespace phantom::eval {

namespace {

uint32_t crc32(const std::string& data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void put16(std::string& s, uint32_t v) { s += char(v & 0xFF), s += char((v >> 8) & 0xFF); }
void put32(std::string& s, uint32_t v) { put16(s, v & 0xFFFF), put16(s, v >> 16); }

// A zip archive of stored entries (method 0), the layout of APPNOTE.TXT: local headers + data, central directory,
// end record. Fixed timestamp 1980-01-01 so the bytes depend only on the content.
std::string zip_stored(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out, central;
  for (const auto& [name, data] : files) {
    const uint32_t crc = crc32(data), offset = uint32_t(out.size()), size = uint32_t(data.size());
    std::string common;  // version needed .. name length, shared by both headers
    put16(common, 20), put16(common, 0x0800 /* UTF-8 names */), put16(common, 0), put16(common, 0),
        put16(common, 0x21 /* 1980-01-01 */), put32(common, crc), put32(common, size), put32(common, size),
        put16(common, uint32_t(name.size()));
    put32(out, 0x04034b50), out += common, put16(out, 0), out += name, out += data;
    put32(central, 0x02014b50), put16(central, 20), central += common, put16(central, 0), put16(central, 0),
        put16(central, 0), put16(central, 0), put32(central, 0), put32(central, offset), central += name;
  }
  const uint32_t cd_offset = uint32_t(out.size()), cd_size = uint32_t(central.size());
  out += central;
  put32(out, 0x06054b50), put16(out, 0), put16(out, 0), put16(out, uint32_t(files.size())),
      put16(out, uint32_t(files.size())), put32(out, cd_size), put32(out, cd_offset), put16(out, 0);
  return out;
}

std::string xml_text(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '&') o += "&amp;";
    else if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '"') o += "&quot;";
    else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') continue;  // not allowed in XML 1.0
    else o += char(c);
  }
  return o;
}

std::string column_name(size_t i) {  // 0 -> A, 25 -> Z, 26 -> AA
  std::string s;
  for (++i; i > 0; i = (i - 1) / 26) s.insert(s.begin(), char('A' + (i - 1) % 26));
  return s;
}

}  // namespace

std::string xlsx_bytes(const std::vector<std::vector<std::string>>& rows) {
  const std::string head = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
  std::string sheet = head +
                      "<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>";
  for (size_t r = 0; r < rows.size(); ++r) {
    sheet += "<row r=\"" + std::to_string(r + 1) + "\">";
    for (size_t c = 0; c < rows[r].size(); ++c)
      sheet += "<c r=\"" + column_name(c) + std::to_string(r + 1) + "\" t=\"inlineStr\"><is><t xml:space=\"preserve\">" +
               xml_text(rows[r][c]) + "</t></is></c>";
    sheet += "</row>";
  }
  sheet += "</sheetData></worksheet>";
  const std::string types =
      head + "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">"
             "<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>"
             "<Default Extension=\"xml\" ContentType=\"application/xml\"/>"
             "<Override PartName=\"/xl/workbook.xml\" "
             "ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>"
             "<Override PartName=\"/xl/worksheets/sheet1.xml\" "
             "ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/></Types>";
  const std::string rels =
      head + "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
             "<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
             "officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>";
  const std::string workbook =
      head + "<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" "
             "xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">"
             "<sheets><sheet name=\"Sheet1\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>";
  const std::string workbook_rels =
      head + "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
             "<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
             "worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>";
  return zip_stored({{"[Content_Types].xml", types},
                     {"_rels/.rels", rels},
                     {"xl/workbook.xml", workbook},
                     {"xl/_rels/workbook.xml.rels", workbook_rels},
                     {"xl/worksheets/sheet1.xml", sheet}});
}

void write_xlsx(const std::string& path, const std::vector<std::vector<std::string>>& rows) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  util::write_file_atomic(path, xlsx_bytes(rows));
}

}  // namespace phantom::eval
