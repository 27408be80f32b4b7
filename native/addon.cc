// The one file that registers the addon's exports. The shape of these exports is described
// for TypeScript in exactly one place: ts/native.ts.
#include <napi.h>

#include "absorb.h"
#include "addon_data.h"
#include "allocator.h"
#include "blackhole.h"
#include "diffusion.h"
#include "checkpoint.h"
#include "engine.h"
#include "identity.h"
#include "losses.h"
#include "profile.h"
#include "job.h"
#include "tensor.h"
#include "train.h"
#include "vgg.h"

namespace bia {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  installShutdownHandler();
  installCpuAllocator();
  applyCudnnBenchmarkEnv();  // BIA_CUDNN_BENCHMARK=1
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  Napi::Function tensor = TensorHandle::Init(env);
  data->tensorCtor = Napi::Persistent(tensor);
  Napi::Function token = CancelToken::Init(env);
  data->cancelTokenCtor = Napi::Persistent(token);

  exports.Set("Tensor", tensor);
  exports.Set("CancelToken", token);
  exports.Set("tensorFromArray", Napi::Function::New<TensorFromArray>(env, "tensorFromArray"));
  exports.Set("tensorFromArrayAsync", Napi::Function::New<TensorFromArrayAsync>(env, "tensorFromArrayAsync"));
  exports.Set("zeros", Napi::Function::New<Zeros>(env, "zeros"));
  exports.Set("randn", Napi::Function::New<Randn>(env, "randn"));
  exports.Set("liveTensors", Napi::Function::New<LiveTensors>(env, "liveTensors"));
  exports.Set("externalMemory", Napi::Function::New<ExternalMemory>(env, "externalMemory"));
  exports.Set("runtimeInfo", Napi::Function::New<RuntimeInfo>(env, "runtimeInfo"));
  exports.Set("setNumThreads", Napi::Function::New<SetNumThreads>(env, "setNumThreads"));
  exports.Set("benchmark", Napi::Function::New<Benchmark>(env, "benchmark"));
  exports.Set("matmul", Napi::Function::New<Matmul>(env, "matmul"));
  exports.Set("unetStats", Napi::Function::New<UNetStats>(env, "unetStats"));
  exports.Set("emptyCache", Napi::Function::New<EmptyCache>(env, "emptyCache"));
  exports.Set("cudaMemoryStats", Napi::Function::New<CudaMemoryStatsJs>(env, "cudaMemoryStats"));
  exports.Set("setCudnnBenchmark", Napi::Function::New<SetCudnnBenchmark>(env, "setCudnnBenchmark"));
  exports.Set("getCudnnBenchmark", Napi::Function::New<GetCudnnBenchmark>(env, "getCudnnBenchmark"));
  exports.Set("opProfileStart", Napi::Function::New<OpProfileStart>(env, "opProfileStart"));
  exports.Set("opProfileStop", Napi::Function::New<OpProfileStop>(env, "opProfileStop"));
  // Diffusion core
  Napi::Function diffusion = DiffusionHandle::Init(env);
  data->diffusionCtor = Napi::Persistent(diffusion);
  exports.Set("DiffusionModel", diffusion);
  exports.Set("createDiffusion", Napi::Function::New<CreateDiffusion>(env, "createDiffusion"));
  exports.Set("loadDiffusion", Napi::Function::New<LoadDiffusion>(env, "loadDiffusion"));
  exports.Set("diffusionPreset", Napi::Function::New<DiffusionPreset>(env, "diffusionPreset"));

  // Identity encoders (temporary MobileFaceNet scaffolding)

  exports.Set("readCheckpoint", Napi::Function::New<ReadCheckpoint>(env, "readCheckpoint"));
  exports.Set("writeSafetensors", Napi::Function::New<WriteSafetensors>(env, "writeSafetensors"));
  // Identity encoders
  Napi::Function encoder = EncoderHandle::Init(env);
  data->encoderCtor = Napi::Persistent(encoder);
  exports.Set("IdentityEncoder", encoder);
  exports.Set("createIdentityEncoder", Napi::Function::New<CreateIdentityEncoder>(env, "createIdentityEncoder"));
  exports.Set("loadIdentityEncoder", Napi::Function::New<LoadIdentityEncoder>(env, "loadIdentityEncoder"));
  exports.Set("cosineSimilarity", Napi::Function::New<CosineSimilarity>(env, "cosineSimilarity"));
  // The VGG16 perceptual distance (L_perc)
  Napi::Function perceptual = PerceptualHandle::Init(env);
  data->perceptualCtor = Napi::Persistent(perceptual);
  exports.Set("PerceptualModel", perceptual);
  exports.Set("createPerceptual", Napi::Function::New<CreatePerceptual>(env, "createPerceptual"));
  exports.Set("loadPerceptual", Napi::Function::New<LoadPerceptual>(env, "loadPerceptual"));

  // The black hole: Gram matrix, boundary normal and signed distances on h-space codes
  exports.Set("gram", Napi::Function::New<Gram>(env, "gram"));
  exports.Set("imageLosses", Napi::Function::New<ImageLossesJs>(env, "imageLosses"));
  exports.Set("offsetCodes", Napi::Function::New<OffsetCodes>(env, "offsetCodes"));
  exports.Set("takeRows", Napi::Function::New<TakeRows>(env, "takeRows"));
  exports.Set("sampleNeighbours", Napi::Function::New<SampleNeighbours>(env, "sampleNeighbours"));
  exports.Set("linearCombination", Napi::Function::New<LinearCombination>(env, "linearCombination"));
  exports.Set("signedDistance", Napi::Function::New<SignedDistance>(env, "signedDistance"));
  exports.Set("unitDirection", Napi::Function::New<UnitDirection>(env, "unitDirection"));

  // Absorption (optimize): L_wrapper + λ_sem·L_sem backpropagated through Dec and E
  exports.Set("absorbLoss", Napi::Function::New<AbsorbLoss>(env, "absorbLoss"));
  exports.Set("absorbOptimize", Napi::Function::New<AbsorbOptimize>(env, "absorbOptimize"));
  // Training: the Trainer, the ArcFace logits, the attribute estimator
  Napi::Function trainer = TrainerHandle::Init(env);
  data->trainerCtor = Napi::Persistent(trainer);
  exports.Set("Trainer", trainer);
  exports.Set("createTrainer", Napi::Function::New<CreateTrainer>(env, "createTrainer"));
  exports.Set("arcfaceLogits", Napi::Function::New<ArcfaceLogits>(env, "arcfaceLogits"));
  Napi::Function attributes = AttributeHandle::Init(env);
  data->attributeCtor = Napi::Persistent(attributes);
  exports.Set("AttributeEstimator", attributes);
  exports.Set("createAttributeEstimator", Napi::Function::New<CreateAttributeEstimator>(env, "createAttributeEstimator"));
  exports.Set("loadAttributeEstimator", Napi::Function::New<LoadAttributeEstimator>(env, "loadAttributeEstimator"));

  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

}  // namespace bia

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return bia::Init(env, exports); }

NODE_API_MODULE(bia_torch, InitAddon)
