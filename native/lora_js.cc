// mergeAdapter(model, path, jobOpts) → a new DiffusionModel: the model's weights with an adapter patch
// (lora.h) merged in; the model itself is untouched.
#include "lora_js.h"

#include "diffusion.h"
#include "diffusion_js.h"
#include "errors_js.h"
#include "job.h"
#include "lora.h"
#include "model_js.h"
#include "module_io.h"

namespace bia {

Napi::Value MergeAdapter(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    std::shared_ptr<DiffusionState> base = DiffusionHandle::From(info[0], "model");
    const std::string path = pathFromJs(info[1]);
    return startJob(info.Env(), info[2], "bia.diffusion.adapter", [base, path](JobContext& ctx) -> Finisher {
      StateDict merged = mergeLoraPatch(moduleState(*base->unet), path, ctx);
      DiffusionOptions o;
      o.device = base->device;
      o.dtype = base->dtype;
      o.channelsLast = base->channelsLast;
      o.autocast = base->autocast;
      auto ds = createDiffusion(base->unet->config(), 0, o);
      loadStateDictInto(*ds->unet, merged, true);
      ds->refreshCopies();
      synchronize(ds->device);
      return [ds](Napi::Env env) -> Napi::Value { return DiffusionHandle::Wrap(env, ds); };
    });
  });
}

}  // namespace bia
