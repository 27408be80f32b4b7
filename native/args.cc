#include "args.h"

#include <cmath>

#include "errors.h"

namespace bia {

double optNumber(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) invalidArgument(std::string(key) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) invalidArgument(std::string(key) + " must be finite");
  return d;
}

int64_t optInt(const Napi::Object& o, const char* key, int64_t fallback, int64_t min, int64_t max) {
  const double d = optNumber(o, key, static_cast<double>(fallback));
  if (d < static_cast<double>(min) || d > static_cast<double>(max) || d != std::floor(d)) {
    invalidArgument(std::string(key) + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

std::string optString(const Napi::Object& o, const char* key, const std::string& fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) invalidArgument(std::string(key) + " must be a string");
  return v.As<Napi::String>();
}

bool optBool(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) invalidArgument(std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>();
}

Napi::Object optObject(Napi::Value v, const char* what) {
  if (v.IsUndefined() || v.IsNull()) return Napi::Object::New(v.Env());
  if (!v.IsObject()) invalidArgument(std::string(what) + " must be an object");
  return v.As<Napi::Object>();
}

}  // namespace bia
