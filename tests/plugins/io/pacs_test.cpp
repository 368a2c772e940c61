// The io.pacs_* nodes against a real DICOM server: Debian's Orthanc, started
// by the test on loopback (free unprivileged ports, a temporary storage
// folder) and stopped by its pid at the end, pass or fail. Through the real
// `fusionflow` program: push the phantom (to_pacs.json), run the default
// fusion reading CT, MRI and PET from the server and storing the fused series
// back (pacs_fusion.json), query the stored result, read it back; and the
// errors: unknown AE title, no server, no answer, no such study, several
// matching series, with nothing left behind locally.
#include <gtest/gtest.h>

#include "test_support.hpp"

#include <fusionflow/itk_bridge.hpp>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace {
namespace fs = std::filesystem;
using fusionflow::testing::CommandOutput;
using fusionflow::testing::run_command;

const std::string kExamples = std::string(FUSIONFLOW_SOURCE_DIR) + "/examples/pipelines/";

// A free TCP port on loopback (bound, read, released).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return -1;
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// Orthanc on loopback, for one test suite.
class Orthanc {
 public:
  explicit Orthanc(const fs::path& dir) : dir_(dir) {
    fs::create_directories(dir_ / "storage");
    http_port_ = free_port();
    dicom_port_ = free_port();
    std::ofstream(dir_ / "orthanc.json")
        << R"({"Name": "fusionflow-test", "StorageDirectory": ")" << (dir_ / "storage").string()
        << R"(", "IndexDirectory": ")" << (dir_ / "storage").string() << R"(", "HttpPort": )" << http_port_
        << R"(, "DicomPort": )" << dicom_port_
        << R"(, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
             "DicomCheckCalledAet": true, "DicomAlwaysAllowFind": true, "DicomAlwaysAllowGet": true,
             "Plugins": []})";
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string log = (dir_ / "orthanc.log").string();
      std::freopen(log.c_str(), "w", stdout);
      std::freopen(log.c_str(), "a", stderr);
      // Nagle off on the server's side too (DCMTK reads TCP_NODELAY).
      ::setenv("TCP_NODELAY", "1", 1);
      ::execl(ORTHANC_EXE, ORTHANC_EXE, (dir_ / "orthanc.json").c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int attempt = 0; attempt < 300 && !ready(); ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~Orthanc() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      for (int attempt = 0; attempt < 100; ++attempt) {
        if (::waitpid(pid_, &status, WNOHANG) == pid_) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  Orthanc(const Orthanc&) = delete;
  Orthanc& operator=(const Orthanc&) = delete;

  bool ready() const { return rest("/system").find("DicomAet") != std::string::npos; }
  std::string rest(const std::string& path) const {
    return run_command("curl -s --max-time 5 http://127.0.0.1:" + std::to_string(http_port_) + path).text;
  }
  int dicom_port() const { return dicom_port_; }
  std::string log() const { return fusionflow::testing::read_file(dir_ / "orthanc.log"); }

 private:
  fs::path dir_;
  int http_port_ = 0, dicom_port_ = 0;
  pid_t pid_ = -1;
};

CommandOutput fusionflow_run(const std::string& arguments, const fs::path& temp) {
  // TMPDIR: the retrieved series' private folders go there, to be checked.
  return run_command("TMPDIR='" + temp.string() + "' " + FUSIONFLOW_EXE + " run " + arguments + " 2>&1");
}

std::string every_byte_under(const fs::path& folder) {
  std::string bytes;
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    if (entry.is_regular_file()) bytes += fusionflow::testing::read_file(entry.path());
  }
  return bytes;
}

bool empty_folder(const fs::path& folder) { return fs::is_empty(folder); }

class Pacs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ = fusionflow::testing::fresh_temp_directory("pacs");
    server_ = new Orthanc(work_ / "orthanc");
    phantom_ = run_command(std::string(FUSIONFLOW_EXE) + " phantom --size 48 --seed 9 --out " +
                           (work_ / "phantom").string() + " 2>&1");
  }
  static void TearDownTestSuite() {
    delete server_;  // stops Orthanc by its pid
    server_ = nullptr;
    fs::remove_all(work_);
  }
  void SetUp() override {
    ASSERT_TRUE(server_->ready()) << server_->log();
    ASSERT_EQ(phantom_.exit_code, 0) << phantom_.text;
    temp_ = work_ / ("tmp-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::create_directories(temp_);
  }
  std::string port() const { return std::to_string(server_->dicom_port()); }
  // Pushes the phantom as one study of the given pseudonymous patient.
  CommandOutput push(const std::string& patient_id, const std::string& patient_name) const {
    return fusionflow_run(kExamples + "to_pacs.json --set pacs_port=" + port() +
                              " --set ct=" + (work_ / "phantom/ct.nii.gz").string() +
                              " --set mri=" + (work_ / "phantom/t1.nii.gz").string() +
                              " --set pet=" + (work_ / "phantom/pet.nii.gz").string() +
                              " --set patient_id=" + patient_id + " --set patient_name=" + patient_name,
                          temp_);
  }

  static fs::path work_;
  static Orthanc* server_;
  static CommandOutput phantom_;
  fs::path temp_;
};
fs::path Pacs::work_;
Orthanc* Pacs::server_ = nullptr;
CommandOutput Pacs::phantom_;

