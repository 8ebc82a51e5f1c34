// Durable file operations used by the token, certificate and config writers.
#include "daemon/util/fs.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace mb {
namespace {

std::unexpected<Error> ioError(const std::filesystem::path& path, const char* what) {
  return fail(ErrorKind::Io, path.string() + ": " + what + ": " + std::strerror(errno));
}

}  // namespace

Status syncDirectory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ioError(dir, "cannot open directory");
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) return ioError(dir, "fsync failed");
  return {};
}

Status ensureDirectory(const std::filesystem::path& dir, mode_t mode) {
  std::filesystem::path partial;
  for (const auto& part : dir) {
    partial /= part;
    if (partial == partial.root_path() || part.empty()) continue;
    if (::mkdir(partial.c_str(), mode) == 0) continue;
    if (errno != EEXIST) return ioError(partial, "cannot create directory");
    struct stat st{};
    if (::stat(partial.c_str(), &st) != 0) return ioError(partial, "cannot stat");
    if (!S_ISDIR(st.st_mode)) return fail(ErrorKind::Io, partial.string() + ": exists and is not a directory");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) return ioError(dir, "directory is not writable");
  return {};
}

Status writeFileAtomic(const std::filesystem::path& path, std::string_view data, mode_t mode) {
  std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  std::string tmpl = (dir / ("." + path.filename().string() + ".tmpXXXXXX")).string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return ioError(tmpl, "cannot create temporary file");
  auto cleanup = [&](const char* what) {
    int saved = errno;
    ::close(fd);
    ::unlink(tmpl.c_str());
    errno = saved;
    return ioError(tmpl, what);
  };
  if (::fchmod(fd, mode) != 0) return cleanup("chmod failed");
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return cleanup("write failed");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return cleanup("fsync failed");
  if (::close(fd) != 0) {
    ::unlink(tmpl.c_str());
    return ioError(tmpl, "close failed");
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(tmpl.c_str());
    errno = saved;
    return ioError(path, "rename failed");
  }
  return syncDirectory(dir);
}

Result<std::string> readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ioError(path, "cannot read");
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return ioError(path, "read error");
  return buf.str();
}

std::string randomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::getrandom(raw.data() + got, bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::abort();  // no entropy source: nothing safe to do
    }
    got += static_cast<size_t>(n);
  }
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char c : raw) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

}  // namespace mb
