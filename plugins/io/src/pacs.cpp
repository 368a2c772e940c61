// A DICOM network client (DCMTK's DcmSCU): C-FIND of studies and series,
// C-GET of a series into a folder, C-STORE of files. Used by the io.pacs_*
// nodes (pacs_nodes.cpp).
//
// Errors name the server (AE title, host, port) and what to check; they never
// echo the values of patient keys (a patient ID in a query stays out of logs
// and run records).
#include "pacs.hpp"

#include "io_internal.hpp"

#include <dcmtk/config/osconfig.h>  // first DCMTK include
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/scu.h>
#include <dcmtk/oflog/oflog.h>

#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>

namespace fusionflow::io {
namespace fs = std::filesystem;

namespace {

// DCMTK logs to the console by default; its messages would carry dataset
// contents (identifiers) and are replaced by fusionflow's own errors.
void quiet_network_log() {
  static const bool done = [] {
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
    return true;
  }();
  static_cast<void>(done);
}

std::string where(const PacsPeer& peer) {
  return "the DICOM server '" + peer.called_ae + "' at " + peer.host + ":" + std::to_string(peer.port);
}

OFList<OFString> uncompressed() {
  OFList<OFString> syntaxes;
  syntaxes.push_back(UID_LittleEndianExplicitTransferSyntax);
  syntaxes.push_back(UID_LittleEndianImplicitTransferSyntax);
  return syntaxes;
}

std::string text_of(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  if (item.findAndGetOFStringArray(tag, value).bad()) return {};
  std::string text = value.c_str();
  const auto first = text.find_first_not_of(' ');
  const auto last = text.find_last_not_of(' ');
  return first == std::string::npos ? std::string() : text.substr(first, last - first + 1);
}

// C-GET stores what it receives as instance-N.dcm in the folder.
class Scu : public DcmSCU {
 public:
  explicit Scu(fs::path folder = {}) : folder_(std::move(folder)) {}
  std::size_t received() const { return received_; }

 protected:
  OFString createStorageFilename(DcmDataset* /*dataset*/) override {
    return (folder_ / ("instance-" + std::to_string(++received_) + ".dcm")).c_str();
  }

