// A DICOM network client for the io.pacs_* nodes: C-FIND, C-GET, C-STORE
// with DCMTK (pacs.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace fusionflow::io {

// The server and how to reach it.
struct PacsPeer {
  std::string host = "127.0.0.1";
  std::int64_t port = 104;
  std::string called_ae = "ANY-SCP";      // the server's AE title
  std::string calling_ae = "FUSIONFLOW";  // ours
  double timeout_s = 30.0;                // connection, association and each message
};

// Study keys; empty: any. Matching is exact (no wildcards).
struct PacsStudyKeys {
  std::string patient_id;
  std::string accession_number;
  std::string study_uid;
};

// Study and series keys.
struct PacsQuery : PacsStudyKeys {
  std::string series_uid;
  std::string modality;
  std::string series_description;
};

struct PacsSeries {
  std::string study_uid, series_uid, modality, series_description, series_number;
  std::size_t instances = 0;  // NumberOfSeriesRelatedInstances (0: not given)
};

// Sets TCP_NODELAY=1 in the environment unless it is set (DCMTK reads it when
// it opens a connection). Called when the plugin is loaded, before any thread
// of a run could read the environment.
void disable_nagle_for_dicom();

// C-FIND (study root): the studies matching the patient and study keys, then
// their series matching the series keys, sorted by study, series number and
// UID.
std::vector<PacsSeries> pacs_find_series(const PacsPeer& peer, const PacsQuery& query);

// C-GET of one series into `folder` (which exists); returns the number of
// instances received. Throws if the server refuses or sends none.
std::size_t pacs_get_series(const PacsPeer& peer, const PacsSeries& series, const std::filesystem::path& folder,
                            const std::function<void()>& cancel_point);

// C-STORE of each file on one association; progress(n) after each.
void pacs_store_files(const PacsPeer& peer, const std::vector<std::filesystem::path>& files,
                      const std::function<void(std::size_t)>& progress);

}  // namespace fusionflow::io
