// `models pull` / `models list` tests: pulls from a real HTTP server on 127.0.0.1 serving the
// tiny-en-es fixture in the Hugging Face `/{repo}/resolve/{revision}/{file}` layout (honest and
// hostile variants), and the table printed over a real HF cache folder layout.
#include "app/model_commands.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <fstream>
#include <iomanip>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "marian/tiny_fixture_test_support.h"

namespace transnotes::app {
namespace {

using marian::list_models;
using marian::ModelOrigin;
using marian::ModelSearchDirs;

namespace fs = std::filesystem;
namespace asio = boost::asio;
using asio::ip::tcp;

const fs::path kFixtureDir = marian::tiny_fixture::dir();
const std::string kRepo = "Helsinki-NLP/opus-mt-en-es";
const std::string kPrefix = "/" + kRepo + "/resolve/main/";

// Files of the fixture that the hub serves (everything an OPUS-MT repo has; no target_vocab.json).
const std::vector<std::string> kServedFiles = {
    "config.json", "generation_config.json", "model.safetensors",      "source.spm", "target.spm",
    "vocab.json",  "tokenizer_config.json",  "special_tokens_map.json"};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_file(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// How the server answers one path.
struct Route {
  int status = 200;
  std::string body;
  std::size_t declared_length = 0;  // Content-Length sent; may exceed body (then it hangs up)
  std::string location;             // for redirects
  bool close_delimited = false;     // no Content-Length: the body ends when the server hangs up
};

Route serve(const std::string& body) { return Route{200, body, body.size(), ""}; }
Route redirect(const std::string& location) { return Route{302, "", 0, location}; }

// One-request-per-connection HTTP/1.1 server on a free loopback port, run on its own thread.
// Routes are fixed at construction; unknown paths get 404. Writes raw bytes so it can lie
// about Content-Length.
class FakeHub {
 public:
  explicit FakeHub(std::map<std::string, Route> routes)
      : routes_(std::move(routes)),
        acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve_loop(); });
  }
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;
  ~FakeHub() {
    stopping_ = true;
    boost::system::error_code ec;
    tcp::socket wake(io_);
    wake.connect(acceptor_.local_endpoint(), ec);  // unblocks accept()
    thread_.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }
  int requests_for(const std::string& target) const {
    std::lock_guard<std::mutex> lock(targets_mutex_);
    return static_cast<int>(std::count(targets_.begin(), targets_.end(), target));
  }

 private:
  void serve_loop() {
    while (!stopping_) {
      tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (stopping_ || ec) break;
      handle(socket);
    }
  }

