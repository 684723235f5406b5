#pragma once
/// @file runtime.hpp
/// Process-wide settings for programs built on tapegrad (the trainer, the benchmarks, the tests).

namespace tapegrad
{

/// Call first thing in main():
/// - re-executes the program with OPENBLAS_CORETYPE set when OpenBLAS chose slower kernels than
///   the CPU supports (see ops/blas.hpp);
/// - keeps freed large buffers inside the process (glibc mallopt: mmap threshold 64 MiB, trim
///   threshold 512 MiB). Activations of a CNN are megabytes each; by default glibc hands such
///   buffers back to the kernel on free, so every op pays page faults on fresh memory.
/// - flushes denormal floats to zero (FTZ/DAZ, as torch.set_flush_denormal(True)): as training
///   converges, Adam's second moments and tiny gradients drift below 1e-38 and every operation
///   on them costs about a hundred cycles; the trainer's epochs slowed from 17 s to 27 s.
/// Libraries embedding tapegrad can skip it; nothing depends on it for correctness.
void init_process(char** argv);

} // namespace tapegrad
