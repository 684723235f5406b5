#include <tapegrad/nn/safetensors.hpp>
#include <tapegrad/nn/serialize.hpp>

#include <set>

namespace tapegrad::nn
{

void save(const Module& model, const std::string& path, const Metadata& metadata)
{
    write_safetensors(path, model.named_parameters(), metadata);
}

Metadata load(Module& model, const std::string& path)
{
    const SafetensorsFile file = read_safetensors(path);
    const NamedTensors params = model.named_parameters();
    std::set<std::string> expected;
    for (const auto& [name, t] : params)
    {
        expected.insert(name);
    }
    for (const auto& entry : file.tensors)
    {
        if (expected.count(entry.name) == 0)
        {
            throw IoError(detail::cat(
              "tg::nn::load: ", path, ": tensor \"", entry.name, "\" of shape ", shape_str(entry.shape),
              " has no parameter of that name in the model (a different architecture?)"));
        }
    }
    std::vector<xt::xarray<float>> values;
    values.reserve(params.size());
    for (const auto& [name, t] : params)
    {
        const SafetensorsEntry* entry = file.find(name);
        if (entry == nullptr)
        {
            throw IoError(detail::cat("tg::nn::load: ", path, ": tensor \"", name, "\" (shape ",
                                      shape_str(t.shape()),
                                      ") is missing from the file (a different architecture?)"));
        }
        if (entry->shape != t.shape())
        {
            throw IoError(detail::cat("tg::nn::load: ", path, ": tensor \"", name, "\" has shape ",
                                      shape_str(entry->shape), " in the file but ", shape_str(t.shape()),
                                      " in the model"));
        }
        values.push_back(entry->to_float());
    }
    // Everything checked: now copy.
    for (std::size_t i = 0; i < params.size(); ++i)
    {
        Tensor t = params[i].second;
        t.mutable_value() = std::move(values[i]);
    }
    return file.metadata;
}

void save_tensors(const optim::StateDict& tensors, const std::string& path, const Metadata& metadata)
{
    write_safetensors(path, tensors, metadata);
}

optim::StateDict load_tensors(const std::string& path)
{
    optim::StateDict out;
    for (const auto& entry : read_safetensors(path).tensors)
    {
        out.emplace_back(entry.name, Tensor(entry.to_float()));
    }
    return out;
}

} // namespace tapegrad::nn
