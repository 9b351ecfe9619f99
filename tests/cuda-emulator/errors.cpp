// errors.cpp — cuGetErrorName / cuGetErrorString with the driver's own names and strings for every code the
// emulator returns. An unknown code is CUDA_ERROR_INVALID_VALUE with a null string, as in the real driver.
#include "emulator.hpp"

namespace
{
struct Description
{
    int code;
    const char* name;
    const char* text;
};

constexpr Description Known[] = {
    {emu::Success, "CUDA_SUCCESS", "no error"},
    {emu::InvalidValue, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {emu::OutOfMemory, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {emu::NotInitialized, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {emu::NoDevice, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {emu::InvalidDevice, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {emu::InvalidImage, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {emu::InvalidContext, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {emu::InvalidPtx, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {emu::InvalidHandle, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {emu::NotFound, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {emu::NotReady, "CUDA_ERROR_NOT_READY", "device not ready"},
    {emu::IllegalAddress, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {emu::LaunchFailed, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
};

const Description* find(int code)
{
    for (const auto& d : Known)
        if (d.code == code) return &d;
    return nullptr;
}
} // namespace

extern "C"
{
int cuGetErrorName(int error, const char** name)
{
    if (name == nullptr) return emu::InvalidValue;
    const Description* d = find(error);
    *name = d != nullptr ? d->name : nullptr;
    return d != nullptr ? emu::Success : emu::InvalidValue;
}

int cuGetErrorString(int error, const char** text)
{
    if (text == nullptr) return emu::InvalidValue;
    const Description* d = find(error);
    *text = d != nullptr ? d->text : nullptr;
    return d != nullptr ? emu::Success : emu::InvalidValue;
}
}
