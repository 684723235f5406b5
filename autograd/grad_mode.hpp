#pragma once
/// @file grad_mode.hpp
/// Thread-local grad mode. While it is off, ops compute values and record nothing.

namespace tapegrad
{

class GradMode
{
  public:
    /// True when ops on this thread record onto the tape.
    static bool is_enabled() noexcept { return enabled_; }
    static void set_enabled(bool on) noexcept { enabled_ = on; }

  private:
    // Defined inline here, not in a .cpp: every TU then sees the constant initialiser and reads the
    // flag directly. With an out-of-line definition each access goes through a TLS wrapper whose
    // null check GCC 12 + ld miscompile under -fsanitize=undefined (the check tests flags that the
    // linker's TLS relaxation no longer sets), aborting sanitizer runs with a false "store to null
    // pointer".
    static inline thread_local bool enabled_ = true;
};

/// RAII: records nothing on this thread while it lives (evaluation, optimiser steps).
class NoGradGuard
{
  public:
    NoGradGuard() noexcept
      : previous_(GradMode::is_enabled())
    {
        GradMode::set_enabled(false);
    }
    ~NoGradGuard() { GradMode::set_enabled(previous_); }
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

  private:
    bool previous_;
};

/// RAII: turns recording back on inside a NoGradGuard.
class EnableGradGuard
{
  public:
    EnableGradGuard() noexcept
      : previous_(GradMode::is_enabled())
    {
        GradMode::set_enabled(true);
    }
    ~EnableGradGuard() { GradMode::set_enabled(previous_); }
    EnableGradGuard(const EnableGradGuard&) = delete;
    EnableGradGuard& operator=(const EnableGradGuard&) = delete;

  private:
    bool previous_;
};

} // namespace tapegrad
