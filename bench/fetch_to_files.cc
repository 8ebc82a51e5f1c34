// bench/fetch_to_files: the cheapest possible storing IMAP client, the
// "floor" leg of bench/sync_bench.py.
//
// The ceiling leg reads one `UID FETCH 1:* BODY.PEEK[]` stream per folder and
// throws the bytes away. Any client that keeps the mail must at least also
// create a file per message and copy its bytes into it. This program does
// exactly that and nothing more: one blocking connection, a 256 KiB read
// buffer, each literal written from that buffer straight into its own new
// file (O_CREAT|O_EXCL, like mailbridged's blob store), one syncfs at the
// end. No flags, no index, no MIME analysis, no crash safety beyond the
// files. The distance from the ceiling to this floor is what storing costs
// on the machine; what a real client spends beyond it is its own overhead.
//
//   fetch_to_files PORT USER PASSWORD DIR MAILBOX...
//
// MAILBOX arguments are IMAP astrings as SELECT takes them (quoted, mUTF-7).
// Prints one line: "messages N bytes B". Exits 1 on any error or NO/BAD.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "fetch_to_files: %s\n", what.c_str());
  std::exit(1);
}

class Conn {
 public:
  explicit Conn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) die("socket: " + std::string(std::strerror(errno)));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      die("connect: " + std::string(std::strerror(errno)));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }

  void send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::write(fd_, s.data() + off, s.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) die("write: " + std::string(std::strerror(errno)));
      off += static_cast<size_t>(n);
    }
  }

  // Reads responses until the line tagged `tag`. Each literal goes to
  // onLiteral(first chunk, ...) as consecutive chunks: begin(size), chunk...,
  // end(). Returns the tagged line.
  template <typename Begin, typename Chunk, typename End>
  std::string until(std::string_view tag, Begin begin, Chunk chunk, End end) {
    for (;;) {
      size_t eol = find("\r\n");
      if (eol == std::string::npos) {
        fill();
        continue;
      }
      std::string_view line(buf_ + pos_, eol - pos_);
      pos_ = eol + 2;
      uint64_t lit = 0;
      if (!line.empty() && line.back() == '}') {
        size_t open = line.rfind('{');
        if (open == std::string_view::npos) die("bad literal in: " + std::string(line));
        auto r = std::from_chars(line.data() + open + 1, line.data() + line.size() - 1, lit);
        if (r.ec != std::errc()) die("bad literal size in: " + std::string(line));
        begin(lit);
        while (lit > 0) {
          if (pos_ == len_) fill();
          size_t n = static_cast<size_t>(std::min<uint64_t>(lit, len_ - pos_));
          chunk(std::string_view(buf_ + pos_, n));
          pos_ += n;
          lit -= n;
        }
        end();
        continue;  // the rest of the response line follows the literal
      }
      if (line.size() > tag.size() && line.substr(0, tag.size()) == tag && line[tag.size()] == ' ') {
        std::string_view status = line.substr(tag.size() + 1);
        if (status.substr(0, 2) != "OK") die("server said: " + std::string(line));
        return std::string(line);
      }
    }
  }

  std::string until(std::string_view tag) {
    return until(tag, [](uint64_t) {}, [](std::string_view) {}, [] {});
  }

 private:
  size_t find(std::string_view what) const {
    std::string_view s(buf_ + pos_, len_ - pos_);
    size_t at = s.find(what);
    return at == std::string_view::npos ? std::string::npos : pos_ + at;
  }

  void fill() {
    if (pos_ > 0) {
      std::memmove(buf_, buf_ + pos_, len_ - pos_);
      len_ -= pos_;
      pos_ = 0;
    }
    if (len_ == sizeof buf_) die("line longer than the buffer");
    ssize_t n;
    do n = ::read(fd_, buf_ + len_, sizeof buf_ - len_);
    while (n < 0 && errno == EINTR);
    if (n <= 0) die(n == 0 ? "connection closed" : "read: " + std::string(std::strerror(errno)));
    len_ += static_cast<size_t>(n);
  }

  int fd_ = -1;
  char buf_[256 * 1024];
  size_t pos_ = 0, len_ = 0;
};

std::string quoted(std::string_view s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

void writeAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("write file: " + std::string(std::strerror(errno)));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) die("usage: fetch_to_files PORT USER PASSWORD DIR MAILBOX...");
  static Conn c(std::atoi(argv[1]));
  const std::string dir = argv[4];
  c.until("*");  // the greeting is untagged: read one line
  c.send("a LOGIN " + quoted(argv[2]) + " " + quoted(argv[3]) + "\r\n");
  c.until("a");
  uint64_t messages = 0, bytes = 0;
  int file = -1;
  for (int i = 5; i < argc; ++i) {
    std::string folder = dir + "/" + std::to_string(i - 5);
    if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) die("mkdir " + folder);
    c.send("s SELECT " + std::string(argv[i]) + "\r\n");
    c.until("s");
    c.send("f UID FETCH 1:* BODY.PEEK[]\r\n");
    c.until(
        "f",
        [&](uint64_t size) {
          std::string path = folder + "/" + std::to_string(++messages);
          file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
          if (file < 0) die("open " + path + ": " + std::strerror(errno));
          bytes += size;
        },
        [&](std::string_view chunk) { writeAll(file, chunk); },
        [&] {
          ::close(file);
          file = -1;
        });
  }
  c.send("l LOGOUT\r\n");
  int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (d < 0 || ::syncfs(d) != 0) die("syncfs " + dir);
  ::close(d);
  std::printf("messages %llu bytes %llu\n", static_cast<unsigned long long>(messages),
              static_cast<unsigned long long>(bytes));
  return 0;
}