 private:
  fs::path folder_;
  std::size_t received_ = 0;
};

void configure(DcmSCU& scu, const PacsPeer& peer) {
  quiet_network_log();
  if (peer.port < 1 || peer.port > 65535) {
    throw std::invalid_argument("port " + std::to_string(peer.port) + " of " + where(peer) +
                                " is not a TCP port (1-65535)");
  }
  for (const std::string* title : {&peer.called_ae, &peer.calling_ae}) {
    if (title->empty() || title->size() > 16) {
      throw std::invalid_argument("AE title '" + *title + "' must have 1 to 16 characters (called_ae, calling_ae)");
    }
  }
  const auto seconds = static_cast<Uint32>(std::max(1.0, peer.timeout_s));
  scu.setAETitle(peer.calling_ae.c_str());
  scu.setPeerHostName(peer.host.c_str());
  scu.setPeerPort(static_cast<Uint16>(peer.port));
  scu.setPeerAETitle(peer.called_ae.c_str());
  scu.setConnectionTimeout(static_cast<Sint32>(seconds));
  scu.setACSETimeout(seconds);
  scu.setDIMSETimeout(seconds);
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  // A file in explicit VR goes out in implicit VR if that is what the server chose.
  scu.setDatasetConversionMode(OFTrue);
}

// What went wrong when an association could not be made.
[[noreturn]] void association_failed(const PacsPeer& peer, const OFCondition& status) {
  const std::string text = status.text();
  std::string why;
  if (status == DUL_ASSOCIATIONREJECTED) {
    why = "it refused the association: the called AE title '" + peer.called_ae +
          "' is not its own, or it does not accept the calling AE title '" + peer.calling_ae +
          "' (check called_ae and calling_ae, and the server's list of known modalities)";
  } else if (text.find("refused") != std::string::npos) {
    why = "the connection was refused: no DICOM server listens there (check host and port, and that it runs)";
  } else if (text.find("imeout") != std::string::npos || status == DUL_READTIMEOUT) {
    why = "no answer within " + std::to_string(static_cast<int>(peer.timeout_s)) +
          " s (timeout_s): the server is busy, or host and port belong to something else";
  } else if (status == NET_EC_NoAcceptablePresentationContexts) {
    why = "it accepts none of the services asked for (" + text + ")";
  } else {
    why = text;
  }
  throw std::runtime_error("cannot talk to " + where(peer) + ": " + why);
}

void connect(DcmSCU& scu, const PacsPeer& peer) {
  OFCondition status = scu.initNetwork();
  if (status.bad()) throw std::runtime_error("cannot start DICOM networking: " + std::string(status.text()));
  status = scu.negotiateAssociation();
  if (status.bad()) association_failed(peer, status);
}

T_ASC_PresentationContextID accepted(DcmSCU& scu, const char* abstract_syntax, const PacsPeer& peer,
                                     const std::string& service) {
  const T_ASC_PresentationContextID id = scu.findPresentationContextID(abstract_syntax, "");
  if (id == 0) {
    scu.releaseAssociation();
    throw std::runtime_error(where(peer) + " does not offer " + service +
                             " to this AE title; allow it in the server's configuration");
  }
  return id;
}

// DIMSE status of a final response: 0 success, 0xFF00/0xFF01 pending.
bool failed_status(Uint16 status) { return status != 0 && status != 0xFF00 && status != 0xFF01; }

std::string hex(Uint16 status) {
  char text[8];
  std::snprintf(text, sizeof text, "%04X", status);
  return text;
}

struct FindResults {
  std::vector<std::unique_ptr<DcmDataset>> datasets;
};

FindResults find(DcmSCU& scu, T_ASC_PresentationContextID id, DcmDataset& query, const PacsPeer& peer) {
  OFList<QRResponse*> responses;
  const OFCondition status = scu.sendFINDRequest(id, &query, &responses);
  FindResults results;
  Uint16 last_status = 0;
  for (QRResponse* response : responses) {
    last_status = response->m_status;
    if (response->m_dataset != nullptr) {
      results.datasets.emplace_back(response->m_dataset);
      response->m_dataset = nullptr;
    }
    delete response;
  }
  if (status.bad()) {
    scu.abortAssociation();
    throw std::runtime_error("C-FIND on " + where(peer) + " failed: " + status.text());
  }
  if (failed_status(last_status)) {
    scu.releaseAssociation();
    throw std::runtime_error("C-FIND on " + where(peer) + " was refused (status " + hex(last_status) +
                             "): the server may not allow queries from this AE title");
  }
  return results;
}

}  // namespace

void disable_nagle_for_dicom() {
  // DCMTK leaves Nagle's algorithm on unless TCP_NODELAY=1 is in the
  // environment; then every DIMSE message split into a PDU header and its
  // data waits for a delayed ACK (measured: 43 ms per message against
  // Orthanc on loopback, 5.7 s to store 64 small slices instead of 0.3 s).
  // A user's own TCP_NODELAY is kept.
  ::setenv("TCP_NODELAY", "1", 0);
}

std::vector<PacsSeries> pacs_find_series(const PacsPeer& peer, const PacsQuery& query) {
  Scu scu;
  configure(scu, peer);
  scu.addPresentationContext(UID_FINDStudyRootQueryRetrieveInformationModel, uncompressed());
  connect(scu, peer);
  const T_ASC_PresentationContextID id =
      accepted(scu, UID_FINDStudyRootQueryRetrieveInformationModel, peer, "C-FIND (study root)");

  // Studies first (a series-level query in the study root needs the study).
  DcmDataset studies_query;
  studies_query.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
  studies_query.putAndInsertString(DCM_PatientID, query.patient_id.c_str());
  studies_query.putAndInsertString(DCM_AccessionNumber, query.accession_number.c_str());
  studies_query.putAndInsertString(DCM_StudyInstanceUID, query.study_uid.c_str());
  const FindResults studies = find(scu, id, studies_query, peer);

  std::vector<PacsSeries> found;
  for (const auto& study : studies.datasets) {
    const std::string study_uid = text_of(*study, DCM_StudyInstanceUID);
    if (study_uid.empty()) continue;
    DcmDataset series_query;
    series_query.putAndInsertString(DCM_QueryRetrieveLevel, "SERIES");
    series_query.putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str());
    series_query.putAndInsertString(DCM_SeriesInstanceUID, query.series_uid.c_str());
    series_query.putAndInsertString(DCM_Modality, query.modality.c_str());
    series_query.putAndInsertString(DCM_SeriesDescription, query.series_description.c_str());
    series_query.putAndInsertString(DCM_SeriesNumber, "");
    series_query.putAndInsertString(DCM_NumberOfSeriesRelatedInstances, "");
    const FindResults series = find(scu, id, series_query, peer);
    for (const auto& item : series.datasets) {
      PacsSeries match;
      match.study_uid = study_uid;
      match.series_uid = text_of(*item, DCM_SeriesInstanceUID);
      match.modality = text_of(*item, DCM_Modality);
      match.series_description = text_of(*item, DCM_SeriesDescription);
      match.series_number = text_of(*item, DCM_SeriesNumber);
      const std::string instances = text_of(*item, DCM_NumberOfSeriesRelatedInstances);
      match.instances = instances.empty() ? 0 : std::strtoull(instances.c_str(), nullptr, 10);
      // Servers may match loosely (wildcards, case); keep what was asked.
      if (!query.modality.empty() && match.modality != query.modality) continue;
      if (!query.series_description.empty() && match.series_description != query.series_description) continue;
      if (!query.series_uid.empty() && match.series_uid != query.series_uid) continue;
      if (!match.series_uid.empty()) found.push_back(std::move(match));
    }
  }
  scu.releaseAssociation();
  std::sort(found.begin(), found.end(), [](const PacsSeries& a, const PacsSeries& b) {
    return std::tie(a.study_uid, a.series_number, a.series_uid) < std::tie(b.study_uid, b.series_number, b.series_uid);
  });
  return found;
}

