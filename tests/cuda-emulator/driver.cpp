// driver.cpp — libcuda.so.1 for the "Shardwise SIMT emulator" device: the driver entry points the runtime binds
// (runtime/Shardwise/Cuda/Interop/CuDriver.cs), implemented on the host. Kernels and synchronous copies run at the
// call, through the SIMT scheduler of tests/kernels-harness; the *Async copies are queued on their stream and run at
// the next synchronisation point (cuStreamSynchronize, cuEventSynchronize, cuCtxSynchronize, a synchronous copy or
// memset, cuMemFree) or before the next operation on that stream — so host code that reuses a pinned buffer, or
// reads one, before synchronising sees what it would risk on a GPU. The driver is strict where a GPU punishes host
// bugs: a current context is required, copies must stay inside one live allocation, launch limits are enforced, and
// a kernel that overwrites an allocation's guard bytes poisons its context with CUDA_ERROR_ILLEGAL_ADDRESS, sticky
// like on a GPU until the context is destroyed (or the primary context fully released).
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "emulator.hpp"
#include "ptx.hpp"
#include "stream_order.hpp"

extern "C" int simt_launch(const char* name, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x,
                           unsigned block_y, unsigned block_z, unsigned long long shared_bytes, int reversed,
                           void** arguments, const unsigned* sizes, int count);
extern "C" const char* simt_last_error();
extern "C" int simt_kernel_parameters(const char* name, const unsigned** sizes);

using emu::Result;