  void handle(tcp::socket& socket) {
    boost::system::error_code ec;
    // Only GET without a body is expected: read the head, take the target from the request line.
    std::string head;
    asio::read_until(socket, asio::dynamic_buffer(head), "\r\n\r\n", ec);
    if (ec) return;
    std::istringstream request_line(head.substr(0, head.find("\r\n")));
    std::string method, target;
    request_line >> method >> target;
    ++requests_;
    {
      std::lock_guard<std::mutex> lock(targets_mutex_);
      targets_.push_back(target);
    }
    const auto it = routes_.find(target);
    const Route route = it != routes_.end() ? it->second : Route{404, "Entry not found", 15, ""};
    std::string response = "HTTP/1.1 " + std::to_string(route.status) + " " +
                           (route.status == 200   ? "OK"
                            : route.status == 302 ? "Found"
                            : route.status == 404 ? "Not Found"
                                                  : "Error") +
                           "\r\nConnection: close\r\n";
    if (!route.close_delimited)
      response += "Content-Length: " + std::to_string(route.declared_length) + "\r\n";
    if (!route.location.empty()) response += "Location: " + route.location + "\r\n";
    response += "\r\n";
    response += route.body;
    asio::write(socket, asio::buffer(response), ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  std::map<std::string, Route> routes_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  mutable std::mutex targets_mutex_;
  std::vector<std::string> targets_;
  std::thread thread_;
};

std::map<std::string, Route> fixture_routes() {
  std::map<std::string, Route> routes;
  for (const auto& file : kServedFiles)
    routes[kPrefix + file] = serve(read_file(kFixtureDir / file));
  return routes;
}

// Entries of a directory (names), to prove nothing was left behind.
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class ModelCommandsTest : public marian::tiny_fixture::TempModelsTest {};

TEST_F(ModelCommandsTest, PullYieldsCompleteFolderIdenticalToFixture) {
  auto routes = fixture_routes();
  // Like the real hub, LFS files are served through a redirect to another location.
  routes["/cdn/blob-model"] = routes[kPrefix + "model.safetensors"];
  routes[kPrefix + "model.safetensors"] = redirect("/cdn/blob-model");
  FakeHub hub(routes);

  std::map<std::string, DownloadProgress> last_progress;
  const PullResult result =
      pull_model(hub.endpoint(), kRepo, "main", models_dir_,
                 [&](const DownloadProgress& p) { last_progress[p.file] = p; });

  EXPECT_EQ(result.path, models_dir_ / "opus-mt-en-es");
  EXPECT_FALSE(result.replaced_existing);
  std::vector<std::string> fetched = result.files;
  std::sort(fetched.begin(), fetched.end());
  std::vector<std::string> expected_files = kServedFiles;
  std::sort(expected_files.begin(), expected_files.end());
  EXPECT_EQ(fetched, expected_files);  // target_vocab.json: optional, 404, skipped
  EXPECT_EQ(entries(result.path), expected_files);
  std::uint64_t total = 0;
  for (const auto& file : kServedFiles) {
    const std::string original = read_file(kFixtureDir / file);
    EXPECT_EQ(read_file(result.path / file), original) << file;
    total += original.size();
  }
  EXPECT_EQ(result.bytes, total);
  ASSERT_TRUE(last_progress.count("model.safetensors"));
  EXPECT_TRUE(last_progress["model.safetensors"].finished);
  EXPECT_EQ(last_progress["model.safetensors"].done,
            fs::file_size(kFixtureDir / "model.safetensors"));
  EXPECT_EQ(entries(models_dir_), std::vector<std::string>{"opus-mt-en-es"});  // no temp leftovers

  const auto models = list_models(models_dir_, root_ / "no-hf-home");
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name, "opus-mt-en-es");
  EXPECT_EQ(models[0].path, result.path);
  EXPECT_EQ(models[0].origin, ModelOrigin::kModelsDir);
  EXPECT_EQ(models[0].source_language, "en");
  EXPECT_EQ(models[0].target_language, "es");
  EXPECT_TRUE(models[0].complete);
  EXPECT_TRUE(models[0].missing_files.empty());
  EXPECT_EQ(models[0].size_bytes, total);

  std::ostringstream table;
  EXPECT_EQ(app::run_models_list(table, ModelSearchDirs{models_dir_, root_ / "no-hf-home" / "hub"}),
            0);
  EXPECT_NE(table.str().find("opus-mt-en-es"), std::string::npos) << table.str();
  EXPECT_NE(table.str().find("en-es"), std::string::npos) << table.str();
  EXPECT_NE(table.str().find("complete"), std::string::npos) << table.str();

  // Pulling again replaces the folder atomically and still leaves nothing else behind.
  write_file(result.path / "stale.txt", "old");
  const PullResult again = pull_model(hub.endpoint(), kRepo, "main", models_dir_);
  EXPECT_TRUE(again.replaced_existing);
  EXPECT_FALSE(fs::exists(again.path / "stale.txt"));
  EXPECT_EQ(entries(models_dir_), std::vector<std::string>{"opus-mt-en-es"});
}

TEST_F(ModelCommandsTest, TruncatedDownloadLeavesNothingBehind) {
  auto routes = fixture_routes();
  Route& weights = routes[kPrefix + "model.safetensors"];
  weights.body.resize(weights.body.size() / 2);  // Content-Length stays the full size
  FakeHub hub(routes);

  try {
    pull_model(hub.endpoint(), kRepo, "main", models_dir_);
    FAIL() << "a truncated download must fail";
  } catch (const ModelPullError& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(entries(models_dir_).empty());
  EXPECT_TRUE(list_models(models_dir_, root_).empty());
}

TEST_F(ModelCommandsTest, MissingRequiredFileFailsCleanly) {
  auto routes = fixture_routes();
  routes.erase(kPrefix + "model.safetensors");  // -> 404
  FakeHub hub(routes);

  try {
    pull_model(hub.endpoint(), kRepo, "main", models_dir_);
    FAIL() << "a 404 of model.safetensors must fail";
  } catch (const ModelPullError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("model.safetensors"), std::string::npos) << message;
    EXPECT_NE(message.find("404"), std::string::npos) << message;
  }
  EXPECT_TRUE(entries(models_dir_).empty());

  std::ostringstream out, err;
  EXPECT_EQ(app::run_models_pull(out, err, hub.endpoint(), kRepo, "main", models_dir_, true), 1);
  EXPECT_NE(err.str().find("error:"), std::string::npos) << err.str();
  EXPECT_TRUE(entries(models_dir_).empty());
}

TEST_F(ModelCommandsTest, UnknownRepositoryReportsStatus) {
  // The real hub answers 401 for repositories that do not exist.
  const std::string body = "Invalid username or password.";
  FakeHub hub({{kPrefix + "config.json", Route{401, body, body.size(), ""}}});
  try {
    pull_model(hub.endpoint(), kRepo, "main", models_dir_);
    FAIL() << "a 401 must fail";
  } catch (const ModelPullError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("HTTP 401"), std::string::npos) << message;
    EXPECT_NE(message.find("not found"), std::string::npos) << message;
  }
  EXPECT_EQ(hub.requests(), 1);  // config.json first: nothing else was tried
  EXPECT_TRUE(entries(models_dir_).empty());
}

