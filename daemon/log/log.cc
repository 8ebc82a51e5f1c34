// Log line formatting and the process-wide level.
#include "daemon/log/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace mb {
namespace {

std::atomic<int> gLevel{static_cast<int>(LogLevel::Info)};
std::mutex gWriteMutex;

bool underJournald() {
  static const bool journald = std::getenv("JOURNAL_STREAM") != nullptr;
  return journald;
}

const char* levelName(LogLevel level) {
  switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
  }
  return "info";
}

const char* syslogPrefix(LogLevel level) {
  switch (level) {
    case LogLevel::Debug: return "<7>";
    case LogLevel::Info: return "<6>";
    case LogLevel::Warn: return "<4>";
    case LogLevel::Error: return "<3>";
  }
  return "<6>";
}

bool needsQuoting(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return true;
  return false;
}

void appendValue(std::string& out, std::string_view v) {
  if (!needsQuoting(v)) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c < ' ' || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out.append(buf);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

}  // namespace

bool parseLogLevel(std::string_view text, LogLevel& out) {
  if (text == "debug") out = LogLevel::Debug;
  else if (text == "info") out = LogLevel::Info;
  else if (text == "warn") out = LogLevel::Warn;
  else if (text == "error") out = LogLevel::Error;
  else return false;
  return true;
}

void setLogLevel(LogLevel level) { gLevel.store(static_cast<int>(level)); }
LogLevel logLevel() { return static_cast<LogLevel>(gLevel.load()); }
bool logEnabled(LogLevel level) { return static_cast<int>(level) >= gLevel.load(); }

Secret::~Secret() {
  // Best effort: overwrite before the allocation returns to the heap.
  volatile char* p = value_.data();
  for (size_t i = 0; i < value_.size(); ++i) p[i] = 0;
}

LogLine::LogLine(LogLevel level, std::string_view event) : enabled_(logEnabled(level)) {
  if (!enabled_) return;
  line_.reserve(128);
  if (underJournald()) {
    line_.append(syslogPrefix(level));
  } else {
    auto now = std::chrono::system_clock::now();
    auto secs = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    line_.append(buf);
  }
  line_.append(levelName(level));
  line_.push_back(' ');
  line_.append(event);
}

LogLine& LogLine::kv(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  line_.push_back(' ');
  line_.append(key);
  line_.push_back('=');
  appendValue(line_, value);
  return *this;
}

LogLine& LogLine::kv(std::string_view key, int64_t value) { return kv(key, std::to_string(value)); }
LogLine& LogLine::kv(std::string_view key, uint64_t value) { return kv(key, std::to_string(value)); }

LogLine::~LogLine() {
  if (!enabled_) return;
  line_.push_back('\n');
  std::lock_guard lock(gWriteMutex);
  std::fwrite(line_.data(), 1, line_.size(), stderr);
  std::fflush(stderr);
}

}  // namespace mb