namespace
{
constexpr int Multiprocessors = 132, DriverVersion = 13000;

// The compute capability: 9.0, or SHARDWISE_EMULATED_COMPUTE_CAPABILITY ("12.0"), read from the native environment
// at every query so a test can present a device newer than the installed NVRTC knows.
int compute_capability()
{
    const char* text = std::getenv("SHARDWISE_EMULATED_COMPUTE_CAPABILITY");
    int major = 0, minor = 0;
    if (text != nullptr && std::sscanf(text, "%d.%d", &major, &minor) == 2 && major > 0 && minor >= 0 && minor < 10)
        return major * 10 + minor;
    if (text != nullptr && *text != 0)
        std::fprintf(stderr, "cuda-emulator: SHARDWISE_EMULATED_COMPUTE_CAPABILITY='%s' is not MAJOR.MINOR; using "
                             "9.0\n", text);
    return 90;
}
constexpr unsigned MaxThreadsPerBlock = 1024, MaxSharedBytes = 48 * 1024;
// The opt-in limit of dynamic shared memory per block on sm_90 (227 KiB), what cuFuncSetAttribute may raise it to.
constexpr unsigned MaxSharedBytesOptIn = 227 * 1024;

// The number of devices: 1, or SHARDWISE_EMULATED_DEVICE_COUNT (1 to 64, native environment), so that each rank of
// an mpirun job can take its own device (ordinal = local rank), as NCCL requires. The devices are identical, and a
// process may use one of them only (its memory and contexts are the process's own): a second device is refused.
int device_count()
{
    const char* text = std::getenv("SHARDWISE_EMULATED_DEVICE_COUNT");
    if (text == nullptr || *text == 0) return 1;
    int count = std::atoi(text);
    if (count >= 1 && count <= 64) return count;
    std::fprintf(stderr, "cuda-emulator: SHARDWISE_EMULATED_DEVICE_COUNT='%s' is not 1 to 64; using 1\n", text);
    return 1;
}

bool valid_device(int device) { return device >= 0 && device < device_count(); }

struct Context
{
    bool primary;
    bool alive;
    Result sticky;  // Success, or the error every call in this context returns from now on
};

struct Module
{
    Context* context;
    std::vector<emu::PtxEntry> entries;
    bool loaded;
};

struct Function
{
    Module* module;
    std::string name;
    std::vector<unsigned> sizes;
    unsigned max_dynamic_shared = MaxSharedBytes; // raised by cuFuncSetAttribute, as on a GPU
};

struct Event
{
    bool timing;
    bool recorded;
    std::chrono::steady_clock::time_point at;
    void* stream;  // where it was last recorded
    std::uint64_t mark;  // what it marks there (stream_order.hpp): the legacy stream's work, or a side stream's operations
};

struct Stream
{
    bool blocking;  // created without CU_STREAM_NON_BLOCKING: ordered with the legacy default stream
};

std::recursive_mutex gate;
bool initialised = false;
Context primary_context{true, false, emu::Success};
int primary_references = 0;
int process_device = -1;  // the one device this process has made a context on (see device_count)

// True when this process may make a context on `device`: its first, or the one it already uses.
bool use_device(int device, const char* call)
{
    if (process_device < 0) process_device = device;
    if (device == process_device) return true;
    std::fprintf(stderr, "cuda-emulator: %s(device %d): this process already uses device %d; the emulator runs one "
                         "device per process\n", call, device, process_device);
    return false;
}
std::set<void*> streams, events, modules, functions, contexts{&primary_context}, host_allocations;
thread_local std::vector<Context*> context_stack;
// Queued async copies per stream; the legacy default stream (handles 0, 1 and the per-thread 2) is key nullptr.
std::map<void*, std::deque<std::function<void()>>> pending;

void* queue_key(void* stream) { return reinterpret_cast<uintptr_t>(stream) <= 2 ? nullptr : stream; }

// A non-blocking stream: not ordered with the legacy stream (stream_order.hpp keeps the two apart).
bool is_side(void* stream)
{
    void* key = queue_key(stream);
    return key != nullptr && streams.count(key) != 0 && !static_cast<Stream*>(key)->blocking;
}

// Legacy-stream work on [pointer, pointer + bytes): refused while a side-stream collective may still use it.
Result legacy_access(std::uint64_t pointer, std::size_t bytes, const char* call, const char* operand)
{
    std::string conflict = emu::order::in_flight_conflict(pointer, bytes, call, operand);
    if (conflict.empty()) return emu::Success;
    std::fprintf(stderr, "%s\n", conflict.c_str());
    return emu::InvalidValue;
}

// A copy or memset queued on `stream` with a device destination and/or source (bytes 0 for none): on the legacy
// stream, checked against side-stream operations in flight and counted; on a side stream (a copy stream), checked and
// recorded as a side-stream operation, like a collective: it must be ordered after the legacy work on its buffers,
// and the legacy stream must wait for it before touching them.
Result copy_access(void* stream, std::uint64_t destination, std::size_t destination_bytes, std::uint64_t source,
                   std::size_t source_bytes, const char* call)
{
    if (is_side(stream))
        return emu::order::begin_side_operation(queue_key(stream), call, destination, destination_bytes, source,
                                                source_bytes)
                   ? emu::Success
                   : emu::InvalidValue;
    if (destination_bytes > 0)
        if (Result r = legacy_access(destination, destination_bytes, call, "destination"); r != emu::Success) return r;
    if (source_bytes > 0)
        if (Result r = legacy_access(source, source_bytes, call, "source"); r != emu::Success) return r;
    emu::order::legacy_work({destination_bytes > 0 ? destination : 0, source_bytes > 0 ? source : 0});
    return emu::Success;
}

// A synchronous copy or memset (legacy stream): as copy_access, and the host has waited for the stream.
Result synchronous_legacy_access(std::uint64_t destination, std::size_t destination_bytes, std::uint64_t source,
                                 std::size_t source_bytes, const char* call)
{
    if (Result r = copy_access(nullptr, destination, destination_bytes, source, source_bytes, call); r != emu::Success)
        return r;
    emu::order::host_waited_for_legacy(emu::order::legacy_mark());
    return emu::Success;
}

void run_queue(void* key)
{
    auto found = pending.find(key);
    if (found == pending.end()) return;
    std::deque<std::function<void()>> work;
    work.swap(found->second);
    pending.erase(found);
    for (auto& step : work) step();
}

void flush_all()
{
    while (!pending.empty()) run_queue(pending.begin()->first);
}

// Completes the queued work `stream` must wait for: its own, and for the legacy stream (or a blocking stream) the
// legacy stream's and every blocking stream's, as the legacy stream's implicit synchronisation orders them.
void flush(void* stream)
{
    void* key = queue_key(stream);
    if (key == nullptr)
    {
        std::vector<void*> keys;
        for (auto& [k, q] : pending)
            if (k == nullptr || static_cast<Stream*>(k)->blocking) keys.push_back(k);
        for (void* k : keys) run_queue(k);
        return;
    }
    if (static_cast<Stream*>(key)->blocking) run_queue(nullptr);
    run_queue(key);
}

void enqueue(void* stream, std::function<void()> step) { pending[queue_key(stream)].push_back(std::move(step)); }

Context* current() { return context_stack.empty() ? nullptr : context_stack.back(); }

// Success when a live, healthy context is current; otherwise the error the call must return.
Result require_context()
{
    if (!initialised) return emu::NotInitialized;
    Context* context = current();
    if (context == nullptr || !context->alive) return emu::InvalidContext;
    return context->sticky;
}

Result require_stream(void* stream)
{
    // 0 is the legacy default stream; 1 and 2 are CU_STREAM_LEGACY and CU_STREAM_PER_THREAD.
    uintptr_t value = reinterpret_cast<uintptr_t>(stream);
    return value <= 2 || streams.count(stream) != 0 ? emu::Success : emu::InvalidHandle;
}

Result poison(Context* context, Result error)
{
    context->sticky = error;
    return error;
}

#define REQUIRE(expression)                            \
    do                                                 \
    {                                                  \
        Result required_ = (expression);               \
        if (required_ != emu::Success) return required_; \
    } while (0)
} // namespace

