// memory.cpp — the emulated device memory. Each cuMemAlloc is a host allocation laid out as
//   [front guard][payload][back guard]
// with the guards filled with a known byte. A kernel (or cuBLAS call) that writes just outside its buffer changes a
// guard, which the driver checks after every launch and at free, the way a GPU's memory checker would trip. The
// payload starts filled with 0xFF bytes (a NaN in every float format), so code that reads memory it never wrote —
// which on a GPU is whatever the last owner left — shows up as NaN instead of a lucky zero.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "emulator.hpp"

namespace emu
{
namespace
{
constexpr std::size_t GuardBytes = 256;  // also the payload's alignment, like cudaMalloc's 256 bytes
constexpr unsigned char GuardByte = 0xA5, FreshByte = 0xFF;

struct Allocation
{
    unsigned char* block;  // from aligned_alloc; the payload is block + GuardBytes
    std::size_t bytes;     // the payload's size as requested
    std::size_t padded;    // the payload rounded up to GuardBytes
    const void* owner;     // the context current at cuMemAlloc
};

std::mutex gate;
std::map<std::uint64_t, Allocation>& live()
{
    static std::map<std::uint64_t, Allocation> allocations;
    return allocations;
}
std::size_t used = 0;

std::size_t parse_memory_variable()
{
    const char* text = std::getenv("SHARDWISE_EMULATED_DEVICE_MEMORY");
    if (text == nullptr || *text == 0) return std::size_t(16) << 30;
    char* end = nullptr;
    unsigned long long value = std::strtoull(text, &end, 10);
    switch (*end)
    {
    case 'K': case 'k': value <<= 10; break;
    case 'M': case 'm': value <<= 20; break;
    case 'G': case 'g': value <<= 30; break;
    case 0: break;
    default:
        std::fprintf(stderr, "cuda-emulator: SHARDWISE_EMULATED_DEVICE_MEMORY='%s' is not a byte count "
                             "(digits, optionally followed by K, M or G); using 16G\n", text);
        return std::size_t(16) << 30;
    }
    return static_cast<std::size_t>(value);
}

// The allocation that contains `pointer`, or live().end().
std::map<std::uint64_t, Allocation>::iterator containing(std::uint64_t pointer)
{
    auto after = live().upper_bound(pointer);
    if (after == live().begin()) return live().end();
    auto candidate = std::prev(after);
    return pointer < candidate->first + candidate->second.bytes ? candidate : live().end();
}

bool guards_intact(const Allocation& a)
{
    const unsigned char* payload = a.block + GuardBytes;
    for (std::size_t i = 0; i < GuardBytes; i++)
        if (a.block[i] != GuardByte) return false;
    // The back guard starts right after the requested bytes, so an overrun into the padding is caught too.
    for (std::size_t i = a.bytes; i < a.padded + GuardBytes; i++)
        if (payload[i] != GuardByte) return false;
    return true;
}

std::string describe(std::uint64_t pointer, const Allocation& a)
{
    char text[128];
    std::snprintf(text, sizeof text, "allocation 0x%" PRIx64 " of %zu bytes", pointer, a.bytes);
    return text;
}
} // namespace

std::size_t total_memory() { return parse_memory_variable(); }

std::uint64_t allocation_base(std::uint64_t pointer)
{
    std::lock_guard<std::mutex> lock(gate);
    auto found = containing(pointer);
    return found == live().end() ? 0 : found->first;
}

std::size_t used_memory() { return used; }

Result allocate(std::uint64_t* pointer, std::size_t bytes, const void* owner, const char* call)
{
    if (pointer == nullptr || bytes == 0) return InvalidValue;
    std::lock_guard<std::mutex> lock(gate);
    std::size_t padded = (bytes + GuardBytes - 1) / GuardBytes * GuardBytes;
    if (padded > total_memory() || used > total_memory() - padded)
    {
        std::fprintf(stderr, "cuda-emulator: %s(%zu bytes): out of memory (%zu of %zu bytes in use)\n", call, bytes,
                     used, total_memory());
        return OutOfMemory;
    }
    auto* block = static_cast<unsigned char*>(std::aligned_alloc(GuardBytes, padded + 2 * GuardBytes));
    if (block == nullptr) return OutOfMemory;
    std::memset(block, GuardByte, GuardBytes);
    std::memset(block + GuardBytes, FreshByte, bytes);
    std::memset(block + GuardBytes + bytes, GuardByte, padded - bytes + GuardBytes);
    *pointer = reinterpret_cast<std::uint64_t>(block + GuardBytes);
    live()[*pointer] = Allocation{block, bytes, padded, owner};
    used += padded;
    return Success;
}

Result release(std::uint64_t pointer, const char* call)
{
    std::lock_guard<std::mutex> lock(gate);
    auto found = live().find(pointer);
    if (found == live().end())
    {
        std::fprintf(stderr, "cuda-emulator: %s(0x%" PRIx64 "): not the start of a live allocation\n", call, pointer);
        return InvalidValue;
    }
    Allocation a = found->second;
    bool intact = guards_intact(a);
    if (!intact)
        std::fprintf(stderr, "cuda-emulator: %s: the guard bytes of %s were overwritten (a write out of bounds)\n",
                     call, describe(pointer, a).c_str());
    live().erase(found);
    used -= a.padded;
    std::free(a.block);
    return intact ? Success : IllegalAddress;
}

Result check_range(std::uint64_t pointer, std::size_t bytes, const char* call, const char* operand)
{
    std::lock_guard<std::mutex> lock(gate);
    auto found = containing(pointer);
    if (found != live().end() && bytes <= found->first + found->second.bytes - pointer) return Success;
    if (found == live().end())
        std::fprintf(stderr, "cuda-emulator: %s: %s 0x%" PRIx64 " (%zu bytes) is not inside any live device "
                             "allocation\n", call, operand, pointer, bytes);
    else
        std::fprintf(stderr, "cuda-emulator: %s: %s 0x%" PRIx64 " + %zu bytes runs past the end of %s (by %zu "
                             "bytes)\n", call, operand, pointer, bytes, describe(found->first, found->second).c_str(),
                     static_cast<std::size_t>(pointer + bytes - found->first - found->second.bytes));
    return InvalidValue;
}

void release_all(const void* owner)
{
    std::lock_guard<std::mutex> lock(gate);
    for (auto it = live().begin(); it != live().end();)
    {
        if (it->second.owner != owner)
        {
            ++it;
            continue;
        }
        used -= it->second.padded;
        std::free(it->second.block);
        it = live().erase(it);
    }
}

std::string find_corrupted_guard()
{
    std::lock_guard<std::mutex> lock(gate);
    for (auto& [pointer, a] : live())
    {
        if (guards_intact(a)) continue;
        std::memset(a.block, GuardByte, GuardBytes);
        std::memset(a.block + GuardBytes + a.bytes, GuardByte, a.padded - a.bytes + GuardBytes);
        return describe(pointer, a);
    }
    return std::string();
}
} // namespace emu

extern "C" int swemu_check_device_range(std::uint64_t pointer, std::size_t bytes, const char* call,
                                        const char* operand)
{
    return emu::check_range(pointer, bytes, call, operand) == emu::Success ? 0 : 1;
}