std::size_t pacs_get_series(const PacsPeer& peer, const PacsSeries& series, const fs::path& folder,
                            const std::function<void()>& cancel_point) {
  Scu scu(folder);
  configure(scu, peer);
  scu.setStorageMode(DCMSCU_STORAGE_DISK);
  scu.setStorageDir(folder.c_str());
  scu.addPresentationContext(UID_GETStudyRootQueryRetrieveInformationModel, uncompressed());
  // C-GET sends the images back on this association: it must accept them.
  for (int n = 0; n < numberOfDcmLongSCUStorageSOPClassUIDs; ++n) {
    scu.addPresentationContext(dcmLongSCUStorageSOPClassUIDs[n], uncompressed(), ASC_SC_ROLE_SCP);
  }
  cancel_point();
  connect(scu, peer);
  const T_ASC_PresentationContextID id =
      accepted(scu, UID_GETStudyRootQueryRetrieveInformationModel, peer, "C-GET (study root)");
  DcmDataset request;
  request.putAndInsertString(DCM_QueryRetrieveLevel, "SERIES");
  request.putAndInsertString(DCM_StudyInstanceUID, series.study_uid.c_str());
  request.putAndInsertString(DCM_SeriesInstanceUID, series.series_uid.c_str());
  OFList<RetrieveResponse*> responses;
  const OFCondition status = scu.sendCGETRequest(id, &request, &responses);
  Uint16 last_status = 0, failed = 0;
  for (RetrieveResponse* response : responses) {
    last_status = response->m_status;
    failed = response->m_numberOfFailedSubops;
    delete response;
  }
  if (status.bad()) {
    scu.abortAssociation();
    throw std::runtime_error("C-GET of a " + series.modality + " series from " + where(peer) +
                             " failed: " + status.text());
  }
  scu.releaseAssociation();
  if (failed_status(last_status) && last_status != 0xB000) {  // B000: some sub-operations failed
    throw std::runtime_error("C-GET of a " + series.modality + " series from " + where(peer) + " was refused (status " +
                             hex(last_status) + "): the server may not allow retrieval by this AE title");
  }
  if (failed > 0 || last_status == 0xB000) {
    throw std::runtime_error("C-GET from " + where(peer) + ": " + std::to_string(failed) + " of the series' " +
                             std::to_string(series.instances) +
                             " instances were not sent (the server could not send them in an uncompressed "
                             "transfer syntax, or their SOP class was not offered)");
  }
  if (scu.received() == 0) {
    throw std::runtime_error("C-GET from " + where(peer) + " returned no instance of the " + series.modality +
                             " series");
  }
  return scu.received();
}

void pacs_store_files(const PacsPeer& peer, const std::vector<fs::path>& files,
                      const std::function<void(std::size_t)>& progress) {
  if (files.empty()) return;
  // One presentation context per SOP class in the files.
  std::vector<std::string> classes;
  for (const fs::path& file : files) {
    DcmFileFormat format;
    if (format.loadFile(OFFilename(file.c_str()), EXS_Unknown, EGL_noChange, 4096).bad()) {
      throw std::runtime_error("cannot read '" + file.string() + "' to send it");
    }
    const std::string sop_class = text_of(*format.getMetaInfo(), DCM_MediaStorageSOPClassUID);
    if (std::find(classes.begin(), classes.end(), sop_class) == classes.end()) classes.push_back(sop_class);
  }
  Scu scu;
  configure(scu, peer);
  for (const std::string& sop_class : classes) scu.addPresentationContext(sop_class.c_str(), uncompressed());
  connect(scu, peer);
  for (std::size_t n = 0; n < files.size(); ++n) {
    Uint16 response = 0;
    const OFCondition status = scu.sendSTORERequest(0, OFFilename(files[n].c_str()), nullptr, response);
    if (status.bad()) {
      scu.abortAssociation();
      throw std::runtime_error("C-STORE of '" + files[n].filename().string() + "' to " + where(peer) +
                               " failed: " + status.text() + " (" + std::to_string(n) + " of " +
                               std::to_string(files.size()) + " instances stored)");
    }
    if (response != 0 && (response & 0xF000) != 0xB000) {  // Bxxx: stored with a warning
      scu.releaseAssociation();
      throw std::runtime_error("C-STORE of '" + files[n].filename().string() + "' to " + where(peer) +
                               " was refused (status " + hex(response) + "; " + std::to_string(n) + " of " +
                               std::to_string(files.size()) + " instances stored)");
    }
    progress(n + 1);
  }
  scu.releaseAssociation();
}

}  // namespace fusionflow::io