extern "C"
{
// ---- initialisation, version, error strings ------------------------------------------------------------------
int cuInit(unsigned flags)
{
    if (flags != 0) return emu::InvalidValue;
    std::lock_guard<std::recursive_mutex> lock(gate);
    initialised = true;
    return emu::Success;
}

int cuDriverGetVersion(int* version)
{
    if (version == nullptr) return emu::InvalidValue;
    *version = DriverVersion;
    return emu::Success;
}

int cuGetErrorName(int error, const char** name);
int cuGetErrorString(int error, const char** text);

// ---- device ----------------------------------------------------------------------------------------------------
int cuDeviceGetCount(int* count)
{
    if (!initialised) return emu::NotInitialized;
    if (count == nullptr) return emu::InvalidValue;
    *count = device_count();
    return emu::Success;
}

int cuDeviceGet(int* device, int ordinal)
{
    if (!initialised) return emu::NotInitialized;
    if (device == nullptr) return emu::InvalidValue;
    if (!valid_device(ordinal)) return emu::InvalidDevice;
    *device = ordinal;
    return emu::Success;
}

int cuDeviceGetName(char* name, int length, int device)
{
    if (!initialised) return emu::NotInitialized;
    if (!valid_device(device)) return emu::InvalidDevice;
    if (name == nullptr || length <= 0) return emu::InvalidValue;
    std::snprintf(name, static_cast<std::size_t>(length), "%s", "Shardwise SIMT emulator");
    return emu::Success;
}

int cuDeviceGetAttribute(int* value, int attribute, int device)
{
    if (!initialised) return emu::NotInitialized;
    if (!valid_device(device)) return emu::InvalidDevice;
    if (value == nullptr) return emu::InvalidValue;
    switch (attribute)
    {
    case 1: *value = MaxThreadsPerBlock; break;       // MAX_THREADS_PER_BLOCK
    case 2: case 3: *value = 1024; break;             // MAX_BLOCK_DIM_X, _Y
    case 4: *value = 64; break;                       // MAX_BLOCK_DIM_Z
    case 5: *value = 2147483647; break;               // MAX_GRID_DIM_X
    case 6: case 7: *value = 65535; break;            // MAX_GRID_DIM_Y, _Z
    case 8: *value = MaxSharedBytes; break;           // MAX_SHARED_MEMORY_PER_BLOCK
    case 97: *value = MaxSharedBytesOptIn; break;     // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
    case 10: *value = 32; break;                      // WARP_SIZE
    case 16: *value = Multiprocessors; break;         // MULTIPROCESSOR_COUNT
    case 75: *value = compute_capability() / 10; break;  // COMPUTE_CAPABILITY_MAJOR
    case 76: *value = compute_capability() % 10; break;  // COMPUTE_CAPABILITY_MINOR
    default:
        std::fprintf(stderr, "cuda-emulator: cuDeviceGetAttribute: attribute %d is not emulated\n", attribute);
        return emu::InvalidValue;
    }
    return emu::Success;
}

int cuDeviceTotalMem_v2(std::size_t* bytes, int device)
{
    if (!initialised) return emu::NotInitialized;
    if (!valid_device(device)) return emu::InvalidDevice;
    if (bytes == nullptr) return emu::InvalidValue;
    *bytes = emu::total_memory();
    return emu::Success;
}

// ---- contexts ----------------------------------------------------------------------------------------------------
int cuCtxCreate_v2(void** context, unsigned flags, int device)
{
    if (!initialised) return emu::NotInitialized;
    if (!valid_device(device)) return emu::InvalidDevice;
    if (context == nullptr) return emu::InvalidValue;
    std::lock_guard<std::recursive_mutex> lock(gate);
    if (!use_device(device, "cuCtxCreate")) return emu::InvalidDevice;
    auto* created = new Context{false, true, emu::Success};
    contexts.insert(created);
    context_stack.push_back(created);
    *context = created;
    (void)flags;
    return emu::Success;
}

int cuCtxDestroy_v2(void* handle)
{
    if (!initialised) return emu::NotInitialized;
    std::lock_guard<std::recursive_mutex> lock(gate);
    auto* context = static_cast<Context*>(handle);
    if (handle == nullptr || contexts.count(handle) == 0 || context->primary || !context->alive)
        return emu::InvalidContext;
    context->alive = false;  // kept allocated: a stale handle must stay detectable, not reuse freed memory
    context->sticky = emu::Success;
    emu::release_all(context);
    if (current() == context) context_stack.pop_back();
    return emu::Success;
}

int cuDevicePrimaryCtxRetain(void** context, int device)
{
    if (!initialised) return emu::NotInitialized;
    if (!valid_device(device)) return emu::InvalidDevice;
    if (context == nullptr) return emu::InvalidValue;
    std::lock_guard<std::recursive_mutex> lock(gate);
    if (!use_device(device, "cuDevicePrimaryCtxRetain")) return emu::InvalidDevice;
    primary_references++;
    primary_context.alive = true;
    *context = &primary_context;
    return emu::Success;
}

int cuDevicePrimaryCtxRelease_v2(int device)
{
    if (!initialised) return emu::NotInitialized;
    if (!valid_device(device)) return emu::InvalidDevice;
    std::lock_guard<std::recursive_mutex> lock(gate);
    if (primary_references == 0) return emu::InvalidContext;
    if (--primary_references == 0)
    {
        // The last release resets the primary context, which clears a sticky error as on a GPU. It stays usable
        // as a handle (the runtime API keeps it current), so it is not marked dead.
        primary_context.sticky = emu::Success;
    }
    return emu::Success;
}

int cuCtxSetCurrent(void* handle)
{
    if (!initialised) return emu::NotInitialized;
    std::lock_guard<std::recursive_mutex> lock(gate);
    if (handle == nullptr)
    {
        if (!context_stack.empty()) context_stack.pop_back();
        return emu::Success;
    }
    auto* context = static_cast<Context*>(handle);
    if (contexts.count(handle) == 0 || !context->alive) return emu::InvalidContext;
    if (context_stack.empty()) context_stack.push_back(context);
    else context_stack.back() = context;
    return emu::Success;
}

// The device of the current context: every context of a process is on its one device.
int cuCtxGetDevice(int* device)
{
    if (!initialised) return emu::NotInitialized;
    if (device == nullptr) return emu::InvalidValue;
    std::lock_guard<std::recursive_mutex> lock(gate);
    if (current() == nullptr) return emu::InvalidContext;
    *device = process_device;
    return emu::Success;
}

int cuCtxGetCurrent(void** handle)
{
    if (!initialised) return emu::NotInitialized;
    if (handle == nullptr) return emu::InvalidValue;
    *handle = current();
    return emu::Success;
}

int cuCtxPushCurrent_v2(void* handle)
{
    if (!initialised) return emu::NotInitialized;
    std::lock_guard<std::recursive_mutex> lock(gate);
    auto* context = static_cast<Context*>(handle);
    if (handle == nullptr || contexts.count(handle) == 0 || !context->alive) return emu::InvalidContext;
    context_stack.push_back(context);
    return emu::Success;
}

int cuCtxPopCurrent_v2(void** handle)
{
    if (!initialised) return emu::NotInitialized;
    if (context_stack.empty()) return emu::InvalidContext;
    if (handle != nullptr) *handle = context_stack.back();
    context_stack.pop_back();
    return emu::Success;
}

int cuCtxSynchronize()
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    flush_all();
    emu::order::everything_completed();
    return emu::Success;
}