TEST_F(Pacs, FusionFromTheServerStoresTheFusedSeriesBackAndItCanBeQueriedAndRead) {
  const CommandOutput pushed = push("FF-PACS-0042", "Pacs^Jane");
  ASSERT_EQ(pushed.exit_code, 0) << pushed.text;
  EXPECT_NE(server_->rest("/patients").find('"'), std::string::npos);

  const fs::path out = work_ / "fusion";
  const CommandOutput fused = fusionflow_run(kExamples + "pacs_fusion.json --threads 2 --set pacs_port=" + port() +
                                                 " --set patient_id=FF-PACS-0042 --set out=" + out.string() +
                                                 " --record " + (out / "run.json").string(),
                                             temp_);
  ASSERT_EQ(fused.exit_code, 0) << fused.text << server_->log();
  EXPECT_TRUE(empty_folder(temp_)) << "a retrieved series was left in " << temp_;
  // Nothing of the patient reached the outputs, the run record or the log:
  // the query key is a confidential parameter.
  const std::string record = fusionflow::testing::read_file(out / "run.json");
  EXPECT_NE(record.find("\"patient_id\": \"(withheld)\""), std::string::npos) << record;
  const std::string outputs = every_byte_under(out) + fused.text;
  for (const char* identifier : {"FF-PACS-0042", "Pacs^Jane"}) {
    EXPECT_EQ(outputs.find(identifier), std::string::npos) << identifier;
  }

  // The fused series is on the server: query it, then read it back.
  const fs::path query = work_ / "query.json";
  fusionflow::testing::write_file(query, R"({"format_version": 1,
    "nodes": [
      {"id": "find", "type": "io.pacs_find", "params": {"port": "${port}", "called_ae": "ORTHANC",
        "patient_id": "", "modality": "OT", "series_description": "fusionflow fused CT+MRI+PET",
        "study_uid": "${study}"}},
      {"id": "table", "type": "core.write_table", "inputs": {"table": "find.series"},
        "params": {"path": "${out}/found.csv"}},
      {"id": "load", "type": "io.pacs_load_image", "params": {"port": "${port}", "called_ae": "ORTHANC",
        "study_uid": "${study}", "series_description": "fusionflow fused CT+MRI+PET"}},
      {"id": "write", "type": "io.write", "inputs": {"volume": "load.volume"},
        "params": {"path": "${out}/fused_from_pacs.nii.gz"}}],
    "variables": {"port": {"default": "0"}, "study": {"default": ""}, "out": {"default": "."}}})");
  // The study of the pushed phantom, from the stored fused series' own tags.
  const std::string study =
      run_command("/usr/bin/python3 -c \"import pydicom,sys; print(pydicom.dcmread(sys.argv[1]).StudyInstanceUID)\" '" +
                  (out / "fused_dicom/slice-0001.dcm").string() + "'")
          .text;
  const std::string study_uid = study.substr(0, study.find('\n'));
  const CommandOutput found = fusionflow_run(query.string() + " --set port=" + port() + " --set study=" + study_uid +
                                                 " --set out=" + (work_ / "queried").string(),
                                             temp_);
  ASSERT_EQ(found.exit_code, 0) << found.text;
  std::ifstream csv(work_ / "queried/found.csv");
  std::string header, row, extra;
  std::getline(csv, header);
  std::getline(csv, row);
  EXPECT_FALSE(std::getline(csv, extra)) << "more than one fused series";
  EXPECT_NE(row.find(",OT,fusionflow fused CT+MRI+PET,901,48"), std::string::npos) << header << "\n" << row;

  const fusionflow::Volume local = fusionflow::read_volume(out / "fused.nii.gz");
  const fusionflow::Volume remote = fusionflow::read_volume(work_ / "queried/fused_from_pacs.nii.gz");
  EXPECT_TRUE(remote.geometry.same_grid(local.geometry, 1e-4));
  ASSERT_EQ(remote.voxels.size(), local.voxels.size());
  const auto [low, high] = std::minmax_element(local.voxels.begin(), local.voxels.end());
  double worst = 0;
  for (std::size_t n = 0; n < local.voxels.size(); ++n) {
    worst = std::max(worst, std::fabs(double(remote.voxels[n]) - local.voxels[n]));
  }
  EXPECT_LE(worst, 0.5 * (*high - *low) / 65534.0 * 1.001 + 1e-6);
  EXPECT_TRUE(empty_folder(temp_));
}

