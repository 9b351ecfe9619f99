// ptx.cpp — see ptx.hpp. PTX declares an entry as
//   .visible .entry name(
//       .param .u64 name_param_0,
//       .param .align 8 .b8 name_param_1[16]
//   )
// so a parameter's size is its scalar type's width, times the array length when it has one.
#include <cctype>
#include <cstdlib>
#include <sstream>

#include "ptx.hpp"

namespace emu
{
namespace
{
unsigned scalar_bytes(const std::string& type)
{
    // .u64 .s32 .f32 .b8 .f16 …: the digits after the letter are the width in bits.
    if (type.size() < 3 || type[0] != '.') return 0;
    int bits = std::atoi(type.c_str() + 2);
    return bits % 8 == 0 ? static_cast<unsigned>(bits / 8) : 0;
}

// The size of one ".param …" declaration (the text between ".param" and the next ',' or ')').
unsigned parameter_bytes(const std::string& declaration)
{
    std::istringstream words(declaration);
    std::string word, type, name;
    while (words >> word)
    {
        if (word == ".align") words >> word;  // the alignment value
        else if (word[0] == '.') type = word;
        else name = word;
    }
    unsigned bytes = scalar_bytes(type);
    auto bracket = name.find('[');
    if (bracket != std::string::npos) bytes *= static_cast<unsigned>(std::atoi(name.c_str() + bracket + 1));
    return bytes;
}
} // namespace

bool parse_ptx(const char* ptx, int device_architecture, std::vector<PtxEntry>& entries, std::string& error)
{
    std::string text(ptx);
    if (text.find(".version") == std::string::npos)
    {
        error = "the image is not PTX text (no .version directive)";
        return false;
    }
    auto target = text.find(".target sm_");
    if (target != std::string::npos)
    {
        int architecture = std::atoi(text.c_str() + target + 11);
        if (architecture > device_architecture)
        {
            error = "the PTX targets sm_" + std::to_string(architecture) + ", newer than the device (sm_" +
                    std::to_string(device_architecture) + ")";
            return false;
        }
    }
    for (auto at = text.find(".entry"); at != std::string::npos; at = text.find(".entry", at + 6))
    {
        std::size_t start = at + 6;
        while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) start++;
        std::size_t end = start;
        while (end < text.size() && (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_')) end++;
        PtxEntry entry{text.substr(start, end - start), {}};
        std::size_t open = text.find('(', end), close = text.find(')', end);
        std::size_t body = text.find('{', end);
        if (open != std::string::npos && open < body && close != std::string::npos)
        {
            std::string list = text.substr(open + 1, close - open - 1);
            for (auto p = list.find(".param"); p != std::string::npos; p = list.find(".param", p + 6))
            {
                std::size_t stop = list.find(',', p);
                std::string declaration = list.substr(p + 6, (stop == std::string::npos ? list.size() : stop) - p - 6);
                unsigned bytes = parameter_bytes(declaration);
                if (bytes == 0)
                {
                    error = "cannot size parameter '" + declaration + "' of " + entry.name;
                    return false;
                }
                entry.parameter_sizes.push_back(bytes);
            }
        }
        entries.push_back(std::move(entry));
    }
    return true;
}
} // namespace emu