// ---- modules and launches ------------------------------------------------------------------------------------------
int cuModuleLoadData(void** module, const void* image)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (module == nullptr || image == nullptr) return emu::InvalidValue;
    std::string error;
    std::vector<emu::PtxEntry> entries;
    if (!emu::parse_ptx(static_cast<const char*>(image), compute_capability(), entries, error))
    {
        std::fprintf(stderr, "cuda-emulator: cuModuleLoadData: %s\n", error.c_str());
        return emu::InvalidPtx;
    }
    auto* loaded = new Module{current(), std::move(entries), true};
    modules.insert(loaded);
    *module = loaded;
    return emu::Success;
}

int cuModuleUnload(void* handle)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    auto* module = static_cast<Module*>(handle);
    if (handle == nullptr || modules.count(handle) == 0 || !module->loaded) return emu::InvalidHandle;
    module->loaded = false;  // its functions become invalid handles; the objects stay so stale use is detected
    return emu::Success;
}

int cuModuleGetFunction(void** function, void* handle, const char* name)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    auto* module = static_cast<Module*>(handle);
    if (function == nullptr || name == nullptr) return emu::InvalidValue;
    if (handle == nullptr || modules.count(handle) == 0 || !module->loaded) return emu::InvalidHandle;
    const emu::PtxEntry* entry = nullptr;
    for (const auto& e : module->entries)
        if (e.name == name) entry = &e;
    if (entry == nullptr) return emu::NotFound;
    const unsigned* sizes = nullptr;
    int count = simt_kernel_parameters(name, &sizes);
    if (count < 0)
    {
        std::fprintf(stderr, "cuda-emulator: cuModuleGetFunction: '%s' is in the PTX but not in the SIMT kernel "
                             "registry (no SW_KERNEL_REGISTER)\n", name);
        return emu::NotFound;
    }
    std::vector<unsigned> registered(sizes, sizes + count);
    if (registered != entry->parameter_sizes)
    {
        std::string ptx, cpu;
        for (unsigned s : entry->parameter_sizes) ptx += " " + std::to_string(s);
        for (unsigned s : registered) cpu += " " + std::to_string(s);
        std::fprintf(stderr, "cuda-emulator: cuModuleGetFunction: '%s' has parameter sizes [%s ] in the PTX but "
                             "[%s ] in the g++ build\n", name, ptx.c_str(), cpu.c_str());
        return emu::InvalidImage;
    }
    auto* created = new Function{module, name, std::move(registered)};
    functions.insert(created);
    *function = created;
    return emu::Success;
}

