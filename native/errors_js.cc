#include "errors_js.h"

#include <c10/util/Exception.h>

#include <new>
#include <stdexcept>

namespace bia {

namespace {

bool looksLikeOom(const std::string& msg) {
  return msg.find("not enough memory") != std::string::npos ||
         msg.find("out of memory") != std::string::npos ||
         msg.find("Out of memory") != std::string::npos ||
         msg.find("can't allocate memory") != std::string::npos ||
         msg.find("CUDA error: out of memory") != std::string::npos;
}

// c10 messages may still carry "Exception raised from ..." lines; keep only the message.
std::string stripBacktrace(std::string msg) {
  const char* markers[] = {"\nException raised from ", "Exception raised from "};
  for (const char* m : markers) {
    auto pos = msg.find(m);
    if (pos != std::string::npos) msg.erase(pos);
  }
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

}  // namespace

ErrorInfo classify(std::exception_ptr ep) {
  ErrorInfo info;
  try {
    std::rethrow_exception(ep);
  } catch (const BiaError& e) {
    info = {e.code(), e.what(), "bia::BiaError"};
  } catch (const c10::OutOfMemoryError& e) {
    info = {ErrorCode::OutOfMemory, stripBacktrace(e.what_without_backtrace()), "c10::OutOfMemoryError"};
  } catch (const c10::Error& e) {
    std::string msg = stripBacktrace(e.what_without_backtrace());
    info = {looksLikeOom(msg) ? ErrorCode::OutOfMemory : ErrorCode::Torch, msg, "c10::Error"};
  } catch (const std::bad_alloc& e) {
    info = {ErrorCode::OutOfMemory, std::string("out of memory (") + e.what() + ")", "std::bad_alloc"};
  } catch (const std::invalid_argument& e) {
    info = {ErrorCode::InvalidArgument, e.what(), "std::invalid_argument"};
  } catch (const std::out_of_range& e) {
    info = {ErrorCode::InvalidArgument, e.what(), "std::out_of_range"};
  } catch (const Napi::Error& e) {
    info = {ErrorCode::Other, e.Message(), "Napi::Error"};
  } catch (const std::exception& e) {
    std::string msg = e.what();
    info = {looksLikeOom(msg) ? ErrorCode::OutOfMemory : ErrorCode::Other, msg, "std::exception"};
  } catch (...) {
    info = {ErrorCode::Other, "unknown native exception", "unknown"};
  }
  if (info.message.empty()) info.message = codeName(info.code);
  return info;
}

Napi::Error toJsError(Napi::Env env, const ErrorInfo& info) {
  Napi::Error err = Napi::Error::New(env, info.message);
  Napi::Object obj = err.Value();
  obj.Set("code", Napi::String::New(env, codeName(info.code)));
  obj.Set("origin", Napi::String::New(env, info.origin));
  if (info.code == ErrorCode::Aborted) obj.Set("name", Napi::String::New(env, "AbortError"));
  return err;
}

}  // namespace bia
