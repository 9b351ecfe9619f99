// simt.cpp — the scheduler behind simt.hpp, and the C API the C# tests call (simt_launch and friends).
//
// A launch runs its blocks one after another on the calling OS thread. Inside a block every CUDA thread is a fiber
// (fiber.hpp: a stack of its own and a switch that never enters the kernel), resumed until it finishes or parks at a
// sync point:
//   - a warp operation (__syncwarp, shuffles, ballot) is released once every lane named in its mask has arrived at
//     one with the same mask; the scheduler then computes every lane's result at once (a shuffle is one step);
//   - __syncthreads is released once every thread of the block that has not exited waits there.
// Scheduling is round-robin by warp, in priority order: forward runs warp 0 first (its lanes in order), reversed the
// last warp first (lanes in reverse). A warp runs as far as it can before the next one starts, so between two
// __syncthreads one warp is always ahead of the others — which exposes both a read that needed a barrier before it
// (the writer has not run yet) and a write that needed a barrier before it (the reader already ran or not yet).
// If neither is possible the block is deadlocked (a barrier some threads never reach), and the launch fails with a
// message, as it does for a shuffle that reads a lane outside its mask. Launches are serialised by a mutex, since
// __shared__ variables are process-wide statics and the index variables are globals.
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "fiber.hpp"
#include "simt.hpp"

dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace simt
{
namespace
{
enum class State { Runnable, AtBarrier, AtWarpOp, Done };

struct Fiber
{
    FiberContext context;
    dim3 index;
    State state;
    // The pending warp operation and, after its release, its result.
    WarpOp op;
    unsigned mask;
    std::uint64_t value;
    int argument;
    int width;
    std::uint64_t result;
};

struct Kernel
{
    void* entry;
    Thunk thunk;
    std::vector<unsigned> sizes;
};

struct Launch
{
    const Kernel* kernel;
    void** arguments;
    bool reversed;
    std::vector<Fiber> fibers;
    std::vector<unsigned char> shared;
    FiberContext scheduler;
    Fiber* current = nullptr;
    std::string error;
};

constexpr std::size_t StackBytes = 128 * 1024, GuardBytes = 4096;
constexpr unsigned WarpSize = 32, MaxThreadsPerBlock = 1024;

std::map<std::string, Kernel>& registry()
{
    static std::map<std::string, Kernel> kernels;
    return kernels;
}

std::mutex launch_mutex;
Launch* active = nullptr;
std::vector<char*> stacks;  // reused across launches; each has a PROT_NONE guard page below it
thread_local std::string last_error;

char* stack(std::size_t i)
{
    while (stacks.size() <= i)
    {
        void* memory = mmap(nullptr, StackBytes + GuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) return nullptr;
        mprotect(memory, GuardBytes, PROT_NONE);
        stacks.push_back(static_cast<char*>(memory) + GuardBytes);
    }
    return stacks[i];
}

std::string describe(const Fiber& f)
{
    char text[96];
    std::snprintf(text, sizeof text, "thread (%u,%u,%u) of block (%u,%u,%u)", f.index.x, f.index.y, f.index.z,
                  blockIdx.x, blockIdx.y, blockIdx.z);
    return text;
}

void fiber_main()
{
    Launch& launch = *active;
    launch.kernel->thunk(launch.kernel->entry, launch.arguments);
    launch.current->state = State::Done;
    fiber_jump(launch.current->context, launch.scheduler);  // never resumed
}

Fiber& current_fiber(const char* what)
{
    if (active == nullptr || active->current == nullptr)
    {
        std::fprintf(stderr, "simt: %s called outside a kernel launch\n", what);
        std::abort();
    }
    return *active->current;
}

void park(Fiber& f, State state)
{
    f.state = state;
    fiber_jump(f.context, active->scheduler);
}

// The lane a shuffle reads, or −1 when it reads outside the warp.
int source_lane(const Fiber& f, unsigned lane)
{
    int width = f.width, base = static_cast<int>(lane) & ~(width - 1), self = static_cast<int>(lane);
    switch (f.op)
    {
    case WarpOp::ShuffleIndex: return base + (f.argument & (width - 1));
    case WarpOp::ShuffleXor: { int s = self ^ f.argument; return s >= base + width ? self : s; }
    case WarpOp::ShuffleDown: { int s = self + f.argument; return s >= base + width ? self : s; }
    case WarpOp::ShuffleUp: { int s = self - f.argument; return s < base ? self : s; }
    default: return self;
    }
}

// Releases every warp-operation group of the warp starting at thread `first` whose lanes have all arrived.
// Returns whether any was released.
bool release_warp(Launch& launch, unsigned first)
{
    bool released = false;
    unsigned threads = static_cast<unsigned>(launch.fibers.size());
    unsigned lanes = std::min(WarpSize, threads - first);
    Fiber* warp = &launch.fibers[first];
    for (unsigned a = 0; a < lanes; a++)
    {
        if (warp[a].state != State::AtWarpOp) continue;
        unsigned mask = warp[a].mask;
        if (!(mask >> a & 1u))
        {
            launch.error = describe(warp[a]) + ": a warp operation whose mask leaves out the calling lane";
            return false;
        }
        bool ready = true;
        for (unsigned l = 0; l < lanes && ready; l++)
        {
            if (!(mask >> l & 1u)) continue;
            if (warp[l].state == State::Done)
            {
                launch.error = describe(warp[a]) + ": a warp operation whose mask names an exited lane";
                return false;
            }
            ready = warp[l].state == State::AtWarpOp && warp[l].mask == mask;
        }
        if (!ready) continue;

        std::uint64_t ballot = 0;
        for (unsigned l = 0; l < lanes; l++)
        {
            if (!(mask >> l & 1u)) continue;
            if (warp[l].op != warp[a].op)
            {
                launch.error = describe(warp[l]) + ": lanes of one warp meet at different warp operations";
                return false;
            }
            if (warp[l].value != 0) ballot |= 1ull << l;
        }
        for (unsigned l = 0; l < lanes; l++)
        {
            if (!(mask >> l & 1u)) continue;
            Fiber& f = warp[l];
            if (f.op == WarpOp::Ballot) f.result = ballot;
            else if (f.op != WarpOp::Sync)
            {
                int source = source_lane(f, l);
                if (source < 0 || source >= static_cast<int>(lanes) || !(mask >> source & 1u))
                {
                    launch.error = describe(f) + ": a shuffle reads lane " + std::to_string(source) +
                                   ", which is not in its mask or not in the block";
                    return false;
                }
                f.result = warp[source].value;
            }
            f.state = State::Runnable;
        }
        released = true;
    }
    return released;
}

bool run_block(Launch& launch, unsigned threads)
{
    launch.fibers.resize(threads);
    for (unsigned i = 0; i < threads; i++)
    {
        Fiber& f = launch.fibers[i];
        char* memory = stack(i);
        if (memory == nullptr)
        {
            launch.error = "out of memory for fiber stacks";
            return false;
        }
        fiber_start(f.context, memory, StackBytes, fiber_main);
        f.index = dim3(i % blockDim.x, i / blockDim.x % blockDim.y, i / (blockDim.x * blockDim.y));
        f.state = State::Runnable;
    }
    // Dynamic shared memory starts as NaN bytes, so reading what no thread wrote shows in the results.
    std::fill(launch.shared.begin(), launch.shared.end(), 0xff);

    unsigned warps = (threads + WarpSize - 1) / WarpSize;
    for (;;)
    {
        // Warps in priority order (first to last, or last to first); each runs as far as it can, its warp operations
        // released as soon as its lanes arrive, before the next warp starts. So one warp runs ahead of the others
        // up to the next __syncthreads: a read that a missing barrier leaves unordered goes wrong in one order.
        for (unsigned w = 0; w < warps; w++)
        {
            unsigned first = (launch.reversed ? warps - 1 - w : w) * WarpSize;
            unsigned lanes = std::min(WarpSize, threads - first);
            do
            {
                for (unsigned k = 0; k < lanes; k++)
                {
                    Fiber& f = launch.fibers[first + (launch.reversed ? lanes - 1 - k : k)];
                    if (f.state != State::Runnable) continue;
                    launch.current = &f;
                    threadIdx = f.index;
                    fiber_jump(launch.scheduler, f.context);
                    launch.current = nullptr;
                    if (!launch.error.empty()) return false;
                }
            } while (release_warp(launch, first));
            if (!launch.error.empty()) return false;
        }

        bool any_live = false, all_at_barrier = true;
        for (const Fiber& f : launch.fibers)
        {
            if (f.state == State::Done) continue;
            any_live = true;
            all_at_barrier &= f.state == State::AtBarrier;
        }
        if (!any_live) return true;
        if (!all_at_barrier)
        {
            for (const Fiber& f : launch.fibers)
            {
                if (f.state == State::AtWarpOp || f.state == State::AtBarrier)
                {
                    launch.error = "deadlock: " + describe(f) + " waits at " +
                                   (f.state == State::AtBarrier ? "__syncthreads" : "a warp operation") +
                                   " that the rest of its block or warp never reaches";
                    break;
                }
            }
            return false;
        }
        for (Fiber& f : launch.fibers) f.state = State::Runnable;
    }
}
} // namespace

int register_kernel(const char* name, void* kernel, Thunk thunk, const unsigned* sizes, int count)
{
    registry()[name] = Kernel{kernel, thunk, std::vector<unsigned>(sizes, sizes + count)};
    return 1;
}

void syncthreads() { park(current_fiber("__syncthreads"), State::AtBarrier); }

std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int argument, int width)
{
    Fiber& f = current_fiber("a warp operation");
    if (width <= 0 || width > static_cast<int>(WarpSize) || (width & (width - 1)) != 0)
        fail("a shuffle width that is not a power of two up to 32");
    f.op = op;
    f.mask = mask;
    f.value = value;
    f.argument = argument;
    f.width = width;
    park(f, State::AtWarpOp);
    return f.result;
}

