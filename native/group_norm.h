// GroupNorm (+ SiLU) for inference on the CPU, in one pass over the statistics and one over the
// output, for float32 and bfloat16 activations in NCHW or channels_last.
//
// Why: LibTorch 1.13's CPU group_norm is the UNet's second cost after the convolutions (52 ms NCHW,
// 69 ms channels_last for a 128 x 256 x 256 float32 map on 2 cores, where reading and writing it
// once takes a few ms), and its bfloat16 channels_last kernel returns wrong values (relative error
// 1.8 against float32 on the same input). This kernel keeps the statistics in double, applies the
// affine and the optional SiLU in float, and writes the input's dtype and memory format.
#pragma once
#include <torch/torch.h>

namespace bia {

// True when groupNormCpu() serves x: a CPU 4-d float32/bfloat16 tensor, contiguous in NCHW or in
// channels_last, that needs no gradient (autograd off or x not requiring grad).
bool groupNormCpuServes(const at::Tensor& x);

// y = GroupNorm(groups, eps, weight, bias)(x), then y * sigmoid(y) when silu. weight and bias:
// [C] float32 or bfloat16 (read as float). Throws BIA_INVALID_ARGUMENT when x is not served or the
// shapes do not fit.
at::Tensor groupNormCpu(const at::Tensor& x, int64_t groups, const at::Tensor& weight, const at::Tensor& bias, double eps,
                        bool silu);

}  // namespace bia
