#include <tapegrad/autograd/tape.hpp>

#include <algorithm>
#include <atomic>

namespace tapegrad
{

namespace
{
std::atomic<std::uint64_t> next_tape_id{1};
thread_local Tape* scoped_tape = nullptr;
} // namespace

// ---------------------------------------------------------------------------------------------
// NodeArena

NodeArena::NodeArena()
{
    spare_.reserve(max_spare);
}

void* NodeArena::allocate(std::size_t bytes, std::uint64_t seq)
{
    bytes = (bytes + alignment - 1) / alignment * alignment;
    if (live_.empty() || live_.back().size - live_.back().used < bytes)
    {
        if (!spare_.empty() && spare_.back().size >= bytes)
        {
            live_.push_back(std::move(spare_.back()));
            spare_.pop_back();
        }
        else
        {
            const std::size_t size = std::max(bytes, chunk_bytes);
            live_.push_back(Chunk{std::unique_ptr<std::byte[]>(new std::byte[size]), size});
        }
    }
    Chunk& c = live_.back();
    void* p = c.memory.get() + c.used;
    c.used += bytes;
    c.last_seq = seq;
    return p;
}

void NodeArena::release_before(std::uint64_t first_live) noexcept
{
    while (!live_.empty() && live_.front().last_seq < first_live)
    {
        if (spare_.size() < max_spare)
        {
            live_.front().used = 0;
            spare_.push_back(std::move(live_.front())); // cannot throw: capacity reserved
        }
        live_.pop_front();
    }
}

// ---------------------------------------------------------------------------------------------
// Tape

namespace
{
/// Runs a node's destructor; its memory stays in the arena until its chunk is recycled.
void destroy(NodeBase* n) noexcept
{
    n->~NodeBase();
}
} // namespace

Tape::Tape()
  : id_(next_tape_id.fetch_add(1))
{
}

Tape::~Tape()
{
    clear();
}

void Tape::push(NodeBase* node)
{
    try
    {
        entries_.push_back(node);
    }
    catch (...)
    {
        destroy(node);
        throw;
    }
    ++next_seq_;
}

void Tape::drop_front(std::size_t last) noexcept
{
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(last + 1));
    first_seq_ += last + 1;
    arena_.release_before(first_seq_);
}

void Tape::clear() noexcept
{
    for (NodeBase* n : entries_)
    {
        destroy(n);
    }
    if (!entries_.empty())
    {
        drop_front(entries_.size() - 1);
    }
}

std::vector<const char*> Tape::op_names() const
{
    std::vector<const char*> names;
    names.reserve(entries_.size());
    for (const NodeBase* n : entries_)
    {
        names.push_back(n->name());
    }
    return names;
}

void Tape::replay(std::uint64_t root_seq, bool retain_graph)
{
    // See Note [Releasing] in tape.hpp.
    const std::size_t root = static_cast<std::size_t>(root_seq - first_seq_);
    NoGradGuard no_grad; // VJPs compute values; they never record
    std::size_t i = root + 1;
    try
    {
        while (i-- > 0)
        {
            NodeBase* n = entries_[i];
            if (n->has_grad())
            {
                n->apply();
                n->clear_grad();
            }
            if (!retain_graph)
            {
                destroy(n);
                entries_[i] = nullptr;
            }
        }
    }
    catch (...)
    {
        // Leave the tape consistent: drop the gradients in flight; released nodes leave the tape.
        for (std::size_t j = 0; j <= root; ++j)
        {
            if (entries_[j] != nullptr)
            {
                entries_[j]->clear_grad();
            }
        }
        if (!retain_graph)
        {
            for (std::size_t j = 0; j <= root; ++j)
            {
                if (entries_[j] != nullptr)
                {
                    destroy(entries_[j]);
                }
            }
            drop_front(root);
        }
        throw;
    }
    if (!retain_graph)
    {
        drop_front(root);
    }
}

Tape& current_tape()
{
    if (scoped_tape != nullptr)
    {
        return *scoped_tape;
    }
    thread_local Tape tape;
    return tape;
}

TapeScope::TapeScope()
  : tape_(std::make_unique<Tape>())
  , previous_(scoped_tape)
{
    scoped_tape = tape_.get();
}

TapeScope::~TapeScope()
{
    scoped_tape = previous_;
}

// ---------------------------------------------------------------------------------------------
// Node and BackwardContext