void* dynamic_shared_memory()
{
    current_fiber("dynamic shared memory");
    return active->shared.data();
}

void fail(const char* message)
{
    Fiber& f = current_fiber("simt::fail");
    active->error = describe(f) + ": " + message;
    park(f, State::Done);
    std::abort();  // unreachable: the scheduler never resumes a failed launch
}
} // namespace simt

extern "C"
{
int simt_kernel_count() { return static_cast<int>(simt::registry().size()); }

const char* simt_kernel_name(int i)
{
    if (i < 0 || i >= simt_kernel_count()) return nullptr;
    auto it = simt::registry().begin();
    std::advance(it, i);
    return it->first.c_str();
}

const char* simt_last_error() { return simt::last_error.c_str(); }

// The parameter sizes of kernel `name` (in *sizes) and their count, or −1 when no kernel has that name; the
// emulated driver (tests/cuda-emulator) checks them against the PTX's .param list.
int simt_kernel_parameters(const char* name, const unsigned** sizes)
{
    auto found = simt::registry().find(name);
    if (found == simt::registry().end()) return -1;
    *sizes = found->second.sizes.data();
    return static_cast<int>(found->second.sizes.size());
}

// Runs kernel `name` over grid × block. arguments[i] points at the i-th argument's value (as for cuLaunchKernel);
// sizes[i] is its size in bytes, checked against the kernel's signature. reversed ≠ 0 runs the blocks, and the
// threads inside each block, in reverse order. Returns 0, or −1 with the reason in simt_last_error().
int simt_launch(const char* name, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x,
                unsigned block_y, unsigned block_z, unsigned long long shared_bytes, int reversed,
                void** arguments, const unsigned* sizes, int count)
{
    using namespace simt;
    auto found = registry().find(name);
    if (found == registry().end())
    {
        last_error = std::string("no kernel named ") + name;
        return -1;
    }
    const Kernel& kernel = found->second;
    if (count != static_cast<int>(kernel.sizes.size()) || !std::equal(kernel.sizes.begin(), kernel.sizes.end(), sizes))
    {
        last_error = std::string(name) + ": the arguments do not match the kernel's parameters (count or sizes)";
        return -1;
    }
    unsigned long long threads = 1ull * block_x * block_y * block_z;
    if (threads == 0 || threads > MaxThreadsPerBlock || grid_x == 0 || grid_y == 0 || grid_z == 0)
    {
        last_error = std::string(name) + ": empty grid or block, or more than 1024 threads per block";
        return -1;
    }

    std::lock_guard<std::mutex> lock(launch_mutex);
    Launch launch;
    launch.kernel = &kernel;
    launch.arguments = arguments;
    launch.reversed = reversed != 0;
    launch.shared.resize(shared_bytes);
    active = &launch;
    gridDim = dim3(grid_x, grid_y, grid_z);
    blockDim = dim3(block_x, block_y, block_z);
    unsigned long long blocks = 1ull * grid_x * grid_y * grid_z;
    bool ok = true;
    for (unsigned long long k = 0; k < blocks && ok; k++)
    {
        unsigned long long b = launch.reversed ? blocks - 1 - k : k;
        blockIdx = dim3(static_cast<unsigned>(b % grid_x), static_cast<unsigned>(b / grid_x % grid_y),
                        static_cast<unsigned>(b / (1ull * grid_x * grid_y)));
        ok = run_block(launch, static_cast<unsigned>(threads));
    }
    active = nullptr;
    last_error = ok ? std::string() : std::string(name) + ": " + launch.error;
    return ok ? 0 : -1;
}
}
