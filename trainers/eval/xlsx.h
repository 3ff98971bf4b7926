// A minimal .xlsx writer (Office Open XML SpreadsheetML): one sheet of text cells, enough for the MMBench /
// MMBench-CN test uploads the OpenCompass server takes. The workbook is a zip of five XML parts, stored without
// compression (CRC-32 checked by every reader), so no zip or xml library is needed.
#pragma once

#include <string>
#include <vector>

namespace phantom::eval {

// Writes `rows` (the first is the header) as the sheet "Sheet1" of a new workbook at `path`, atomically. Cells are
// inline strings; text is XML-escaped and characters XML 1.0 forbids (control characters) are dropped.
void write_xlsx(const std::string& path, const std::vector<std::vector<std::string>>& rows);

// The same workbook as bytes (what write_xlsx writes).
std::string xlsx_bytes(const std::vector<std::vector<std::string>>& rows);

}  // namespace phantom::eval
