#pragma once
/// @file models.hpp
/// Ready-made models used by the trainer, the benchmarks and the tests.

#include <tapegrad/autograd/generator.hpp>
#include <tapegrad/nn/layers.hpp>

namespace tapegrad::nn::models
{

/// The CNN of the benchmarks (anchors.md), for [N, 1, 28, 28] inputs and 10 classes:
/// conv(1->32, k3, p1) relu maxpool2 conv(32->64, k3, p1) relu maxpool2 flatten
/// linear(3136->128) relu [dropout] linear(128->10). `dropout` 0 leaves the Dropout layer out, so
/// the state_dict names match PyTorch's nn.Sequential of the same layers.
Sequential fashion_cnn(Generator& gen, double dropout = 0.0);

/// The lecture's net (seed 002), for [N, 1, 6, 6] inputs and one logit:
/// conv(1->1, k3) relu maxpool(2, 2) flatten linear(4->1). Exactly 15 trainable parameters.
/// The sigmoid and the binary cross-entropy come after it (fused as
/// binary_cross_entropy_with_logits, or explicitly as sigmoid + binary_cross_entropy).
Sequential lecture_net(Generator& gen);

} // namespace tapegrad::nn::models
