// The one shape of the addon's JS classes ("handles"): a JS object that owns one piece of native
// state (a tensor, a model, a trainer, a cancel flag). A handle class declares only what is its
// own, its names and its properties, and this template gives it the rest: the JS class, new
// handles made from C++ (Wrap), arguments read back (From), and dispose() / disposed.
//
//   class TrainerHandle : public Handle<TrainerHandle, std::shared_ptr<TrainerState>> {
//    public:
//     static constexpr HandleNames kNames{"Trainer", "a Trainer", "trainer", "trainers are made by createTrainer()", false};
//     static std::vector<Property> properties();  // {Getter<&target>("target"), …, AsyncMethod<&trainStep>("trainStep"), …}
//     using Handle::Handle;
//   };
//
// Properties are plain functions of the state: Napi::Value f(Napi::Env, const State&) for an
// accessor, Napi::Value f(const Napi::CallbackInfo&, const State&) for a method. Every one of them
// fails with BIA_DISPOSED after dispose() (a method returning a Promise rejects it). dispose() is
// idempotent and drops the handle's reference: jobs already queued keep their own copy of the state.
// Models with weights add the shared model properties of model_js.h (ModelHandle).
#pragma once
#include <napi.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "addon_data.h"
#include "errors_js.h"

namespace bia {

// What a handle class is called, in JS and in its error messages.
struct HandleNames {
  const char* jsClass;  // the JS class, e.g. "DiffusionModel"
  const char* noun;     // in "<what> must be <noun>", e.g. "a DiffusionModel"
  const char* name;     // in "<name> was used after dispose()", e.g. "diffusion model"
  const char* madeBy;   // the BIA_INVALID_ARGUMENT of `new` from JS; nullptr: JS may construct it (Derived::create())
  bool fromNamesWhat;   // From(value, what) after dispose(): "<what> was used …" (true) or "<name> was used …"
};

template <typename Derived, typename State>
class Handle : public Napi::ObjectWrap<Derived> {
 public:
  using Property = Napi::ClassPropertyDescriptor<Derived>;

  // Define the JS class (once per environment, from the addon's Init).
  static Napi::Function Init(Napi::Env env) {
    Napi::Function ctor = Napi::ObjectWrap<Derived>::DefineClass(env, Derived::kNames.jsClass, Derived::properties());
    AddonData::get(env).constructors[Derived::kNames.jsClass] = Napi::Persistent(ctor);
    return ctor;
  }

  // A new JS handle owning `state` (main thread only).
  static Napi::Object Wrap(Napi::Env env, State state) {
    Napi::External<State> ext = Napi::External<State>::New(env, &state);
    return constructor(env).New({ext});
  }

  static bool IsInstance(Napi::Value value) {
    return value.IsObject() && value.As<Napi::Object>().InstanceOf(constructor(value.Env()).Value());
  }

  // The state behind a JS handle (main thread only): BIA_INVALID_ARGUMENT "<what> must be <noun>"
  // for anything else, BIA_DISPOSED after dispose().
  static const State& From(Napi::Value value, const char* what = Derived::kNames.name) {
    if (!IsInstance(value)) invalidArgument(std::string(what) + " must be " + Derived::kNames.noun);
    return Derived::Unwrap(value.As<Napi::Object>())->state(Derived::kNames.fromNamesWhat ? what : Derived::kNames.name);
  }

  explicit Handle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Derived>(info) {
    guarded(info.Env(), [&] {
      if constexpr (Derived::kNames.madeBy == nullptr) {
        state_ = Derived::create();
      } else {
        if (info.Length() != 1 || !info[0].IsExternal()) invalidArgument(Derived::kNames.madeBy);
        state_ = *info[0].As<Napi::External<State>>().Data();
      }
      return 0;
    });
  }

  // The state, or BIA_DISPOSED "<what> was used after dispose()".
  const State& state(const char* what = Derived::kNames.name) const {
    if (!state_) throw BiaError(ErrorCode::Disposed, std::string(what) + " was used after dispose()");
    return *state_;
  }
  bool alive() const { return state_.has_value(); }

 protected:
  // The properties a handle class lists in properties(), in the order JS sees them.
  template <Napi::Value (*F)(Napi::Env, const State&)>
  static Property Getter(const char* name) {
    return Derived::InstanceAccessor(name, &Handle::template get<F>, nullptr);
  }
  // A method that returns its result (errors are thrown).
  template <Napi::Value (*F)(const Napi::CallbackInfo&, const State&)>
  static Property Method(const char* name) {
    return Derived::InstanceMethod(name, &Handle::template call<F>);
  }
  // A method that returns a Promise (errors reject it).
  template <Napi::Value (*F)(const Napi::CallbackInfo&, const State&)>
  static Property AsyncMethod(const char* name) {
    return Derived::InstanceMethod(name, &Handle::template callAsync<F>);
  }
  static Property DisposedAccessor() { return Derived::InstanceAccessor("disposed", &Handle::disposed, nullptr); }
  static Property DisposeMethod() { return Derived::InstanceMethod("dispose", &Handle::dispose); }

  // What dispose() does; a handle class with more to give back hides it with its own release().
  void release() { state_.reset(); }

 private:
  static Napi::FunctionReference& constructor(Napi::Env env) {
    auto& all = AddonData::get(env).constructors;
    auto it = all.find(std::string_view(Derived::kNames.jsClass));
    if (it == all.end()) throw BiaError(ErrorCode::Other, std::string(Derived::kNames.jsClass) + " is not registered");
    return it->second;
  }

  template <Napi::Value (*F)(Napi::Env, const State&)>
  Napi::Value get(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value { return F(info.Env(), state()); });
  }
  template <Napi::Value (*F)(const Napi::CallbackInfo&, const State&)>
  Napi::Value call(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value { return F(info, state()); });
  }
  template <Napi::Value (*F)(const Napi::CallbackInfo&, const State&)>
  Napi::Value callAsync(const Napi::CallbackInfo& info) {
    return guardedPromise(info.Env(), [&]() -> Napi::Value { return F(info, state()); });
  }
  Napi::Value disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    static_cast<Derived*>(this)->release();
    return info.Env().Undefined();
  }

  std::optional<State> state_;
};

}  // namespace bia
