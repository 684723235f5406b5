#pragma once
/// @file tape.hpp
/// The tape: a thread-local, linear record of ops in execution order, replayed in reverse by one
/// loop. Recording order is already a topological order, so backward needs no graph search and no
/// recursion.
///
/// Note [Tape ownership]. The tape owns its nodes. A node owns (shared_ptr) the impls of its inputs
/// and, if its VJP needs it, of its output. An impl points back at its producer with a plain
/// pointer plus (tape id, sequence number); the pointer is followed only after checking that the
/// thread's current tape has that id and still holds that sequence number. So there are no
/// ownership cycles, destruction never recurses, and a released node is never dereferenced.
///
/// Note [Releasing]. backward() from a root at tape position p visits positions p..0 and, unless
/// retain_graph is set, destroys each node right after its VJP ran (freeing the values it saved),
/// then drops positions 0..p from the tape. Ops recorded after the root stay.
///
/// Note [Node memory]. Nodes are therefore released oldest first, so their memory is a queue: the
/// tape's NodeArena bump-allocates each node in its newest chunk and recycles a chunk once every
/// node in it is released. That replaces a malloc/free pair per recorded op.

#include <tapegrad/autograd/tensor.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <vector>

namespace tapegrad
{

/// The type-erased tape entry.
class NodeBase
{
  public:
    NodeBase(const char* name, std::uint64_t seq)
      : name_(name)
      , seq_(seq)
    {
    }
    virtual ~NodeBase() = default;
    NodeBase(const NodeBase&) = delete;
    NodeBase& operator=(const NodeBase&) = delete;

    const char* name() const noexcept { return name_; }
    std::uint64_t seq() const noexcept { return seq_; }
    /// True once some gradient has reached this node's output during the current backward.
    bool has_grad() const noexcept { return has_grad_; }

    /// Runs the VJP: reads the output gradient, accumulates into the inputs.
    virtual void apply() = 0;
    /// Drops the output gradient after apply() (or after a failed backward).
    virtual void clear_grad() noexcept = 0;

  protected:
    bool has_grad_ = false;

  private:
    const char* name_;
    std::uint64_t seq_;
};

/// Memory for one tape's nodes (Note [Node memory]). Not thread-safe: only its tape's thread uses it.
class NodeArena
{
  public:
    /// Every node is placed at a multiple of this.
    static constexpr std::size_t alignment = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

    NodeArena();
    /// `bytes` of storage for the node with sequence number `seq`.
    void* allocate(std::size_t bytes, std::uint64_t seq);
    /// Recycles the chunks whose nodes all have sequence numbers below `first_live`. The nodes must
    /// already be destroyed.
    void release_before(std::uint64_t first_live) noexcept;

  private:
    struct Chunk
    {
        std::unique_ptr<std::byte[]> memory;
        std::size_t size = 0;
        std::size_t used = 0;
        std::uint64_t last_seq = 0;
    };
    static constexpr std::size_t chunk_bytes = std::size_t{64} << 10;
    static constexpr std::size_t max_spare = 16; // up to 1 MiB kept for the next graph

    std::deque<Chunk> live_; // oldest first; nodes go into back()
    std::vector<Chunk> spare_;
};

/// The thread's tape. Obtain it with current_tape().
class Tape
{
  public:
    Tape();
    ~Tape();
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;

    /// Unique id of this tape (ids are never reused).
    std::uint64_t id() const noexcept { return id_; }
    /// Number of recorded, unreleased ops.
    std::size_t size() const noexcept { return entries_.size(); }
    /// True while node `seq` is recorded on this tape and not released.
    bool holds(std::uint64_t seq) const noexcept { return seq >= first_seq_ && seq < next_seq_; }
    /// The sequence number the next recorded node will get.
    std::uint64_t next_seq() const noexcept { return next_seq_; }

    /// Storage for the next node; construct it there, then push() it.
    void* allocate_node(std::size_t bytes) { return arena_.allocate(bytes, next_seq_); }
    /// Appends a node built in allocate_node() memory; takes ownership (destroys it if this throws).
    void push(NodeBase* node);
    /// Replays positions seq..first in reverse order (Note [Releasing]).
    void replay(std::uint64_t root_seq, bool retain_graph);
    /// Releases every node without running it.
    void clear() noexcept;
    /// Names of the recorded ops, oldest first (for debugging and teaching).
    std::vector<const char*> op_names() const;

