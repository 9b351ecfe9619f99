// nccl.cpp — libnccl.so.2 for the emulated device: a single-rank communicator. Every collective over one rank is a
// copy from the send buffer to the receive buffer (or nothing when they are the same), checked to lie inside live
// device allocations. A communicator of more than one rank is refused with a message: the emulator has one device.
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>

#include "gemm.hpp"

namespace
{
enum Result : int { Success = 0, UnhandledCudaError = 1, SystemError = 2, InternalError = 3, InvalidArgument = 4,
                    InvalidUsage = 5 };

std::mutex gate;
std::set<void*> communicators;
int group_depth = 0;

bool valid(void* comm)
{
    std::lock_guard<std::mutex> lock(gate);
    return communicators.count(comm) != 0;
}

std::size_t type_bytes(int type)
{
    switch (type)
    {
    case 0: case 1: return 1;          // int8, uint8
    case 2: case 3: case 7: return 4;  // int32, uint32, float32
    case 4: case 5: case 8: return 8;  // int64, uint64, float64
    case 6: case 9: return 2;          // float16, bfloat16
    default: return 0;
    }
}

int copy(const char* call, std::uint64_t send, std::uint64_t receive, std::size_t count, int type, void* comm,
         void* stream)
{
    if (!valid(comm)) return InvalidArgument;
    emu::flush_stream(stream);
    std::size_t bytes = count * type_bytes(type);
    if (type_bytes(type) == 0) return InvalidArgument;
    if (count == 0) return Success;
    if (emu::check_device_range(send, bytes, call, "send buffer") != 0 ||
        emu::check_device_range(receive, bytes, call, "receive buffer") != 0)
        return InvalidArgument;
    if (send != receive) std::memmove(reinterpret_cast<void*>(receive), reinterpret_cast<const void*>(send), bytes);
    return Success;
}
} // namespace

extern "C"
{
struct UniqueId
{
    char internal[128];
};

const char* ncclGetErrorString(int result)
{
    switch (result)
    {
    case 0: return "no error";
    case 1: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case 2: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case 3: return "internal error - please report this issue to the NCCL developers";
    case 4: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case 5: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    default: return "unknown result code";
    }
}

int ncclGetVersion(int* version)
{
    if (version == nullptr) return InvalidArgument;
    *version = 22304;  // reported as NCCL 2.23.4
    return Success;
}

int ncclGetUniqueId(UniqueId* id)
{
    if (id == nullptr) return InvalidArgument;
    std::memset(id, 0, sizeof *id);
    std::snprintf(id->internal, sizeof id->internal, "shardwise-emulated-nccl");
    return Success;
}

int ncclCommInitRank(void** comm, int ranks, UniqueId id, int rank)
{
    if (comm == nullptr) return InvalidArgument;
    if (std::strcmp(id.internal, "shardwise-emulated-nccl") != 0)
    {
        std::fprintf(stderr, "nccl-emulator: ncclCommInitRank: the unique id did not come from ncclGetUniqueId\n");
        return InvalidArgument;
    }
    if (ranks != 1 || rank != 0)
    {
        std::fprintf(stderr, "nccl-emulator: ncclCommInitRank(nranks %d, rank %d): the emulated device supports "
                             "one rank only (nranks 1, rank 0)\n", ranks, rank);
        return InvalidUsage;
    }
    if (!emu::driver_has_context())
    {
        std::fprintf(stderr, "nccl-emulator: ncclCommInitRank: no current CUDA context on this thread\n");
        return UnhandledCudaError;
    }
    std::lock_guard<std::mutex> lock(gate);
    *comm = new char(0);
    communicators.insert(*comm);
    return Success;
}

int ncclCommDestroy(void* comm)
{
    std::lock_guard<std::mutex> lock(gate);
    if (communicators.erase(comm) == 0) return InvalidArgument;
    delete static_cast<char*>(comm);
    return Success;
}

int ncclCommAbort(void* comm) { return ncclCommDestroy(comm); }

int ncclCommGetAsyncError(void* comm, int* result)
{
    if (!valid(comm) || result == nullptr) return InvalidArgument;
    *result = Success;
    return Success;
}

int ncclAllReduce(std::uint64_t send, std::uint64_t receive, std::size_t count, int type, int op, void* comm,
                  void* stream)
{
    if (op < 0 || op > 4) return InvalidArgument;  // sum, prod, max, min, avg: all the identity on one rank
    return copy("ncclAllReduce", send, receive, count, type, comm, stream);
}

int ncclReduceScatter(std::uint64_t send, std::uint64_t receive, std::size_t count, int type, int op, void* comm,
                      void* stream)
{
    if (op < 0 || op > 4) return InvalidArgument;
    return copy("ncclReduceScatter", send, receive, count, type, comm, stream);
}

int ncclAllGather(std::uint64_t send, std::uint64_t receive, std::size_t count, int type, void* comm, void* stream)
{
    return copy("ncclAllGather", send, receive, count, type, comm, stream);
}

int ncclBroadcast(std::uint64_t send, std::uint64_t receive, std::size_t count, int type, int root, void* comm,
                  void* stream)
{
    if (root != 0) return InvalidArgument;
    return copy("ncclBroadcast", send, receive, count, type, comm, stream);
}

int ncclSend(std::uint64_t, std::size_t, int, int peer, void*, void*)
{
    std::fprintf(stderr, "nccl-emulator: ncclSend to peer %d: a single-rank communicator has no peer\n", peer);
    return InvalidArgument;
}

int ncclRecv(std::uint64_t, std::size_t, int, int peer, void*, void*)
{
    std::fprintf(stderr, "nccl-emulator: ncclRecv from peer %d: a single-rank communicator has no peer\n", peer);
    return InvalidArgument;
}

int ncclGroupStart()
{
    std::lock_guard<std::mutex> lock(gate);
    group_depth++;
    return Success;
}

int ncclGroupEnd()
{
    std::lock_guard<std::mutex> lock(gate);
    if (group_depth == 0) return InvalidUsage;
    group_depth--;
    return Success;
}
}
