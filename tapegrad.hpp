#pragma once
/// @file tapegrad.hpp
/// Everything: autograd, ops, nn, optim, data and gradcheck.
///
///     #include <tapegrad/tapegrad.hpp>
///     namespace tg = tapegrad;

#include <tapegrad/autograd/error.hpp>
#include <tapegrad/autograd/generator.hpp>
#include <tapegrad/autograd/grad_mode.hpp>
#include <tapegrad/autograd/gradcheck.hpp>
#include <tapegrad/autograd/runtime.hpp>
#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/autograd/tensor.hpp>

#include <tapegrad/ops/blas.hpp>
#include <tapegrad/ops/conv2d.hpp>
#include <tapegrad/ops/dropout.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/loss.hpp>
#include <tapegrad/ops/matmul.hpp>
#include <tapegrad/ops/pool2d.hpp>
#include <tapegrad/ops/reduce.hpp>
#include <tapegrad/ops/shape.hpp>
#include <tapegrad/ops/softmax.hpp>
#include <tapegrad/ops/unary.hpp>
#include <tapegrad/ops/window.hpp>

#include <tapegrad/nn/init.hpp>
#include <tapegrad/nn/layers.hpp>
#include <tapegrad/nn/models.hpp>
#include <tapegrad/nn/module.hpp>
#include <tapegrad/nn/safetensors.hpp>
#include <tapegrad/nn/serialize.hpp>
#include <tapegrad/nn/summary.hpp>

#include <tapegrad/optim/optimizer.hpp>
#include <tapegrad/optim/scheduler.hpp>

#include <tapegrad/data/dataloader.hpp>
#include <tapegrad/data/dataset.hpp>
#include <tapegrad/data/idx.hpp>
#include <tapegrad/data/kfold.hpp>