TEST_F(ModelCommandsTest, CorruptSafetensorsIsRejected) {
  auto routes = fixture_routes();
  routes[kPrefix + "model.safetensors"] = serve(std::string(64, '\xff'));
  FakeHub hub(routes);
  EXPECT_THROW(pull_model(hub.endpoint(), kRepo, "main", models_dir_), ModelPullError);
  EXPECT_TRUE(entries(models_dir_).empty());
}

TEST_F(ModelCommandsTest, CliPullReportsSuccessAndRejectsBadRepoIds) {
  FakeHub hub(fixture_routes());
  std::ostringstream out, err;
  EXPECT_EQ(app::run_models_pull(out, err, hub.endpoint(), kRepo, "main", models_dir_, true), 0)
      << err.str();
  EXPECT_NE(out.str().find("opus-mt-en-es"), std::string::npos) << out.str();
  EXPECT_NE(err.str().find("model.safetensors"), std::string::npos) << err.str();  // progress

  std::ostringstream out2, err2;
  EXPECT_EQ(
      app::run_models_pull(out2, err2, hub.endpoint(), "../../etc", "main", models_dir_, false), 2);
  EXPECT_THROW(pull_model(hub.endpoint(), "a/b/c", "main", models_dir_), BadRequest);
}

TEST_F(ModelCommandsTest, ListPrintsHubCacheModelsAndMissingFiles) {
  const fs::path hub_cache = root_ / "hf" / "hub";
  const fs::path repo = hub_cache / "models--Helsinki-NLP--opus-mt-en-es";
  const fs::path snapshot = repo / "snapshots" / "rev1";
  for (const auto& file : kServedFiles) write_file(snapshot / file, read_file(kFixtureDir / file));
  write_file(repo / "refs" / "main", "rev1");
  write_file(
      hub_cache / "models--Helsinki-NLP--opus-mt-de-en" / "snapshots" / "abc" / "config.json",
      R"({"model_type": "marian"})");

  std::ostringstream table;
  EXPECT_EQ(app::run_models_list(table, ModelSearchDirs{models_dir_, hub_cache}), 0);
  EXPECT_NE(table.str().find("Helsinki-NLP/opus-mt-en-es"), std::string::npos) << table.str();
  EXPECT_NE(table.str().find(snapshot.string()), std::string::npos) << table.str();
  EXPECT_NE(table.str().find("hf-cache"), std::string::npos) << table.str();
  EXPECT_NE(table.str().find("missing: model.safetensors"), std::string::npos) << table.str();
}

