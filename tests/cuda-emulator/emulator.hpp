// emulator.hpp — what the fake libcuda.so.1 (driver.cpp, memory.cpp) shares between its files, and the one entry
// point the fake cuBLAS/cuBLASLt/NCCL use to check that an operand lies inside a live device allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace emu
{
// CUresult values the emulator returns (cuda.h).
enum Result : int
{
    Success = 0,
    InvalidValue = 1,
    OutOfMemory = 2,
    NotInitialized = 3,
    NoDevice = 100,
    InvalidDevice = 101,
    InvalidImage = 200,
    InvalidContext = 201,
    InvalidPtx = 218,
    InvalidHandle = 400,
    NotFound = 500,
    NotReady = 600,
    IllegalAddress = 700,
    LaunchFailed = 719,
};

// Device memory: host allocations framed by guard bytes; a device pointer is the payload's address.
Result allocate(std::uint64_t* pointer, std::size_t bytes, const void* owner, const char* call);
Result release(std::uint64_t pointer, const char* call);
// InvalidValue (and a stderr line naming `call`) unless [pointer, pointer + bytes) lies inside one live allocation.
Result check_range(std::uint64_t pointer, std::size_t bytes, const char* call, const char* operand);
// The start of the live allocation that contains `pointer`, or 0.
std::uint64_t allocation_base(std::uint64_t pointer);
// Frees every allocation of `owner` (a destroyed context), as a GPU does.
void release_all(const void* owner);
// The first allocation whose guard bytes were overwritten, described, with its guards then restored so one overrun
// is reported once; empty when every guard is intact.
std::string find_corrupted_guard();
// The emulated device's memory: SHARDWISE_EMULATED_DEVICE_MEMORY (bytes, or with a K/M/G suffix), read at every
// call so that a test can lower it, else 16 GiB.
std::size_t total_memory();
// Bytes of the emulated device's memory held by live allocations (guards included), as cuMemGetInfo reports them.
std::size_t used_memory();
} // namespace emu

// Exported for the fake cuBLAS, cuBLASLt and NCCL: 0 when the range is inside one live allocation, else 1 after
// printing a message that names `call` and `operand`.
extern "C" int swemu_check_device_range(std::uint64_t pointer, std::size_t bytes, const char* call,
                                        const char* operand);
