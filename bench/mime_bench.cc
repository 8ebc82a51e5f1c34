// MIME analysis throughput: what the store does to every message it takes in
// (line ends normalized when needed, analyzeMessage, serializeAnalysis) over a
// corpus held in memory, and beside it GMime 3 parsing the same bytes into a
// message and walking its parts (the closest peer: a structure parser with
// the header fields read; it counts no lines and writes no BODYSTRUCTURE).
//
//   python3 bench/sync_bench.py --dump /dev/shm/corpus
//   build/bench/mime_bench [--reps N] [--only ours|gmime] /dev/shm/corpus tests/fixtures/mime
//
// Each argument is a file or a directory (its regular files, not recursed).
// Figures: messages/s, MB/s and process CPU seconds of the timed loop; the
// corpus is read and touched before the clock starts.
#include <gmime/gmime.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/mime/analysis.h"

namespace {

double cpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double wallSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

bool readFile(const std::filesystem::path& p, std::vector<std::string>& out) {
  std::ifstream in(p, std::ios::binary | std::ios::ate);
  if (!in) return false;
  std::string bytes(static_cast<std::size_t>(in.tellg()), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) return false;
  out.push_back(std::move(bytes));
  return true;
}

// As daemon/store/store.cc normalizedAndAnalysed() and the stored column.
std::size_t oursOne(std::string_view bytes) {
  auto a = mb::mime::analyzeForStore(bytes);
  if (!a) std::abort();
  return mb::mime::serializeAnalysis(a->analysis).size() + (a->normalized ? a->normalized->size() : 0);
}

void walkPart(GMimeObject* parent, GMimeObject* part, gpointer data) {
  (void)parent;
  auto* sum = static_cast<std::size_t*>(data);
  GMimeContentType* ct = g_mime_object_get_content_type(part);
  if (ct) *sum += std::strlen(g_mime_content_type_get_media_subtype(ct));
  if (GMIME_IS_PART(part)) {
    GMimePart* leaf = GMIME_PART(part);
    if (const char* name = g_mime_part_get_filename(leaf)) *sum += std::strlen(name);
    *sum += static_cast<std::size_t>(g_mime_part_get_content_encoding(leaf));
  } else if (GMIME_IS_MESSAGE_PART(part)) {
    GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(part));
    if (inner && g_mime_message_get_subject(inner)) *sum += std::strlen(g_mime_message_get_subject(inner));
  }
}

std::size_t addresses(InternetAddressList* list) {
  if (!list) return 0;
  char* s = internet_address_list_to_string(list, nullptr, FALSE);
  std::size_t n = s ? std::strlen(s) : 0;
  g_free(s);
  return n;
}

// Parse (GMime copies the bytes into its memory stream), read the fields an
// ENVELOPE needs, visit every part with its content type and file name.
std::size_t gmimeOne(std::string_view bytes) {
  GMimeStream* stream = g_mime_stream_mem_new_with_buffer(bytes.data(), bytes.size());
  GMimeParser* parser = g_mime_parser_new_with_stream(stream);
  g_object_unref(stream);
  GMimeMessage* msg = g_mime_parser_construct_message(parser, nullptr);
  g_object_unref(parser);
  if (!msg) return 0;
  std::size_t sum = 0;
  if (const char* s = g_mime_message_get_subject(msg)) sum += std::strlen(s);
  if (const char* s = g_mime_message_get_message_id(msg)) sum += std::strlen(s);
  if (GDateTime* d = g_mime_message_get_date(msg)) sum += static_cast<std::size_t>(g_date_time_to_unix(d) & 1);
  sum += addresses(g_mime_message_get_from(msg)) + addresses(g_mime_message_get_to(msg)) +
         addresses(g_mime_message_get_cc(msg));
  g_mime_message_foreach(msg, walkPart, &sum);
  g_object_unref(msg);
  return sum;
}

template <class F>
void timeIt(const char* name, const std::vector<std::string>& corpus, std::size_t totalBytes, int reps, F one) {
  std::size_t sink = 0;
  double w0 = wallSeconds(), c0 = cpuSeconds();
  for (int r = 0; r < reps; ++r)
    for (const auto& m : corpus) sink += one(m);
  double cpu = cpuSeconds() - c0, wall = wallSeconds() - w0;
  double n = static_cast<double>(corpus.size()) * reps;
  double mb = static_cast<double>(totalBytes) * reps / 1e6;
  std::printf("%-6s %8.0f msg/s %8.1f MB/s   CPU %.3f s (%.3f s per pass)   wall %.3f s   [%zu]\n", name,
              n / wall, mb / wall, cpu, cpu / reps, wall, sink % 10);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 1;
  std::string only;
  std::vector<std::string> corpus;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
      continue;
    }
    if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
      continue;
    }
    std::error_code ec;
    std::filesystem::path p(arg);
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::directory_iterator(p, ec))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) readFile(f, corpus);
    } else if (!readFile(p, corpus)) {
      std::fprintf(stderr, "mime_bench: cannot read %s\n", argv[i]);
      return 2;
    }
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "usage: mime_bench [--reps N] [--only ours|gmime] FILE|DIR...\n");
    return 2;
  }
  std::size_t total = 0;
  for (const auto& m : corpus) total += m.size();
  std::printf("%zu messages, %.1f MB, %d pass(es)\n", corpus.size(), static_cast<double>(total) / 1e6, reps);
  g_mime_init();
  // One untimed pass each: allocator arenas and code warm, as in a running daemon.
  if (only != "gmime") {
    for (const auto& m : corpus) oursOne(m);
    timeIt("ours", corpus, total, reps, oursOne);
  }
  if (only != "ours") {
    for (const auto& m : corpus) gmimeOne(m);
    timeIt("gmime", corpus, total, reps, gmimeOne);
  }
  g_mime_shutdown();
  return 0;
}