int cuFuncSetAttribute(void* handle, int attribute, int value)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    auto* function = static_cast<Function*>(handle);
    if (handle == nullptr || functions.count(handle) == 0 || !function->module->loaded) return emu::InvalidHandle;
    if (attribute != 8) // MAX_DYNAMIC_SHARED_SIZE_BYTES
    {
        std::fprintf(stderr, "cuda-emulator: cuFuncSetAttribute: attribute %d is not emulated\n", attribute);
        return emu::InvalidValue;
    }
    if (value < 0 || static_cast<unsigned>(value) > MaxSharedBytesOptIn)
    {
        std::fprintf(stderr, "cuda-emulator: cuFuncSetAttribute(%s): %d bytes of dynamic shared memory is over the "
                             "opt-in limit %u\n", function->name.c_str(), value, MaxSharedBytesOptIn);
        return emu::InvalidValue;
    }
    function->max_dynamic_shared = static_cast<unsigned>(value);
    return emu::Success;
}

int cuLaunchKernel(void* handle, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x,
                   unsigned block_y, unsigned block_z, unsigned shared_bytes, void* stream, void** parameters,
                   void** extra)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    auto* function = static_cast<Function*>(handle);
    if (handle == nullptr || functions.count(handle) == 0 || !function->module->loaded) return emu::InvalidHandle;
    REQUIRE(require_stream(stream));
    const char* name = function->name.c_str();
    unsigned long long threads = 1ull * block_x * block_y * block_z;
    if (threads == 0 || threads > MaxThreadsPerBlock || block_x > 1024 || block_y > 1024 || block_z > 64)
    {
        std::fprintf(stderr, "cuda-emulator: cuLaunchKernel(%s): block (%u,%u,%u) = %llu threads; the limit is "
                             "1024 threads (x, y ≤ 1024, z ≤ 64)\n", name, block_x, block_y, block_z, threads);
        return emu::InvalidValue;
    }
    if (grid_x == 0 || grid_y == 0 || grid_z == 0 || grid_x > 2147483647u || grid_y > 65535 || grid_z > 65535)
    {
        std::fprintf(stderr, "cuda-emulator: cuLaunchKernel(%s): grid (%u,%u,%u) is empty or over the limits "
                             "(x ≤ 2^31−1, y, z ≤ 65535)\n", name, grid_x, grid_y, grid_z);
        return emu::InvalidValue;
    }
    if (shared_bytes > function->max_dynamic_shared)
    {
        std::fprintf(stderr, "cuda-emulator: cuLaunchKernel(%s): %u bytes of dynamic shared memory; the limit "
                             "is %u (raise it with cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES))\n", name,
                     shared_bytes, function->max_dynamic_shared);
        return emu::InvalidValue;
    }
    if (extra != nullptr || (parameters == nullptr && !function->sizes.empty()))
    {
        std::fprintf(stderr, "cuda-emulator: cuLaunchKernel(%s): pass the arguments as kernelParams (extra is not "
                             "emulated)\n", name);
        return emu::InvalidValue;
    }
    if (!is_side(stream))
    {
        // An argument inside a buffer a side-stream collective may still use (stream_order.hpp).
        std::vector<std::uint64_t> pointers;
        for (std::size_t i = 0; i < function->sizes.size(); i++)
        {
            if (function->sizes[i] != 8) continue;
            std::uint64_t value;
            std::memcpy(&value, parameters[i], sizeof value);
            std::string operand = "argument " + std::to_string(i);
            REQUIRE(legacy_access(value, 1, name, operand.c_str()));
            pointers.push_back(value);
        }
        emu::order::legacy_work(pointers.data(), pointers.size());
    }
    Context* context = current();
    flush(stream);
    if (simt_launch(name, grid_x, grid_y, grid_z, block_x, block_y, block_z, shared_bytes, 0, parameters,
                    function->sizes.data(), static_cast<int>(function->sizes.size())) != 0)
    {
        std::fprintf(stderr, "cuda-emulator: kernel %s failed: %s\n", name, simt_last_error());
        return poison(context, emu::LaunchFailed);
    }
    std::string corrupted = emu::find_corrupted_guard();
    if (!corrupted.empty())
    {
        std::fprintf(stderr, "cuda-emulator: kernel %s wrote outside %s (its guard bytes changed): "
                             "CUDA_ERROR_ILLEGAL_ADDRESS, sticky for this context\n", name, corrupted.c_str());
        return poison(context, emu::IllegalAddress);
    }
    return emu::Success;
}