  private:
    /// Drops positions 0..last (already destroyed) and recycles their memory.
    void drop_front(std::size_t last) noexcept;

    NodeArena arena_;
    std::vector<NodeBase*> entries_;
    std::uint64_t id_;
    std::uint64_t first_seq_ = 1;
    std::uint64_t next_seq_ = 1;
};

/// The calling thread's tape.
Tape& current_tape();

/// RAII: gives this thread a fresh, empty tape while it lives, then restores the previous one.
/// Tensors recorded on the scoped tape cannot be backpropagated through after it ends.
class TapeScope
{
  public:
    TapeScope();
    ~TapeScope();
    TapeScope(const TapeScope&) = delete;
    TapeScope& operator=(const TapeScope&) = delete;

  private:
    std::unique_ptr<Tape> tape_;
    Tape* previous_;
};

/// Which values a node keeps for its VJP. Only these are checked for in-place modification.
struct Saves
{
    std::uint32_t input_mask = 0;
    bool output = false;

    static constexpr Saves nothing() { return {}; }
    static constexpr Saves inputs(std::initializer_list<int> indices)
    {
        Saves s;
        for (int i : indices)
        {
            s.input_mask |= 1u << i;
        }
        return s;
    }
    static constexpr Saves only_output() { return {0, true}; }
    constexpr Saves and_output() const { return {input_mask, true}; }
};

template <class T>
class BackwardContext;

/// The inputs of an op, passed as `{a, b}` without copying the handles.
template <class T>
using TensorRefs = std::initializer_list<std::reference_wrapper<const BasicTensor<T>>>;

/// A typed tape entry: the inputs, the output-gradient slot, and saved versions.
template <class T>
class Node : public NodeBase
{
  public:
    static constexpr std::size_t max_inputs = 4;

    Node(const char* name, std::uint64_t seq)
      : NodeBase(name, seq)
    {
    }

    /// Adds `g` into the output-gradient slot (moves when the slot is empty).
    void accumulate(xt::xarray<T>&& g);
    /// Makes `g` the output gradient without copying it (backward(seed): the caller's seed outlives
    /// the replay); the first write through take_grad_output() or accumulate() copies it.
    void borrow(const xt::xarray<T>& g);
    void clear_grad() noexcept override
    {
        grad_out_.reset();
        borrowed_ = nullptr;
        has_grad_ = false;
    }

    /// Links input slot `i` to `impl`; `saved` marks values the VJP reads.
    void link_input(std::size_t i, const std::shared_ptr<TensorImpl<T>>& impl, bool saved)
    {
        inputs_[i] = Input{impl, impl->version(), saved};
    }
    void set_input_count(std::size_t n) noexcept { n_inputs_ = n; }
    /// Keeps the output alive if the VJP reads it.
    void link_output(const std::shared_ptr<TensorImpl<T>>& out, bool saved)
    {
        if (saved)
        {
            output_ = out;
            output_version_ = out->version();
        }
    }

  protected:
    friend class BackwardContext<T>;

    /// Throws AutogradError when a saved tensor changed since recording.
    void check_saved_versions() const;

    struct Input
    {
        std::shared_ptr<TensorImpl<T>> impl;
        std::uint32_t version = 0;
        bool saved = false;
    };
    std::array<Input, max_inputs> inputs_{};
    std::size_t n_inputs_ = 0;
    std::shared_ptr<TensorImpl<T>> output_;
    std::uint32_t output_version_ = 0;
    /// Empty until a gradient arrives: a default-constructed xarray would allocate one element.
    std::optional<xt::xarray<T>> grad_out_;
    /// A borrowed output gradient (borrow()), in place of grad_out_ until something writes.
    const xt::xarray<T>* borrowed_ = nullptr;
    /// Turns a borrowed output gradient into an owned copy.
    void own_grad();
};

/// What a VJP sees: the output gradient, the saved values, and where to send input gradients.
template <class T>
class BackwardContext
{
  public:
    explicit BackwardContext(Node<T>& node)
      : node_(node)
    {
    }

