// The one file that registers the addon's exports. The shape of these exports is described
// for TypeScript in exactly one place: ts/native.ts.
//
// Where things are: `x.h` / `x.cc` hold a concept in plain C++ on LibTorch (no Node-API), and
// `x_js.h` / `x_js.cc` its JS face: arguments read and checked, jobs started, results handed to JS.
// Besides the `_js` files only the plumbing they share sees Node-API: this file, addon_data.h,
// args.h (option objects), handle.h (the template of every JS class; model_js.h adds what the
// models share) and job.h (long work on the compute thread, as a Promise).
#include <napi.h>

#include <initializer_list>
#include <utility>

#include "absorb_js.h"
#include "addon_data.h"
#include "allocator.h"
#include "blackhole_js.h"
#include "checkpoint_js.h"
#include "diffusion_js.h"
#include "engine_js.h"
#include "identity_js.h"
#include "job.h"
#include "losses_js.h"
#include "profile.h"
#include "tensor_js.h"
#include "lora_js.h"
#include "train_js.h"
#include "vgg_js.h"

namespace bia {

namespace {

using Callback = Napi::Value (*)(const Napi::CallbackInfo&);

// exports[name] = a JS function of that name calling f, for each (name, f) in order.
void setFunctions(Napi::Env env, Napi::Object exports, std::initializer_list<std::pair<const char*, Callback>> functions) {
  for (const auto& [name, f] : functions) exports.Set(name, Napi::Function::New(env, f, name));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  installShutdownHandler();
  installCpuAllocator();
  tuneMalloc();  // BIA_MALLOC_TUNE=0 leaves glibc's malloc as it is
  applyCudnnBenchmarkEnv();  // BIA_CUDNN_BENCHMARK=1
  env.SetInstanceData<AddonData>(new AddonData());

  // Tensors and jobs
  exports.Set("Tensor", TensorHandle::Init(env));
  exports.Set("CancelToken", CancelToken::Init(env));
  setFunctions(env, exports, {{"tensorFromArray", TensorFromArray}, {"tensorFromArrayAsync", TensorFromArrayAsync},
                              {"zeros", Zeros}, {"randn", Randn}, {"liveTensors", LiveTensors}, {"externalMemory", ExternalMemory}});
  // The engine room: runtime, threads, benchmarks, memory, profiles
  setFunctions(env, exports, {{"runtimeInfo", RuntimeInfo}, {"setNumThreads", SetNumThreads}, {"benchmark", Benchmark},
                              {"matmul", Matmul}, {"groupNorm", GroupNormJs}, {"unetStats", UNetStats}, {"emptyCache", EmptyCache},
                              {"cudaMemoryStats", CudaMemoryStatsJs}, {"setCudnnBenchmark", SetCudnnBenchmark},
                              {"getCudnnBenchmark", GetCudnnBenchmark}, {"opProfileStart", OpProfileStart}, {"opProfileStop", OpProfileStop}});
  // Diffusion core
  exports.Set("DiffusionModel", DiffusionHandle::Init(env));
  setFunctions(env, exports, {{"createDiffusion", CreateDiffusion}, {"loadDiffusion", LoadDiffusion}, {"diffusionPreset", DiffusionPreset}});
  // Checkpoints
  setFunctions(env, exports, {{"readCheckpoint", ReadCheckpoint}, {"writeSafetensors", WriteSafetensors}});
  // Identity encoders
  exports.Set("IdentityEncoder", EncoderHandle::Init(env));
  setFunctions(env, exports, {{"createIdentityEncoder", CreateIdentityEncoder}, {"loadIdentityEncoder", LoadIdentityEncoder},
                              {"cosineSimilarity", CosineSimilarity}});
  // The VGG16 perceptual distance (L_perc)
  exports.Set("PerceptualModel", PerceptualHandle::Init(env));
  setFunctions(env, exports, {{"createPerceptual", CreatePerceptual}, {"loadPerceptual", LoadPerceptual}});
  // The black hole: Gram matrix, boundary normal and signed distances on h-space codes; image losses
  setFunctions(env, exports, {{"gram", Gram}, {"imageLosses", ImageLossesJs}, {"offsetCodes", OffsetCodes}, {"takeRows", TakeRows},
                              {"sampleNeighbours", SampleNeighbours}, {"linearCombination", LinearCombination},
                              {"signedDistance", SignedDistance}, {"unitDirection", UnitDirection}});
  // Absorption (optimize): L_wrapper + λ_sem·L_sem backpropagated through Dec and E
  setFunctions(env, exports, {{"absorbLoss", AbsorbLoss}, {"absorbOptimize", AbsorbOptimize}});
  // Training: the Trainer, the ArcFace logits, the attribute estimator
  exports.Set("Trainer", TrainerHandle::Init(env));
  setFunctions(env, exports, {{"createTrainer", CreateTrainer}, {"arcfaceLogits", ArcfaceLogits}, {"mergeAdapter", MergeAdapter}});
  exports.Set("AttributeEstimator", AttributeHandle::Init(env));
  setFunctions(env, exports, {{"createAttributeEstimator", CreateAttributeEstimator}, {"loadAttributeEstimator", LoadAttributeEstimator}});

  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

}  // namespace bia

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return bia::Init(env, exports); }

NODE_API_MODULE(bia_torch, InitAddon)
