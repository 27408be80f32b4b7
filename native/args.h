// Reading JS option objects in C++ with clear BIA_INVALID_ARGUMENT errors.
#pragma once
#include <napi.h>

#include <optional>
#include <string>

namespace bia {

// o[key] as a number; fallback when undefined.
double optNumber(const Napi::Object& o, const char* key, double fallback);
// o[key] as an integer in [min, max]; fallback when undefined.
int64_t optInt(const Napi::Object& o, const char* key, int64_t fallback, int64_t min, int64_t max);
std::string optString(const Napi::Object& o, const char* key, const std::string& fallback);
bool optBool(const Napi::Object& o, const char* key, bool fallback);
// The value as an object, or an empty object for undefined/null.
Napi::Object optObject(Napi::Value v, const char* what);

}  // namespace bia