// ---- memory ----------------------------------------------------------------------------------------------------------
int cuMemAlloc_v2(std::uint64_t* pointer, std::size_t bytes)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    return emu::allocate(pointer, bytes, current(), "cuMemAlloc_v2");
}

// Free and total memory of the device: total is SHARDWISE_EMULATED_DEVICE_MEMORY, free what live allocations leave
// (bench samples it for the peak device memory).
int cuMemGetInfo_v2(std::size_t* free, std::size_t* total)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (free == nullptr || total == nullptr) return emu::InvalidValue;
    *total = emu::total_memory();
    *free = *total - emu::used_memory();
    return emu::Success;
}

int cuMemFree_v2(std::uint64_t pointer)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (pointer == 0) return emu::Success;
    flush_all();  // cuMemFree waits for the device, so queued copies complete before the memory goes
    emu::order::everything_completed();
    Result result = emu::release(pointer, "cuMemFree_v2");
    return result == emu::IllegalAddress ? poison(current(), result) : result;
}

int cuMemsetD8_v2(std::uint64_t pointer, unsigned char value, std::size_t count)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    REQUIRE(emu::check_range(pointer, count, "cuMemsetD8_v2", "destination"));
    REQUIRE(synchronous_legacy_access(pointer, count, 0, 0, "cuMemsetD8_v2"));
    flush(nullptr);
    std::memset(reinterpret_cast<void*>(pointer), value, count);
    return emu::Success;
}

int cuMemcpyHtoD_v2(std::uint64_t destination, const void* source, std::size_t bytes)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (source == nullptr && bytes != 0) return emu::InvalidValue;
    REQUIRE(emu::check_range(destination, bytes, "cuMemcpyHtoD_v2", "destination"));
    REQUIRE(synchronous_legacy_access(destination, bytes, 0, 0, "cuMemcpyHtoD_v2"));
    flush(nullptr);
    std::memcpy(reinterpret_cast<void*>(destination), source, bytes);
    return emu::Success;
}

int cuMemcpyDtoH_v2(void* destination, std::uint64_t source, std::size_t bytes)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (destination == nullptr && bytes != 0) return emu::InvalidValue;
    REQUIRE(emu::check_range(source, bytes, "cuMemcpyDtoH_v2", "source"));
    REQUIRE(synchronous_legacy_access(0, 0, source, bytes, "cuMemcpyDtoH_v2"));
    flush(nullptr);
    std::memcpy(destination, reinterpret_cast<const void*>(source), bytes);
    return emu::Success;
}