namespace
{
/// acc += g for two arrays of the same shape (an xtensor expression costs far more at small sizes).
template <class T>
void add_into(xt::xarray<T>& acc, const xt::xarray<T>& g)
{
    T* a = acc.data();
    const T* pg = g.data();
    for (std::size_t i = 0, n = acc.size(); i < n; ++i)
    {
        a[i] += pg[i];
    }
}
} // namespace

template <class T>
void Node<T>::accumulate(xt::xarray<T>&& g)
{
    if (!has_grad_)
    {
        grad_out_.emplace(std::move(g));
        has_grad_ = true;
    }
    else
    {
        own_grad();
        add_into(*grad_out_, g);
    }
}

template <class T>
void Node<T>::borrow(const xt::xarray<T>& g)
{
    if (has_grad_)
    {
        own_grad();
        add_into(*grad_out_, g);
        return;
    }
    borrowed_ = &g;
    has_grad_ = true;
}

template <class T>
void Node<T>::own_grad()
{
    if (borrowed_ != nullptr)
    {
        grad_out_.emplace(*borrowed_);
        borrowed_ = nullptr;
    }
}

template <class T>
void Node<T>::check_saved_versions() const
{
    for (std::size_t i = 0; i < n_inputs_; ++i)
    {
        const Input& in = inputs_[i];
        if (in.saved && in.impl && in.impl->version() != in.version)
        {
            throw AutogradError(
              detail::cat("backward through tg::", name(), ": input ", i, " of shape ",
                          shape_str(in.impl->value().shape()), " was saved for backward at version ",
                          in.version, " but was modified in place (now version ", in.impl->version(),
                          "); the gradient would use the new values. Clone it before writing to it, "
                          "or write to it after backward."));
        }
    }
    if (output_ && output_->version() != output_version_)
    {
        throw AutogradError(detail::cat("backward through tg::", name(), ": its output of shape ",
                                        shape_str(output_->value().shape()),
                                        " was saved for backward but was modified in place (version ",
                                        output_version_, " -> ", output_->version(), ")."));
    }
}

template <class T>
const xt::xarray<T>& BackwardContext<T>::input(std::size_t i) const
{
    const auto& in = node_.inputs_[i];
    if (i >= node_.n_inputs_ || !in.impl || !in.saved)
    {
        throw AutogradError(detail::cat("internal: tg::", node_.name(), " reads input ", i,
                                        " in its VJP without declaring it saved"));
    }
    return in.impl->value();
}

template <class T>
const xt::xarray<T>& BackwardContext<T>::output() const
{
    if (!node_.output_)
    {
        throw AutogradError(detail::cat("internal: tg::", node_.name(),
                                        " reads its output in its VJP without declaring it saved"));
    }
    return node_.output_->value();
}

template <class T>
void BackwardContext<T>::accumulate(std::size_t i, xt::xarray<T>&& g)
{
    TensorImpl<T>& impl = *node_.inputs_[i].impl;
    const auto& want = impl.value().shape();
    if (!detail::shapes_equal(g.shape(), want))
    {
        throw AutogradError(detail::cat(
          "internal: the VJP of tg::", node_.name(), " produced a gradient of shape ", shape_str(g.shape()),
          " for input ", i, " of shape ", shape_str(want), "; a gradient must have its input's shape"));
    }
    if (!impl.requires_grad)
    {
        return;
    }
    if (!impl.is_leaf())
    {
        const Tape& tape = current_tape();
        if (impl.tape_id != tape.id())
        {
            throw AutogradError(detail::cat(
              "backward through tg::", node_.name(), ": input ", i, " of shape ", shape_str(want),
              " was recorded on another thread's tape (or inside a TapeScope that has ended); recording is "
              "thread-local, so gradients cannot flow into it. detach() it before using it here."));
        }
        if (!tape.holds(impl.grad_fn_seq))
        {
            throw AutogradError(detail::cat(
              "backward through tg::", node_.name(), ": input ", i, " of shape ", shape_str(want),
              " was produced by an op whose recorded graph has already been released by an earlier backward. "
              "Pass {.retain_graph = true} to the first backward to keep it."));
        }
        static_cast<Node<T>*>(impl.grad_fn)->accumulate(std::move(g));
        return;
    }
    if (!impl.grad)
    {
        impl.grad = std::make_shared<TensorImpl<T>>(std::move(g));
    }
    else
    {
        add_into(impl.grad->mutable_value(), g);
    }
}

template class Node<float>;
template class Node<double>;
template class BackwardContext<float>;
template class BackwardContext<double>;

} // namespace tapegrad
