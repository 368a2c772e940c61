// Port payloads: immutable values shared between the nodes that consume them.
//
// Every C++ type that travels on a port is declared once with a stable name
// (FUSIONFLOW_PAYLOAD_TYPE). Ports are typed by that name, so a pipeline's
// wiring is checked when it is loaded, and payloads are identified by name
// rather than RTTI, which stays reliable across plugin libraries built with
// hidden visibility.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace fusionflow {

// Specialised by FUSIONFLOW_PAYLOAD_TYPE; using an undeclared type on a port
// fails to compile.
template <class T>
struct PayloadTypeName;

#define FUSIONFLOW_PAYLOAD_TYPE(CppType, StableName) \
  template <>                                        \
  struct fusionflow::PayloadTypeName<CppType> {      \
    static constexpr const char* value = StableName; \
  }

template <class T>
constexpr const char* payload_type_name() {
  return PayloadTypeName<T>::value;
}

// A typed, immutable, shared value. Copying a Payload copies a pointer: a
// volume consumed by three nodes exists once.
class Payload {
 public:
  Payload() = default;

  template <class T>
  static Payload of(std::shared_ptr<const T> value) {
    return Payload(payload_type_name<T>(), std::static_pointer_cast<const void>(std::move(value)));
  }

  const std::string& type_name() const { return type_name_; }
  bool empty() const { return data_ == nullptr; }
  long use_count() const { return data_.use_count(); }

  // Throws std::logic_error if the payload holds another type: that is a bug
  // in a node (ports are type-checked before a pipeline runs).
  template <class T>
  std::shared_ptr<const T> get() const {
    if (data_ == nullptr) throw std::logic_error("payload is empty");
    if (type_name_ != payload_type_name<T>()) {
      throw std::logic_error("payload holds '" + type_name_ + "', not '" + payload_type_name<T>() + "'");
    }
    return std::static_pointer_cast<const T>(data_);
  }

 private:
  Payload(std::string type_name, std::shared_ptr<const void> data)
      : type_name_(std::move(type_name)), data_(std::move(data)) {}

  std::string type_name_;
  std::shared_ptr<const void> data_;
};

}  // namespace fusionflow