int cuMemcpyDtoD_v2(std::uint64_t destination, std::uint64_t source, std::size_t bytes)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    REQUIRE(emu::check_range(source, bytes, "cuMemcpyDtoD_v2", "source"));
    REQUIRE(emu::check_range(destination, bytes, "cuMemcpyDtoD_v2", "destination"));
    REQUIRE(synchronous_legacy_access(destination, bytes, source, bytes, "cuMemcpyDtoD_v2"));
    flush(nullptr);
    std::memmove(reinterpret_cast<void*>(destination), reinterpret_cast<const void*>(source), bytes);
    return emu::Success;
}

int cuMemcpyHtoDAsync_v2(std::uint64_t destination, const void* source, std::size_t bytes, void* stream)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    REQUIRE(require_stream(stream));
    if (source == nullptr && bytes != 0) return emu::InvalidValue;
    REQUIRE(emu::check_range(destination, bytes, "cuMemcpyHtoDAsync_v2", "destination"));
    REQUIRE(copy_access(stream, destination, bytes, 0, 0, "cuMemcpyHtoDAsync_v2"));
    enqueue(stream, [=] { std::memcpy(reinterpret_cast<void*>(destination), source, bytes); });
    return emu::Success;
}

int cuMemcpyDtoHAsync_v2(void* destination, std::uint64_t source, std::size_t bytes, void* stream)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    REQUIRE(require_stream(stream));
    if (destination == nullptr && bytes != 0) return emu::InvalidValue;
    REQUIRE(emu::check_range(source, bytes, "cuMemcpyDtoHAsync_v2", "source"));
    REQUIRE(copy_access(stream, 0, 0, source, bytes, "cuMemcpyDtoHAsync_v2"));
    enqueue(stream, [=] { std::memcpy(destination, reinterpret_cast<const void*>(source), bytes); });
    return emu::Success;
}

int cuMemcpyDtoDAsync_v2(std::uint64_t destination, std::uint64_t source, std::size_t bytes, void* stream)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    REQUIRE(require_stream(stream));
    REQUIRE(emu::check_range(source, bytes, "cuMemcpyDtoDAsync_v2", "source"));
    REQUIRE(emu::check_range(destination, bytes, "cuMemcpyDtoDAsync_v2", "destination"));
    REQUIRE(copy_access(stream, destination, bytes, source, bytes, "cuMemcpyDtoDAsync_v2"));
    enqueue(stream, [=] {
        std::memmove(reinterpret_cast<void*>(destination), reinterpret_cast<const void*>(source), bytes);
    });
    return emu::Success;
}

int cuMemHostAlloc(void** pointer, std::size_t bytes, unsigned flags)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (pointer == nullptr || bytes == 0 || flags > 7) return emu::InvalidValue;
    *pointer = std::malloc(bytes);
    if (*pointer == nullptr) return emu::OutOfMemory;
    host_allocations.insert(*pointer);
    return emu::Success;
}

int cuMemFreeHost(void* pointer)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    flush_all();  // cuMemFreeHost waits for the copies that use the buffer
    if (host_allocations.erase(pointer) == 0)
    {
        std::fprintf(stderr, "cuda-emulator: cuMemFreeHost(%p): not a live cuMemHostAlloc allocation\n", pointer);
        return emu::InvalidValue;
    }
    std::free(pointer);
    return emu::Success;
}

// ---- streams and events (kernels run at the call; async copies at the next synchronisation) -------------------------------------------------------------------
int cuStreamCreate(void** stream, unsigned flags)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (stream == nullptr || flags > 1) return emu::InvalidValue;
    *stream = new Stream{(flags & 1) == 0};
    streams.insert(*stream);
    return emu::Success;
}

int cuStreamSynchronize(void* stream)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    REQUIRE(require_stream(stream));
    flush(stream);
    if (is_side(stream)) emu::order::side_completed(queue_key(stream), UINT64_MAX);
    else emu::order::host_waited_for_legacy(emu::order::legacy_mark());
    return emu::Success;
}

int cuStreamDestroy_v2(void* stream)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (streams.count(stream) == 0) return emu::InvalidHandle;
    flush(stream);  // work queued on a destroyed stream still completes
    emu::order::forget(stream);
    streams.erase(stream);
    delete static_cast<Stream*>(stream);
    return emu::Success;
}

int cuEventCreate(void** event, unsigned flags)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (event == nullptr || flags > 7) return emu::InvalidValue;
    *event = new Event{(flags & 2) == 0, false, {}, nullptr, 0};
    events.insert(*event);
    return emu::Success;
}

