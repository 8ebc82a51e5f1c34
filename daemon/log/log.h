// Structured one-line-per-event logging to stderr, journald-friendly.
// A line is "<level> <event> key=value ...". Under systemd (JOURNAL_STREAM set)
// the level becomes a "<N>" syslog prefix and the timestamp is left to journald.
// Secrets never reach a line: they live in mb::Secret, which cannot be logged.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

namespace mb {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

bool parseLogLevel(std::string_view text, LogLevel& out);
void setLogLevel(LogLevel level);
LogLevel logLevel();
bool logEnabled(LogLevel level);

// A password, token or key. Deliberately has no operator<< and no implicit
// conversion, so it cannot be passed to a log line by accident.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  Secret(const Secret&) = default;
  Secret& operator=(const Secret&) = default;
  Secret(Secret&&) = default;
  Secret& operator=(Secret&&) = default;
  ~Secret();  // wipes the bytes
  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }

 private:
  std::string value_;
};

// Builds one log line; emits it when destroyed. Use through logAt():
//   logAt(LogLevel::Info, "api.listening").kv("addr", "127.0.0.1:8025");
class LogLine {
 public:
  LogLine(LogLevel level, std::string_view event);
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  ~LogLine();

  LogLine& kv(std::string_view key, std::string_view value);
  LogLine& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value)); }
  LogLine& kv(std::string_view key, const std::string& value) { return kv(key, std::string_view(value)); }
  LogLine& kv(std::string_view key, int64_t value);
  LogLine& kv(std::string_view key, uint64_t value);
  LogLine& kv(std::string_view key, int value) { return kv(key, static_cast<int64_t>(value)); }
  LogLine& kv(std::string_view key, unsigned value) { return kv(key, static_cast<uint64_t>(value)); }
  LogLine& kv(std::string_view key, long long value) { return kv(key, static_cast<int64_t>(value)); }
  LogLine& kv(std::string_view key, unsigned long long value) { return kv(key, static_cast<uint64_t>(value)); }
  LogLine& kv(std::string_view key, bool value) { return kv(key, std::string_view(value ? "true" : "false")); }
  LogLine& kv(std::string_view key, const Secret&) = delete;

 private:
  bool enabled_;
  std::string line_;
};

inline LogLine logAt(LogLevel level, std::string_view event) { return LogLine(level, event); }
inline LogLine logDebug(std::string_view event) { return LogLine(LogLevel::Debug, event); }
inline LogLine logInfo(std::string_view event) { return LogLine(LogLevel::Info, event); }
inline LogLine logWarn(std::string_view event) { return LogLine(LogLevel::Warn, event); }
inline LogLine logError(std::string_view event) { return LogLine(LogLevel::Error, event); }

}  // namespace mb
