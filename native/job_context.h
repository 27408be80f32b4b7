// What long work sees on the compute thread (see job.h): checks for abort between steps and
// progress events. Plain C++, so the LibTorch code that runs inside jobs needs no Node-API.
#pragma once

#include <atomic>
#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "errors.h"

namespace bia {

// True once the process is exiting: every job stops at its next step.
bool shuttingDown();

struct ProgressEvent {
  double step = 0;
  double total = 0;
  std::string stage;
  double value = 0;  // an optional number (a loss, a rate); NaN when absent
};

// What the work function sees on its thread.
class JobContext {
 public:
  using Sender = std::function<void(const ProgressEvent&)>;
  JobContext(std::shared_ptr<std::atomic<bool>> cancelled, std::shared_ptr<std::atomic<bool>> envStopping, Sender send)
      : cancelled_(std::move(cancelled)), envStopping_(std::move(envStopping)), send_(std::move(send)) {}
  bool cancelled() const {
    return (cancelled_ && cancelled_->load()) || (envStopping_ && envStopping_->load()) || shuttingDown();
  }
  // Throws BIA_ABORTED if the AbortSignal fired. Call between steps.
  void checkAbort() const {
    if (cancelled()) throw BiaError(ErrorCode::Aborted, "the operation was aborted");
  }
  void progress(double step, double total, const std::string& stage, double value = std::nan("")) const {
    if (send_) send_(ProgressEvent{step, total, stage, value});
  }

 private:
  std::shared_ptr<std::atomic<bool>> cancelled_;
  std::shared_ptr<std::atomic<bool>> envStopping_;  // this JS environment is being torn down
  Sender send_;
};

}  // namespace bia