int cuEventRecord(void* handle, void* stream)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (events.count(handle) == 0) return emu::InvalidHandle;
    REQUIRE(require_stream(stream));
    auto* event = static_cast<Event*>(handle);
    event->recorded = true;
    event->at = std::chrono::steady_clock::now();
    event->stream = stream;
    event->mark = is_side(stream) ? emu::order::side_mark(queue_key(stream)) : emu::order::legacy_mark();
    return emu::Success;
}

// The host has seen the work before `event` complete (cuEventSynchronize, or cuEventQuery's CUDA_SUCCESS).
void event_observed(Event* event)
{
    if (!event->recorded) return;
    flush(event->stream);  // completes everything queued on the event's stream (a superset of the work before it)
    if (is_side(event->stream)) emu::order::side_completed(queue_key(event->stream), event->mark);
    else emu::order::host_waited_for_legacy(event->mark);
}

int cuEventSynchronize(void* handle)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (events.count(handle) == 0) return emu::InvalidHandle;
    event_observed(static_cast<Event*>(handle));
    return emu::Success;
}

// Work runs at the call here, so an event is always complete: CUDA_SUCCESS, never CUDA_ERROR_NOT_READY.
int cuEventQuery(void* handle)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (events.count(handle) == 0) return emu::InvalidHandle;
    event_observed(static_cast<Event*>(handle));
    return emu::Success;
}

// Work queued on `stream` later waits for `event`: a side stream for the legacy stream's work before it, or the
// legacy stream for a side stream's collectives (stream_order.hpp).
int cuStreamWaitEvent(void* stream, void* handle, unsigned flags)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    REQUIRE(require_stream(stream));
    if (events.count(handle) == 0) return emu::InvalidHandle;
    if (flags != 0) return emu::InvalidValue;
    auto* event = static_cast<Event*>(handle);
    if (!event->recorded) return emu::Success;  // as CUDA: waiting for a never-recorded event waits for nothing
    flush(event->stream);
    bool waiter_side = is_side(stream), event_side = is_side(event->stream);
    if (waiter_side && !event_side) emu::order::side_waits_for_legacy(queue_key(stream), event->mark);
    if (!waiter_side && event_side) emu::order::side_completed(queue_key(event->stream), event->mark);
    return emu::Success;
}

// For the fake NCCL: a collective on `stream` over up to two ranges, checked and recorded by stream_order.hpp
// (0, or 1 after a message). Collectives on the legacy or a blocking stream are ordered with it already.
int swemu_begin_side_operation(void* stream, const char* call, std::uint64_t first, std::size_t first_bytes,
                               std::uint64_t second, std::size_t second_bytes)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    if (!is_side(stream)) return 0;
    return emu::order::begin_side_operation(queue_key(stream), call, first, first_bytes, second, second_bytes) ? 0 : 1;
}

// For the fake cuBLAS and cuBLASLt: their work on `stream` is counted (legacy-stream work orders later collectives)
// and an operand a side-stream collective may still use is refused (1, after a message).
void swemu_note_work(void* stream)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    if (!is_side(stream)) emu::order::legacy_work({});
}

int swemu_check_not_in_flight(std::uint64_t pointer, std::size_t bytes, const char* call, const char* operand)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    if (legacy_access(pointer, bytes, call, operand) != emu::Success) return 1;
    emu::order::legacy_operand(pointer);
    return 0;
}

// For the fake cuBLAS, cuBLASLt and NCCL: their work on `stream` runs at the call, so the copies queued on it
// before must complete first.
void swemu_flush_stream(void* stream)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    flush(stream);
}

int cuEventElapsedTime(float* milliseconds, void* start, void* end)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (milliseconds == nullptr) return emu::InvalidValue;
    if (events.count(start) == 0 || events.count(end) == 0) return emu::InvalidHandle;
    auto* from = static_cast<Event*>(start);
    auto* to = static_cast<Event*>(end);
    if (!from->timing || !to->timing || !from->recorded || !to->recorded) return emu::InvalidHandle;
    *milliseconds = std::chrono::duration<float, std::milli>(to->at - from->at).count();
    return emu::Success;
}

int cuEventDestroy_v2(void* event)
{
    std::lock_guard<std::recursive_mutex> lock(gate);
    REQUIRE(require_context());
    if (events.erase(event) == 0) return emu::InvalidHandle;
    delete static_cast<Event*>(event);
    return emu::Success;
}
}