TEST_F(ModelCommandsTest, ListWithoutModelsSaysHowToPullOne) {
  std::ostringstream table;
  EXPECT_EQ(app::run_models_list(table, ModelSearchDirs{models_dir_, root_ / "no-hub"}), 0);
  EXPECT_NE(table.str().find("transnotes models pull"), std::string::npos) << table.str();
}

// ---- hostile hubs ----

const std::string kListing = "/api/models/" + kRepo + "/tree/main";

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned size = 0;
  EXPECT_EQ(EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr), 1);
  std::ostringstream out;
  for (unsigned i = 0; i < size; ++i)
    out << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(digest[i]);
  return out.str();
}

// The hub's tree listing of the served files, as huggingface.co gives it: model.safetensors is an
// LFS file (sha256 and size under "lfs"), the others plain git files.
std::string listing_of(const std::map<std::string, Route>& routes,
                       const std::string& weights_sha256 = "", std::uint64_t weights_size = 0) {
  boost::json::array listing;
  for (const auto& file : kServedFiles) {
    const auto it = routes.find(kPrefix + file);
    if (it == routes.end()) continue;
    const std::string& body =
        it->second.status == 302 ? routes.at(it->second.location).body : it->second.body;
    boost::json::object entry{{"type", "file"},
                              {"oid", "0123456789abcdef0123456789abcdef01234567"},
                              {"size", body.size()},
                              {"path", file}};
    if (file == "model.safetensors") {
      entry["lfs"] =
          boost::json::object{{"oid", weights_sha256.empty() ? sha256_hex(body) : weights_sha256},
                              {"size", weights_size != 0 ? weights_size : body.size()},
                              {"pointerSize", 134}};
    }
    listing.push_back(std::move(entry));
  }
  return boost::json::serialize(listing);
}

void expect_pull_refused(const FakeHub& hub, const fs::path& models_dir,
                         const std::vector<std::string>& fragments,
                         std::uint64_t max_bytes = kDefaultMaxDownloadBytes) {
  try {
    pull_model(hub.endpoint(), kRepo, "main", models_dir, {}, max_bytes);
    ADD_FAILURE() << "the pull must be refused";
  } catch (const ModelPullError& e) {
    for (const auto& fragment : fragments)
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
          << "'" << fragment << "' in " << e.what();
  }
  EXPECT_TRUE(entries(models_dir).empty());  // nothing left behind
}

TEST_F(ModelCommandsTest, LfsFilesAreCheckedAgainstTheHubListing) {
  auto routes = fixture_routes();
  routes[kListing] = serve(listing_of(routes));
  {
    FakeHub hub(routes);
    const PullResult result = pull_model(hub.endpoint(), kRepo, "main", models_dir_);
    EXPECT_EQ(read_file(result.path / "model.safetensors"),
              read_file(kFixtureDir / "model.safetensors"));
    EXPECT_EQ(hub.requests_for(kListing), 1);
    fs::remove_all(result.path);
  }
  // The hub's metadata says other bytes than those served (a tampered mirror or CDN).
  routes[kListing] = serve(listing_of(routes, std::string(64, 'a')));
  FakeHub hub(routes);
  expect_pull_refused(hub, models_dir_, {"model.safetensors", "SHA-256 " + std::string(64, 'a')});
}

TEST_F(ModelCommandsTest, LfsSizeMismatchIsRefused) {
  auto routes = fixture_routes();
  const std::string weights = routes[kPrefix + "model.safetensors"].body;
  routes[kListing] = serve(listing_of(routes, sha256_hex(weights), weights.size() - 1));
  FakeHub hub(routes);
  expect_pull_refused(hub, models_dir_,
                      {"model.safetensors", "the hub lists " + std::to_string(weights.size() - 1)});
}

