// PET standardised uptake value (body weight):
//   SUVbw = activity concentration [Bq/mL] x body weight [g] / decay-corrected injected dose [Bq]
// with the dose decayed from injection to the time the images are
// decay-corrected to (DecayCorrection START: the series start; ADMIN: the
// injection itself, no decay). The series start is SeriesDate/SeriesTime,
// unless a slice was acquired earlier (re-processed series), as in the QIBA
// SUV reference algorithm.
//
// DICOM DA/TM/DT arithmetic is hand-written: DCMTK's OFDate/OFTime would do,
// but only a few lines are needed and they stay testable without DCMTK.
#include "io_internal.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

namespace fusionflow::io {
namespace {

bool all_digits(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// DICOM DA "YYYYMMDD" (or legacy "YYYY.MM.DD") -> days since 1970-01-01.
std::optional<std::int64_t> parse_dicom_date(std::string da) {
  da.erase(std::remove(da.begin(), da.end(), '.'), da.end());
  if (da.size() != 8 || !all_digits(da)) return std::nullopt;
  const int year = std::stoi(da.substr(0, 4));
  const int month = std::stoi(da.substr(4, 2));
  const int day = std::stoi(da.substr(6, 2));
  if (month < 1 || month > 12 || day < 1 || day > 31) return std::nullopt;
  return days_from_civil(year, unsigned(month), unsigned(day));
}

struct Stamp {
  std::optional<std::int64_t> day;  // days since 1970-01-01, if known
  double seconds = 0.0;             // since midnight
};

// DICOM DT "YYYYMMDDHHMMSS.FFFFFF&ZZXX" -> date and time of day. The UTC
// offset is ignored: all times of one study are on the same local clock.
std::optional<Stamp> parse_dicom_datetime(std::string dt) {
  const auto zone = dt.find_first_of("+-");
  if (zone != std::string::npos) dt = dt.substr(0, zone);
  if (dt.size() < 10) return std::nullopt;  // need at least YYYYMMDDHH
  const auto day = parse_dicom_date(dt.substr(0, 8));
  const auto time = parse_dicom_time(dt.substr(8));
  if (!day || !time) return std::nullopt;
  return Stamp{day, *time};
}

std::optional<Stamp> stamp_of(const std::string& date, const std::string& time) {
  const auto seconds = parse_dicom_time(time);
  if (!seconds) return std::nullopt;
  return Stamp{parse_dicom_date(date), *seconds};
}

std::string format_seconds(double seconds) {
  std::ostringstream text;
  text.precision(10);
  text << seconds;
  return text.str();
}

}  // namespace

std::optional<double> parse_dicom_time(const std::string& tm_in) {
  std::string tm = tm_in;
  // Legacy ACR-NEMA form "HH:MM:SS.frac".
  tm.erase(std::remove(tm.begin(), tm.end(), ':'), tm.end());
  while (!tm.empty() && tm.back() == ' ') tm.pop_back();
  const auto dot = tm.find('.');
  const std::string whole = tm.substr(0, dot);
  const std::string fraction = dot == std::string::npos ? std::string() : tm.substr(dot + 1);
  if ((whole.size() != 2 && whole.size() != 4 && whole.size() != 6) || !all_digits(whole)) return std::nullopt;
  if (!fraction.empty() && (fraction.size() > 6 || !all_digits(fraction) || whole.size() != 6)) return std::nullopt;
  const int hours = std::stoi(whole.substr(0, 2));
  const int minutes = whole.size() >= 4 ? std::stoi(whole.substr(2, 2)) : 0;
  const int seconds = whole.size() >= 6 ? std::stoi(whole.substr(4, 2)) : 0;
  if (hours > 23 || minutes > 59 || seconds > 60) return std::nullopt;
  double value = hours * 3600.0 + minutes * 60.0 + seconds;
  if (!fraction.empty()) value += std::stod("0." + fraction);
  return value;
}

std::optional<double> dicom_uptake_seconds(const DicomAttributes& dicom, const std::string& injection_override,
                                           std::vector<std::string>& missing) {
  // Decay reference: the series start, or the earliest acquisition if that
  // is earlier (series re-processed later) or the series time is absent.
  std::optional<Stamp> scan = stamp_of(dicom.series_date, dicom.series_time);
  const std::optional<Stamp> acquisition = stamp_of(dicom.acquisition_date, dicom.acquisition_time);
  if (acquisition) {
    const bool comparable_days = scan && scan->day && acquisition->day;
    const bool acquisition_earlier = !scan || (comparable_days ? (*acquisition->day * 86400.0 + acquisition->seconds) <
                                                                     (*scan->day * 86400.0 + scan->seconds)
                                                               : acquisition->seconds < scan->seconds);
    if (acquisition_earlier) scan = acquisition;
  }
  std::optional<Stamp> injection;
  std::string injection_source;
  if (!injection_override.empty()) {
    const std::string whole = injection_override.substr(0, injection_override.find('.'));
    const bool datetime = whole.size() >= 10 && all_digits(whole);
    injection = datetime ? parse_dicom_datetime(injection_override) : stamp_of("", injection_override);
    if (!injection) {
      missing.push_back("a valid parameter injection_time ('" + injection_override +
                        "' is neither DICOM TM HHMMSS[.ffffff] nor DT YYYYMMDDHHMMSS[.ffffff])");
      return std::nullopt;
    }
    injection_source = "parameter injection_time";
  } else if (!dicom.injection_datetime.empty() && parse_dicom_datetime(dicom.injection_datetime)) {
    injection = parse_dicom_datetime(dicom.injection_datetime);
    injection_source = "RadiopharmaceuticalStartDateTime (0018,1078)";
  } else if (!dicom.injection_time.empty() && parse_dicom_time(dicom.injection_time)) {
    injection = stamp_of("", dicom.injection_time);
    // A time without date is on the series' day.
    injection_source = "RadiopharmaceuticalStartTime (0018,1072)";
  }
  if (!scan) {
    missing.push_back(
        "the scan start time (DICOM SeriesTime (0008,0031) or AcquisitionTime (0008,0032)), or "
        "parameter uptake_s");
  }
  if (!injection) {
    missing.push_back(
        "the injection time (DICOM RadiopharmaceuticalStartTime (0018,1072) in the "
        "Radiopharmaceutical Information Sequence (0054,0016), or parameter injection_time), or "
        "parameter uptake_s");
  }
  if (!scan || !injection) return std::nullopt;
  double uptake = 0.0;
  if (scan->day && injection->day) {
    uptake = double(*scan->day - *injection->day) * 86400.0 + (scan->seconds - injection->seconds);
  } else {
    // Times of day only: a scan clock time before the injection's means the
    // scan started after midnight.
    uptake = scan->seconds - injection->seconds;
    if (uptake < 0) uptake += 86400.0;
  }
  if (uptake < 0 || uptake > 7 * 86400.0) {
    missing.push_back("consistent injection and scan times (from " + injection_source + ", the scan starts " +
                      format_seconds(uptake) + " s after the injection; expected 0 to 7 days), or parameter uptake_s");
    return std::nullopt;
  }
  return uptake;
}

std::vector<std::string> suv_missing_pieces(const SuvInputs& in) {
  std::vector<std::string> missing;
  std::string units = in.units;
  std::transform(units.begin(), units.end(), units.begin(), [](unsigned char c) { return char(std::toupper(c)); });
  if (units != "BQML") {
    missing.push_back("activity concentration in Bq/mL (the image's units are '" + in.units +
                      "', DICOM Units (0054,1001))");
  }
  if (!in.weight_kg) missing.push_back("the patient weight (DICOM PatientWeight (0010,1030) or parameter weight_kg)");
  if (!in.dose_bq) {
    missing.push_back("the injected dose (DICOM RadionuclideTotalDose (0018,1074) or parameter injected_dose_bq)");
  }
  if (in.decay_correction == "START") {
    if (!in.half_life_s) {
      missing.push_back("the radionuclide half-life (DICOM RadionuclideHalfLife (0018,1075) or parameter half_life_s)");
    }
    if (!in.uptake_s) missing.insert(missing.end(), in.uptake_missing.begin(), in.uptake_missing.end());
  } else if (in.decay_correction == "NONE") {
    missing.push_back(
        "decay-corrected images (DICOM DecayCorrection (0054,1102) is NONE or CorrectedImage "
        "(0028,0051) lacks DECY; frame-wise decay correction is not supported), or parameter "
        "decay_correction");
  } else if (in.decay_correction != "ADMIN") {
    missing.push_back(
        "the decay correction reference (DICOM DecayCorrection (0054,1102) START or ADMIN, or "
        "parameter decay_correction)");
  }
  return missing;
}

SuvFactor suv_factor(const SuvInputs& in) {
  SuvFactor result;
  double dose = *in.dose_bq;
  if (in.decay_correction == "START") dose *= std::exp2(-*in.uptake_s / *in.half_life_s);
  result.decayed_dose_bq = dose;
  result.factor = *in.weight_kg * 1000.0 / dose;  // g/Bq; 1 mL of tissue taken as 1 g
  return result;
}

}  // namespace fusionflow::io