// A pipeline with one io.pacs_load_ct node; its output file must not appear.
CommandOutput load_ct(const fs::path& work, const fs::path& temp, const std::string& params) {
  const fs::path pipeline = work / "load_ct.json";
  fusionflow::testing::write_file(pipeline, R"({"format_version": 1, "nodes": [
      {"id": "ct", "type": "io.pacs_load_ct", "params": {)" +
                                                params + R"(}},
      {"id": "write", "type": "io.write", "inputs": {"volume": "ct.volume"},
       "params": {"path": ")" + (work / "ct.nii.gz").string() +
                                                R"("}}]})");
  return fusionflow_run(pipeline.string(), temp);
}

TEST_F(Pacs, ErrorsSayWhatIsWrongExitOneAndLeaveNothingBehind) {
  ASSERT_EQ(push("FF-PACS-0099", "Err^Jane").exit_code, 0);
  const fs::path work = work_ / "errors";
  fs::create_directories(work);
  struct Case {
    std::string params, message;
  };
  // A socket that listens but never answers: the association times out.
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(silent, 4), 0);
  socklen_t length = sizeof address;
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&address), &length);
  const std::string silent_port = std::to_string(ntohs(address.sin_port));
  const std::string closed_port = std::to_string(free_port());

  const std::vector<Case> cases = {
      {R"("port": )" + port() + R"(, "called_ae": "NOT-ORTHANC", "patient_id": "FF-PACS-0099")",
       "refused the association: the called AE title 'NOT-ORTHANC'"},
      {R"("port": )" + closed_port + R"(, "called_ae": "ORTHANC", "patient_id": "FF-PACS-0099")",
       "the connection was refused"},
      {R"("port": )" + silent_port + R"(, "called_ae": "ORTHANC", "patient_id": "FF-PACS-0099", "timeout_s": 2)",
       "no answer within 2 s"},
      {R"("port": )" + port() + R"(, "called_ae": "ORTHANC", "patient_id": "FF-NOBODY")", "no CT series on 'ORTHANC'"},
      {R"("port": )" + port() + R"(, "called_ae": "ORTHANC")", "give at least one of patient_id"},
  };
  for (const Case& c : cases) {
    const CommandOutput out = load_ct(work, temp_, c.params);
    EXPECT_EQ(out.exit_code, 1) << c.params << "\n" << out.text;
    EXPECT_NE(out.text.find(c.message), std::string::npos) << c.params << "\n" << out.text;
    EXPECT_EQ(out.text.find("FF-PACS-0099"), std::string::npos) << "the patient ID was echoed:\n" << out.text;
    EXPECT_FALSE(fs::exists(work / "ct.nii.gz"));
    EXPECT_TRUE(empty_folder(temp_)) << c.params;
  }
  ::close(silent);

  // Two CT series of one patient: the error lists them to choose from.
  ASSERT_EQ(push("FF-PACS-0099", "Err^Jane").exit_code, 0);  // the same series again: still one
  const CommandOutput one = load_ct(work, temp_, R"("port": )" + port() + R"(, "called_ae": "ORTHANC",
      "patient_id": "FF-PACS-0099")");
  EXPECT_EQ(one.exit_code, 0) << one.text;
  fs::remove(work / "ct.nii.gz");
  const fs::path second = work_ / "second.json";
  fusionflow::testing::write_file(second, R"({"format_version": 1, "nodes": [
      {"id": "ct", "type": "io.load_ct", "params": {"path": ")" +
                                              (work_ / "phantom/ct.nii.gz").string() + R"("}},
      {"id": "store", "type": "io.pacs_store", "inputs": {"volume": "ct.volume"},
       "params": {"port": )" + port() + R"(, "called_ae": "ORTHANC", "patient_id": "FF-PACS-0099",
                  "series_description": "second CT", "series_number": 77}}]})");
  ASSERT_EQ(fusionflow_run(second.string(), temp_).exit_code, 0);
  const CommandOutput two = load_ct(work, temp_, R"("port": )" + port() + R"(, "called_ae": "ORTHANC",
      "patient_id": "FF-PACS-0099")");
  EXPECT_EQ(two.exit_code, 1) << two.text;
  EXPECT_NE(two.text.find("choose one with series_uid or series_description"), std::string::npos) << two.text;
  EXPECT_NE(two.text.find("'second CT'"), std::string::npos) << two.text;
  EXPECT_FALSE(fs::exists(work / "ct.nii.gz"));
}

}  // namespace