    /// dL/d(output), shaped like the output.
    const xt::xarray<T>& grad_output() const noexcept
    {
        return node_.borrowed_ != nullptr ? *node_.borrowed_ : *node_.grad_out_;
    }
    /// dL/d(output) as an rvalue, for a VJP that passes it on or overwrites it in place as an input
    /// gradient of the same shape (call it last). Passing the result straight to accumulate() moves
    /// the buffer once; an xarray move is not free (it swaps three small vectors element by element).
    /// A borrowed seed is copied first.
    xt::xarray<T>&& take_grad_output()
    {
        node_.own_grad();
        return std::move(*node_.grad_out_);
    }
    /// Whether input `i` wants a gradient. Skip the work when it does not.
    bool needs_grad(std::size_t i) const noexcept
    {
        return i < node_.n_inputs_ && node_.inputs_[i].impl && node_.inputs_[i].impl->requires_grad;
    }
    /// The value of input `i`, which the op declared saved.
    const xt::xarray<T>& input(std::size_t i) const;
    /// The op's output value, which the op declared saved.
    const xt::xarray<T>& output() const;
    /// Shape of input `i`.
    const typename xt::xarray<T>::shape_type& input_shape(std::size_t i) const
    {
        return node_.inputs_[i].impl->value().shape();
    }
    /// Sends dL/d(input i). Throws AutogradError if its shape differs from input i's shape.
    void accumulate(std::size_t i, xt::xarray<T>&& g);

  private:
    Node<T>& node_;
};

/// True when an op on these inputs would be recorded: grad mode is on and an input requires grad.
template <class T>
bool should_record(std::type_identity_t<TensorRefs<T>> inputs)
{
    if (!GradMode::is_enabled())
    {
        return false;
    }
    for (const BasicTensor<T>& t : inputs)
    {
        if (t.defined() && t.impl()->requires_grad)
        {
            return true;
        }
    }
    return false;
}

namespace detail
{
template <class T, class F>
class FunctionNode final : public Node<T>
{
  public:
    FunctionNode(const char* name, std::uint64_t seq, F&& fn)
      : Node<T>(name, seq)
      , fn_(std::move(fn))
    {
    }
    void apply() override
    {
        this->check_saved_versions();
        BackwardContext<T> ctx(*this);
        fn_(ctx);
    }

  private:
    F fn_;
};

} // namespace detail

/// A new output of `shape`, uninitialised, for an op to compute into (out->new_value()) and then
/// pass to record(). Building the value in place saves record() an xarray move, which is not free:
/// it swaps three small vectors element by element.
template <class T>
std::shared_ptr<TensorImpl<T>> new_output(const typename xt::xarray<T>::shape_type& shape)
{
    return std::make_shared<TensorImpl<T>>(shape);
}

/// The single choke point for recording. Returns a tensor holding `out`; if should_record(inputs)
/// it also appends a node whose VJP is `vjp`. Undefined tensors in `inputs` are optional inputs
/// that are absent (conv2d without bias).
template <class T, class F>
BasicTensor<T> record(const char* name, std::shared_ptr<TensorImpl<T>> out,
                      std::type_identity_t<TensorRefs<T>> inputs, Saves saves, F&& vjp)
{
    if (!should_record<T>(inputs))
    {
        return BasicTensor<T>(std::move(out));
    }
    Tape& tape = current_tape();
    using NodeType = detail::FunctionNode<T, std::decay_t<F>>;
    static_assert(alignof(NodeType) <= NodeArena::alignment,
                  "a VJP capture needs more alignment than the arena gives");
    auto* node =
      new (tape.allocate_node(sizeof(NodeType))) NodeType(name, tape.next_seq(), std::forward<F>(vjp));
    std::size_t i = 0;
    for (const BasicTensor<T>& t : inputs)
    {
        if (t.defined())
        {
            node->link_input(i, t.impl(), (saves.input_mask >> i) & 1u);
        }
        ++i;
    }
    node->set_input_count(i);
    node->link_output(out, saves.output);
    out->requires_grad = true;
    out->grad_fn = node;
    out->grad_fn_seq = node->seq();
    out->tape_id = tape.id();
    tape.push(node);
    return BasicTensor<T>(std::move(out));
}

/// As above for an output value computed elsewhere (moved into the new tensor).
template <class T, class F>
BasicTensor<T> record(const char* name, xt::xarray<T>&& value, std::type_identity_t<TensorRefs<T>> inputs,
                      Saves saves, F&& vjp)
{
    return record<T>(name, std::make_shared<TensorImpl<T>>(std::move(value)), inputs, saves,
                     std::forward<F>(vjp));
}

} // namespace tapegrad
