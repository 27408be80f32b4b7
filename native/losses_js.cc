#include "losses_js.h"

#include <c10/core/InferenceMode.h>

#include <memory>
#include <string>
#include <vector>

#include "errors.h"
#include "job.h"
#include "losses.h"
#include "tensor_js.h"
#include "vgg_js.h"

namespace bia {

Napi::Value ImageLossesJs(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor a = TensorHandle::From(info[0], "a");
    at::Tensor b = TensorHandle::From(info[1], "b");
    if (!a.is_floating_point() || !b.is_floating_point()) invalidArgument("image losses need floating-point images");
    if (a.device() != b.device()) invalidArgument("a and b are on different devices");
    std::shared_ptr<PerceptualNet> net;
    if (!info[2].IsUndefined() && !info[2].IsNull()) {
      net = PerceptualHandle::From(info[2], "perceptual");
      checkPerceptualInputs(a.sizes(), b.sizes());
    }
    return startJob(info.Env(), info[3], "bia.losses.image", [a, b, net](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      ImageLosses l = imageLosses(a.to(at::kDouble), b.to(at::kDouble));
      // With a net, L_perc is its distance (in the net's dtype) instead of the substitute.
      at::Tensor perceptual = net ? net->distance(a, b).to(at::kDouble) : l.perceptual;
      std::vector<at::Tensor> parts{l.mse, l.ssim, l.gradL1, perceptual};
      for (auto& p : parts) p = p.to(at::kCPU).contiguous();
      const std::string name = perceptualName(net.get());
      return [parts, name](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        const char* names[] = {"mse", "ssim", "gradL1", "perceptual"};
        for (size_t i = 0; i < parts.size(); i++) o.Set(names[i], toTypedArray(env, parts[i]));
        o.Set("perceptualName", name);
        return o;
      };
    });
  });
}

}  // namespace bia