TEST_F(ModelCommandsTest, RedirectsGoToHttpOnly) {
  // A plain TCP listener stands for an FTP server: curl must not even connect to it.
  asio::io_context io;
  tcp::acceptor ftp(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string ftp_url =
      "ftp://127.0.0.1:" + std::to_string(ftp.local_endpoint().port()) + "/model.safetensors";
  for (const std::string& target : {std::string("file:///etc/passwd"), ftp_url}) {
    SCOPED_TRACE(target);
    auto routes = fixture_routes();
    routes[kPrefix + "vocab.json"] = redirect(target);
    FakeHub hub(routes);
    expect_pull_refused(hub, models_dir_, {"vocab.json", target.substr(0, 3)});
  }
  ftp.non_blocking(true);
  tcp::socket socket(io);
  boost::system::error_code ec;
  ftp.accept(socket, ec);
  EXPECT_EQ(ec, asio::error::would_block) << "curl connected to the ftp:// redirect target";
}

TEST_F(ModelCommandsTest, DownloadBeyondTheLimitIsRefused) {
  const auto weights_size = fs::file_size(kFixtureDir / "model.safetensors");
  const std::uint64_t limit = weights_size / 2;
  {
    // Announced by Content-Length: refused before the body is read.
    FakeHub hub(fixture_routes());
    expect_pull_refused(hub, models_dir_,
                        {"model.safetensors", "limit of " + std::to_string(limit) + " bytes"},
                        limit);
  }
  {
    // Not announced (the body ends when the connection closes): aborted mid-transfer.
    auto routes = fixture_routes();
    routes[kPrefix + "model.safetensors"].close_delimited = true;
    FakeHub hub(routes);
    expect_pull_refused(hub, models_dir_,
                        {"model.safetensors", "limit of " + std::to_string(limit) + " bytes"},
                        limit);
  }
  {
    // Listed by the hub: refused before the weights are requested at all.
    auto routes = fixture_routes();
    routes[kListing] = serve(listing_of(routes));
    FakeHub hub(routes);
    expect_pull_refused(hub, models_dir_, {"the hub lists", "more than the pull's limit"}, limit);
    EXPECT_EQ(hub.requests_for(kPrefix + "model.safetensors"), 0);
  }
  // Within the limit, the same hub is fine.
  FakeHub hub(fixture_routes());
  EXPECT_NO_THROW(pull_model(hub.endpoint(), kRepo, "main", models_dir_, {}, weights_size * 2));
}

TEST_F(ModelCommandsTest, ModelFolderGetsTheUmaskPermissions) {
  FakeHub hub(fixture_routes());
  const mode_t original = ::umask(0);
  struct RestoreUmask {
    mode_t mask;
    ~RestoreUmask() { ::umask(mask); }
  } restore{original};
  for (const mode_t mask : {mode_t{022}, mode_t{027}}) {
    ::umask(mask);
    const PullResult result = pull_model(hub.endpoint(), kRepo, "main", models_dir_);
    const auto folder = fs::status(result.path).permissions();
    EXPECT_EQ(static_cast<mode_t>(folder), 0777 & ~mask) << std::oct << static_cast<int>(folder);
    const auto file = fs::status(result.path / "config.json").permissions();
    EXPECT_EQ(static_cast<mode_t>(file), 0666 & ~mask) << std::oct << static_cast<int>(file);
  }
}

TEST_F(ModelCommandsTest, CheckpointThatWouldNotLoadIsRefused) {
  auto routes = fixture_routes();
  auto vocab = boost::json::parse(routes[kPrefix + "vocab.json"].body).as_object();
  vocab["foo"] = 4294967295LL;
  routes[kPrefix + "vocab.json"] = serve(boost::json::serialize(vocab));
  FakeHub hub(routes);
  expect_pull_refused(hub, models_dir_,
                      {kRepo + " is not a usable MarianMT checkpoint: vocab.json: id 4294967295 "
                               "for \"foo\" is outside 0..490"});
  std::ostringstream out, err;
  EXPECT_EQ(app::run_models_pull(out, err, hub.endpoint(), kRepo, "main", models_dir_, false), 1);
  EXPECT_NE(err.str().find("vocab.json: id 4294967295"), std::string::npos) << err.str();
  EXPECT_EQ(err.str().find(".pull-"), std::string::npos) << err.str();  // no staging paths
  EXPECT_TRUE(entries(models_dir_).empty());
}

}  // namespace
}  // namespace transnotes::app
