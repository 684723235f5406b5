#pragma once
/// @file error.hpp
/// The exception hierarchy. Every error tapegrad throws derives from tapegrad::Error, and every
/// message names the op, the shapes involved and the rule that failed.

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tapegrad
{

/// Base of every exception thrown by tapegrad.
class Error : public std::runtime_error
{
  public:
    using std::runtime_error::runtime_error;
};

/// Shapes that do not fit the op's rule (broadcasting, matmul, conv output size, ...).
class ShapeError : public Error
{
  public:
    using Error::Error;
};

/// An argument value outside its domain (stride 0, negative padding, label out of range, ...).
class ValueError : public Error
{
  public:
    using Error::Error;
};

/// Misuse of the tape: backward twice, non-scalar backward without a seed, a saved tensor modified
/// in place before backward, a tensor recorded on another thread's tape.
class AutogradError : public Error
{
  public:
    using Error::Error;
};

/// An index outside its range (item() on a multi-element tensor, an axis out of range).
class IndexError : public Error
{
  public:
    using Error::Error;
};

/// A file that cannot be read or written, or whose contents are malformed.
class IoError : public Error
{
  public:
    using Error::Error;
};

/// Formats a shape as "[2, 3, 4]".
template <class S>
std::string shape_str(const S& shape)
{
    std::ostringstream os;
    os << '[';
    bool first = true;
    for (auto d : shape)
    {
        os << (first ? "" : ", ") << d;
        first = false;
    }
    os << ']';
    return os.str();
}

namespace detail
{
template <class... Parts>
std::string cat(const Parts&... parts)
{
    std::ostringstream os;
    (os << ... << parts);
    return os.str();
}
} // namespace detail

} // namespace tapegrad
