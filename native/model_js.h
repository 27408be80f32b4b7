// What the JS faces of the models share, as ts/model.ts does on the TypeScript side: weights,
// metadata and paths across the boundary, and ModelHandle, the handle template (handle.h) of a
// model with weights: parameterCount, device, dtype, stateDict(), loadStateDict(), save().
#pragma once
#include <napi.h>
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint.h"
#include "device.h"
#include "handle.h"
#include "job.h"
#include "module_io.h"

namespace bia {

// [[name, Tensor handle], …] (handles share the tensors' memory).
Napi::Array stateToJs(Napi::Env env, const StateDict& state);
// Parse [[name, Tensor], …]; BIA_INVALID_ARGUMENT otherwise.
StateDict stateFromJs(Napi::Value entries);
// A {string: string} object (undefined → empty).
std::map<std::string, std::string> metadataFromJs(Napi::Value value);
// A non-empty string path.
std::string pathFromJs(Napi::Value value);
// Where a model goes: a device and a dtype from strings ("cpu" and "float32" when not strings);
// BIA_INVALID_ARGUMENT "<what> must be float32, float16 or bfloat16" for other dtypes.
std::pair<c10::Device, c10::ScalarType> modelPlacementFromJs(Napi::Value device, Napi::Value dtype, const char* what);

// A model as its handle sees it.
struct ModelView {
  torch::nn::Module& module;
  c10::Device device;
  c10::ScalarType dtype;
};

// The jobs of a model handle, by the names they run under.
struct ModelJobs {
  const char* load;   // loadStateDict(), e.g. "bia.diffusion.load"
  const char* save;   // save(), e.g. "bia.diffusion.save"
  bool saveProgress;  // whether save() reports its "write" progress
};

// A handle of a shared Model. Besides Handle's kNames and properties(), Derived declares
//   static constexpr ModelJobs kJobs{…};
//   static ModelView view(Model&);
// and may hide the defaults of
//   static void load(Model&, const StateDict&, bool strict);  // loadStateDictInto(view.module, …)
//   static void describe(const Model&, std::map<std::string, std::string>& metadata);  // what save() adds: nothing
template <typename Derived, typename Model>
class ModelHandle : public Handle<Derived, std::shared_ptr<Model>> {
  using Base = Handle<Derived, std::shared_ptr<Model>>;

 public:
  using typename Base::Property;
  using Base::Base;

 protected:
  // Derived's own accessors `before`, then parameterCount, device, dtype, disposed, dispose(),
  // stateDict() (sync: handles sharing the weights) and loadStateDict(entries, strict, jobOpts),
  // then `after` (Derived's methods, with SaveMethod() where it belongs).
  static std::vector<Property> ModelProperties(std::vector<Property> before, const std::vector<Property>& after) {
    before.insert(before.end(), {Base::template Getter<&parameterCount>("parameterCount"), Base::template Getter<&device>("device"),
                                 Base::template Getter<&dtype>("dtype"), Base::DisposedAccessor(), Base::DisposeMethod(),
                                 Base::template Method<&stateDict>("stateDict"), Base::template AsyncMethod<&loadStateDict>("loadStateDict")});
    before.insert(before.end(), after.begin(), after.end());
    return before;
  }
  // save(path, metadata, jobOpts): the weights as safetensors, with what describe() adds to the metadata.
  static Property SaveMethod() { return Base::template AsyncMethod<&save>("save"); }

  static void load(Model& m, const StateDict& entries, bool strict) { loadStateDictInto(Derived::view(m).module, entries, strict); }
  static void describe(const Model&, std::map<std::string, std::string>&) {}

 private:
  static Napi::Value parameterCount(Napi::Env env, const std::shared_ptr<Model>& m) {
    int64_t n = 0;
    for (const auto& p : Derived::view(*m).module.parameters(true)) n += p.numel();
    return Napi::Number::New(env, static_cast<double>(n));
  }
  static Napi::Value device(Napi::Env env, const std::shared_ptr<Model>& m) { return Napi::String::New(env, deviceName(Derived::view(*m).device)); }
  static Napi::Value dtype(Napi::Env env, const std::shared_ptr<Model>& m) { return Napi::String::New(env, dtypeName(Derived::view(*m).dtype)); }

  static Napi::Value stateDict(const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) {
    return stateToJs(info.Env(), moduleState(Derived::view(*m).module));
  }

  static Napi::Value loadStateDict(const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) {
    StateDict entries = stateFromJs(info[0]);
    const bool strict = info[1].IsUndefined() ? true : info[1].ToBoolean().Value();
    return startJob(info.Env(), info[2], Derived::kJobs.load, [m, entries, strict](JobContext&) -> Finisher {
      Derived::load(*m, entries, strict);
      synchronize(Derived::view(*m).device);
      return [](Napi::Env env) { return env.Undefined(); };
    });
  }

  static Napi::Value save(const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) {
    const std::string path = pathFromJs(info[0]);
    std::map<std::string, std::string> metadata = metadataFromJs(info[1]);
    Derived::describe(*m, metadata);
    return startJob(info.Env(), info[2], Derived::kJobs.save, [m, path, metadata](JobContext& ctx) -> Finisher {
      const CheckpointProgress progress = Derived::kJobs.saveProgress ? jobProgress(ctx, "write") : CheckpointProgress();
      writeSafetensors(path, forSaving(moduleState(Derived::view(*m).module)), metadata, progress);
      return [](Napi::Env env) { return env.Undefined(); };
    });
  }
};

}  // namespace bia
