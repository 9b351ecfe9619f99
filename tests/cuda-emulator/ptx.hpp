// ptx.hpp — the little of PTX the emulated driver reads: each .entry's name and the sizes of its .param list.
#pragma once

#include <string>
#include <vector>

namespace emu
{
struct PtxEntry
{
    std::string name;
    std::vector<unsigned> parameter_sizes;
};

// Reads every .entry of `ptx`. False, with the reason in `error`, when the text has no .version, targets an
// architecture newer than `device_architecture` (e.g. 90 for sm_90), or a .param has a type it cannot size.
bool parse_ptx(const char* ptx, int device_architecture, std::vector<PtxEntry>& entries, std::string& error);
} // namespace emu
