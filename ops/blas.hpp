#pragma once
/// @file blas.hpp
/// Which OpenBLAS kernels run, and a fix for CPUs newer than the installed OpenBLAS knows.
///
/// OpenBLAS picks its kernels once, when it is loaded. Debian 12's OpenBLAS 0.3.21 does not
/// recognise recent Xeons (e.g. family 6 model 207) and falls back to its generic "Prescott"
/// kernels, which run sgemm 4-5x slower than the SkylakeX kernels the CPU can use. The
/// environment variable OPENBLAS_CORETYPE overrides the choice, but only before the library
/// loads, hence reexec_with_fast_kernels() for programs.

#include <string>

namespace tapegrad::blas
{

/// The kernel set OpenBLAS chose ("SkylakeX", "Haswell", "Prescott", ...).
std::string core_name();

/// The best kernel set this CPU supports when it is better than core_name(); empty otherwise.
std::string better_core();

/// For a program's main(): when OpenBLAS chose slower kernels than the CPU supports and
/// OPENBLAS_CORETYPE is unset, sets it and re-executes the program (same arguments). Returns
/// normally when there is nothing to do or the re-exec fails.
void reexec_with_fast_kernels(char** argv);

/// Prints one warning per process on stderr when better_core() is not empty (called by the GEMM
/// paths, so library users learn why their GEMMs are slow and what to set).
void warn_if_slow_kernels();

} // namespace tapegrad::blas
