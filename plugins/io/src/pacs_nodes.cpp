// The io.pacs_* nodes: io.pacs_find (C-FIND, a table of series),
// io.pacs_load_ct/_mri/_pet/_image (the loaders, reading one series by C-GET
// instead of from a path) and io.pacs_store (io.write_dicom, then C-STORE).
//
// A retrieved series lives in a private temporary folder (mode 0700: it holds
// the patient's identifiers) for as long as the loader reads it; a series to
// store is written completely before the first instance is sent. So a failed
// retrieval leaves nothing locally, and a failed write sends nothing.
#include "io_internal.hpp"

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

namespace fusionflow::io {
namespace fs = std::filesystem;

namespace {

constexpr OutputPort<Table> kSeriesOut{"series"};

// A folder only this user can read, removed with the object.
class PrivateFolder {
 public:
  PrivateFolder() {
    std::string pattern = (fs::temp_directory_path() / "fusionflow-pacs-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("cannot create a temporary folder in '" + fs::temp_directory_path().string() +
                               "' for the DICOM series: " + std::strerror(errno));
    }
    path_ = pattern;
  }
  ~PrivateFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  PrivateFolder(const PrivateFolder&) = delete;
  PrivateFolder& operator=(const PrivateFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Names of the keys given, never their values (a patient ID stays out of
// messages).
std::string keys_given(const PacsQuery& query) {
  std::string keys;
  auto add = [&](const std::string& value, const std::string& name) {
    if (!value.empty()) keys += (keys.empty() ? "" : ", ") + name;
  };
  add(query.patient_id, "patient_id");
  add(query.accession_number, "accession_number");
  add(query.study_uid, "study_uid");
  add(query.series_uid, "series_uid");
  if (!query.modality.empty()) keys += (keys.empty() ? "" : ", ") + ("modality " + query.modality);
  if (!query.series_description.empty()) {
    keys += (keys.empty() ? "" : ", ") + ("series_description '" + query.series_description + "'");
  }
  return keys;
}

void require_a_selective_key(const PacsQuery& query) {
  if (query.patient_id.empty() && query.accession_number.empty() && query.study_uid.empty() &&
      query.series_uid.empty()) {
    throw std::invalid_argument(
        "give at least one of patient_id, accession_number, study_uid or series_uid: without them the query would "
        "match every study on the server");
  }
}

std::string describe(const PacsSeries& series) {
  return series.modality + " series " + (series.series_number.empty() ? "" : series.series_number + " ") + "'" +
         series.series_description + "'" +
         (series.instances ? " (" + std::to_string(series.instances) + " instances)" : std::string()) +
         ", series_uid " + series.series_uid;
}

std::string server(const PacsPeer& peer) {
  return "'" + peer.called_ae + "' at " + peer.host + ":" + std::to_string(peer.port);
}

// Finds the one series the keys select and reads it with `run`.
template <class Base>
void run_from_pacs(NodeContext& ctx, const PacsLoad<Base>& options, const std::string& modality,
                   void (*run)(NodeContext&, const Base&)) {
  const PacsPeer& peer = options;
  PacsQuery query;
  static_cast<PacsStudyKeys&>(query) = options;
  query.series_uid = options.series_uid;
  query.series_description = options.series_description;
  query.modality = modality;
  require_a_selective_key(query);
  ctx.throw_if_cancelled();
  const std::vector<PacsSeries> found = pacs_find_series(peer, query);
  if (found.empty()) {
    throw std::runtime_error("no " + (modality.empty() ? std::string() : modality + " ") + "series on " + server(peer) +
                             " matches the keys given (" + keys_given(query) +
                             "); check them, or list what the server holds with io.pacs_find");
  }
  if (found.size() > 1) {
    std::string listing;
    for (const PacsSeries& series : found) listing += "\n  " + describe(series);
    throw std::runtime_error(std::to_string(found.size()) + " series on " + server(peer) + " match the keys given (" +
                             keys_given(query) + "); choose one with series_uid or series_description:" + listing);
  }
  const PacsSeries& series = found.front();
  ctx.progress(0.1);
  PrivateFolder folder;
  const fs::path target = folder.path() / (peer.called_ae + "-" + series.modality + "-series");
  fs::create_directory(target);
  const std::size_t received = pacs_get_series(peer, series, target, [&ctx] { ctx.throw_if_cancelled(); });
  ctx.log(LogLevel::Info, "retrieved " + std::to_string(received) + " instances of the " + series.modality +
                              " series '" + series.series_description + "' from " + server(peer));
  ctx.progress(0.5);
  Base base = options;
  base.path = target;
  base.series_uid = series.series_uid;
  base.series_description.clear();
  run(ctx, base);
}

}  // namespace

void run_pacs_load_ct(NodeContext& ctx, const PacsLoad<LoadCtOptions>& options) {
  run_from_pacs<LoadCtOptions>(ctx, options, "CT", run_load_ct);
}
void run_pacs_load_mri(NodeContext& ctx, const PacsLoad<LoadMriOptions>& options) {
  run_from_pacs<LoadMriOptions>(ctx, options, "MR", run_load_mri);
}
void run_pacs_load_pet(NodeContext& ctx, const PacsLoad<LoadPetOptions>& options) {
  run_from_pacs<LoadPetOptions>(ctx, options, "PT", run_load_pet);
}
void run_pacs_load_image(NodeContext& ctx, const PacsLoad<LoadImageOptions>& options) {
  run_from_pacs<LoadImageOptions>(ctx, options, options.modality, run_load_image);
}

// --- io.pacs_find ------------------------------------------------------------------

NodeType<PacsFindOptions> pacs_find_node() {
  NodeType<PacsFindOptions> node("io.pacs_find", "1.0.0",
                                 "Lists the series on a DICOM server that match study and series keys (C-FIND, "
                                 "study root): one row per series with its UIDs, modality, description, number and "
                                 "instance count; no patient attribute");
  node.output(kSeriesOut,
              "columns study_uid, series_uid, modality, series_description, series_number, instances; sorted by "
              "study, series number and UID");
  add_peer_params(node);
  add_study_key_params(node);
  node.param(&PacsQuery::series_uid, "series_uid", "SeriesInstanceUID (exact)")
      .param(&PacsQuery::modality, "modality", "Modality, e.g. CT, MR, PT, OT (exact)")
      .param(&PacsQuery::series_description, "series_description", "SeriesDescription (exact)")
      .uncacheable("it reads from a DICOM server, whose content the node cache cannot track");
  return node;
}

void run_pacs_find(NodeContext& ctx, const PacsFindOptions& options) {
  require_a_selective_key(options);
  const std::vector<PacsSeries> found = pacs_find_series(options, options);
  Table table;
  table.columns = {"study_uid", "series_uid", "modality", "series_description", "series_number", "instances"};
  for (const PacsSeries& series : found) {
    table.add_row({{"study_uid", series.study_uid},
                   {"series_uid", series.series_uid},
                   {"modality", series.modality},
                   {"series_description", series.series_description},
                   {"series_number", series.series_number},
                   {"instances", double(series.instances)}});
  }
  ctx.log(LogLevel::Info,
          std::to_string(found.size()) + " series on " + server(options) + " match (" + keys_given(options) + ")");
  ctx.output(kSeriesOut, std::move(table));
  ctx.progress(1.0);
}

// --- io.pacs_store -----------------------------------------------------------------

NodeType<PacsStoreOptions> pacs_store_node() {
  NodeType<PacsStoreOptions> node = write_dicom_node_type<PacsStoreOptions>(
      "io.pacs_store",
      "Writes a volume as a DICOM series exactly as io.write_dicom does, then sends every instance to a DICOM "
      "server (C-STORE on one association); the series is complete before the first instance is sent",
      true);
  add_peer_params(node);
  node.uncacheable("it sends to a DICOM server: a cached result would not send again");
  return node;
}

void run_pacs_store(NodeContext& ctx, const PacsStoreOptions& options) {
  PrivateFolder scratch;
  WriteDicomOptions write = options;
  if (write.path.empty()) write.path = scratch.path() / "series";
  run_write_dicom(ctx, write);
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(write.path)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  const PacsPeer& peer = options;
  ctx.throw_if_cancelled();
  pacs_store_files(peer, files,
                   [&](std::size_t sent) { ctx.progress(0.5 + 0.5 * double(sent) / double(files.size())); });
  ctx.log(LogLevel::Info, "stored " + std::to_string(files.size()) + " instances on " + server(peer));
}

}  // namespace fusionflow::io
