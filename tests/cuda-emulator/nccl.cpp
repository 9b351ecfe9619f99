// nccl.cpp — libnccl.so.2 for the emulated device. One rank: every collective is a copy from the send buffer to the
// receive buffer. Several ranks (each an mpirun process with its own emulated device, SHARDWISE_EMULATED_DEVICE_COUNT):
// the ranks meet in a directory named after the unique id (rendezvous.hpp). Each collective has a sequence number per
// communicator, as NCCL requires every rank to issue the same collectives in the same order; a rank publishes its
// send buffer as a file, waits for every rank's, and computes its result from them in rank order, so every rank gets
// the same bits. ncclSend/ncclRecv are files per (sender, receiver, message number). Work runs at the call, after the
// stream's queued copies (as the fake cuBLAS does); a rank that never arrives fails the call after
// SHARDWISE_COMM_TIMEOUT_SECONDS (default 300) with ncclSystemError and a line naming it. As NCCL does, two ranks of
// one communicator on the same device are refused (NCCL's "Duplicate GPU detected").
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

#include "gemm.hpp"
#include "rendezvous.hpp"

namespace
{
enum Result : int { Success = 0, UnhandledCudaError = 1, SystemError = 2, InternalError = 3, InvalidArgument = 4,
                    InvalidUsage = 5 };
enum Operation : int { Sum = 0, Product = 1, Max = 2, Min = 3, Average = 4 };

const char IdPrefix[] = "shardwise-emulated-nccl:";

struct Communicator
{
    int ranks = 1;
    int rank = 0;
    std::string directory;                 // empty for one rank
    std::uint64_t collectives = 0;         // collectives issued so far (the next one's sequence number)
    std::map<int, std::uint64_t> sent;     // messages sent to each peer
    std::map<int, std::uint64_t> received; // messages received from each peer
};

std::mutex gate;
std::set<Communicator*> communicators;
int group_depth = 0;

Communicator* find(void* comm)
{
    std::lock_guard<std::mutex> lock(gate);
    auto* c = static_cast<Communicator*>(comm);
    return communicators.count(c) != 0 ? c : nullptr;
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

template <typename T> T combine(T a, T b, int op)
{
    switch (op)
    {
    case Product: return a * b;
    case Max: return a > b ? a : b;
    case Min: return a < b ? a : b;
    default: return a + b;  // sum, and average before its division
    }
}

// out[i] = op over ranks (in rank order) of inputs[rank][offset + i], for `count` elements.
template <typename T>
void reduce(const std::vector<std::string>& inputs, std::size_t offset, std::size_t count, int op, void* out)
{
    auto* result = static_cast<T*>(out);
    for (std::size_t i = 0; i < count; i++)
    {
        T value;
        std::memcpy(&value, inputs[0].data() + (offset + i) * sizeof(T), sizeof(T));
        for (std::size_t r = 1; r < inputs.size(); r++)
        {
            T next;
            std::memcpy(&next, inputs[r].data() + (offset + i) * sizeof(T), sizeof(T));
            value = combine(value, next, op);
        }
        if (op == Average) value = static_cast<T>(value / static_cast<T>(inputs.size()));
        std::memcpy(&result[i], &value, sizeof(T));
    }
}

// As reduce, for ncclFloat16 (6) and ncclBfloat16 (9): each element is combined over the ranks in fp32 (rank order)
// and rounded to the type once. Real NCCL rounds at each step of its ring, so its sums of three or more ranks may
// differ in the last bit; callers compare 16-bit results with a tolerance.
void reduce16(int nccl_type, const std::vector<std::string>& inputs, std::size_t offset, std::size_t count, int op,
              void* out)
{
    int type = nccl_type == 6 ? emu::Float16 : emu::BFloat16;
    auto* result = static_cast<std::uint16_t*>(out);
    for (std::size_t i = 0; i < count; i++)
    {
        float value = 0;
        for (std::size_t r = 0; r < inputs.size(); r++)
        {
            std::uint16_t bits;
            std::memcpy(&bits, inputs[r].data() + (offset + i) * 2, 2);
            float next = emu::widen16(type, bits);
            value = r == 0 ? next : combine(value, next, op);
        }
        if (op == Average) value /= static_cast<float>(inputs.size());
        result[i] = emu::narrow16(type, value);
    }
}

bool reduce_typed(int type, const std::vector<std::string>& inputs, std::size_t offset, std::size_t count, int op,
                  void* out)
{
    switch (type)
    {
    case 6: case 9: reduce16(type, inputs, offset, count, op, out); return true;
    case 2: reduce<std::int32_t>(inputs, offset, count, op, out); return true;
    case 3: reduce<std::uint32_t>(inputs, offset, count, op, out); return true;
    case 4: reduce<std::int64_t>(inputs, offset, count, op, out); return true;
    case 5: reduce<std::uint64_t>(inputs, offset, count, op, out); return true;
    case 7: reduce<float>(inputs, offset, count, op, out); return true;
    case 8: reduce<double>(inputs, offset, count, op, out); return true;
    default: return false;
    }
}

// The current context's device, from the fake driver (cuCtxGetDevice); -1 without one.
int current_device()
{
    int device = -1;
    return emu::driver_current_device(&device) ? device : -1;
}

// A collective's description, which every rank's must equal: a rank that issues another collective (or another
// count, type, operation or root) at the same sequence number is a bug NCCL would hang or corrupt memory on.
std::string describe(const char* call, std::size_t count, int type, int op, int root)
{
    char text[160];
    std::snprintf(text, sizeof text, "%s(count %zu, type %d, op %d, root %d)", call, count, type, op, root);
    return text;
}

// Publishes this rank's part of collective #sequence and returns every rank's (rank order), or fails naming the
// rank that did not arrive or that disagrees.
int exchange(Communicator& c, const std::string& what, const void* data, std::size_t bytes,
             std::vector<std::string>& parts)
{
    std::uint64_t sequence = c.collectives++;
    std::string header = what + "\n";
    std::string payload = header;
    payload.append(static_cast<const char*>(data), bytes);
    std::string prefix = "c" + std::to_string(sequence) + ".";
    if (!emu::publish(c.directory, prefix + std::to_string(c.rank), payload)) return SystemError;
    parts.assign(static_cast<std::size_t>(c.ranks), std::string());
    for (int r = 0; r < c.ranks; r++)
    {
        std::string file;
        if (!emu::await(c.directory, prefix + std::to_string(r), file))
        {
            std::fprintf(stderr, "nccl-emulator: rank %d: %s (collective #%llu): rank %d did not join within %d s\n",
                         c.rank, what.c_str(), static_cast<unsigned long long>(sequence), r, emu::timeout_seconds());
            return SystemError;
        }
        if (file.compare(0, header.size(), header) != 0)
        {
            std::fprintf(stderr, "nccl-emulator: rank %d called %s as collective #%llu, but rank %d called %s\n",
                         c.rank, what.c_str(), static_cast<unsigned long long>(sequence), r,
                         file.substr(0, file.find('\n')).c_str());
            return InvalidUsage;
        }
        parts[static_cast<std::size_t>(r)] = file.substr(header.size());
    }
    // Every rank has published #sequence, so all have finished reading #sequence − 1: this rank's file of it can go.
    if (sequence > 0) emu::remove(c.directory, "c" + std::to_string(sequence - 1) + "." + std::to_string(c.rank));
    return Success;
}

struct Buffers
{
    std::uint64_t send, receive;
    std::size_t send_bytes, receive_bytes;
};

int prepare(const char* call, Communicator*& c, void* comm, void* stream, int type, Buffers buffers)
{
    c = find(comm);
    if (c == nullptr) return InvalidArgument;
    if (type_bytes(type) == 0) return InvalidArgument;
    emu::flush_stream(stream);
    if ((buffers.send_bytes > 0 && emu::check_device_range(buffers.send, buffers.send_bytes, call, "send buffer") != 0) ||
        (buffers.receive_bytes > 0 &&
         emu::check_device_range(buffers.receive, buffers.receive_bytes, call, "receive buffer") != 0))
        return InvalidArgument;
    if (emu::begin_side_operation(stream, call, buffers.send, buffers.send_bytes, buffers.receive,
                                  buffers.receive_bytes) != 0)
        return InvalidUsage;
    return Success;
}

void* at(std::uint64_t address) { return reinterpret_cast<void*>(address); }

std::string random_token()
{
    std::random_device source;
    char text[64];
    std::snprintf(text, sizeof text, "%d-%08x%08x", static_cast<int>(getpid()), source(), source());
    return text;
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
    std::snprintf(id->internal, sizeof id->internal, "%s%s", IdPrefix, random_token().c_str());
    return Success;
}

int ncclCommInitRank(void** comm, int ranks, UniqueId id, int rank)
{
    if (comm == nullptr) return InvalidArgument;
    id.internal[sizeof id.internal - 1] = '\0';
    if (std::strncmp(id.internal, IdPrefix, sizeof IdPrefix - 1) != 0)
    {
        std::fprintf(stderr, "nccl-emulator: ncclCommInitRank: the unique id did not come from ncclGetUniqueId\n");
        return InvalidArgument;
    }
    if (ranks < 1 || rank < 0 || rank >= ranks)
    {
        std::fprintf(stderr, "nccl-emulator: ncclCommInitRank(nranks %d, rank %d): rank out of range\n", ranks, rank);
        return InvalidArgument;
    }
    int device = current_device();
    if (device < 0)
    {
        std::fprintf(stderr, "nccl-emulator: ncclCommInitRank: no current CUDA context on this thread\n");
        return UnhandledCudaError;
    }
    auto created = new Communicator();
    created->ranks = ranks;
    created->rank = rank;
    if (ranks > 1)
    {
        created->directory = emu::rendezvous_directory(id.internal + sizeof IdPrefix - 1);
        // Every rank says which device it is on; NCCL refuses two ranks of a communicator on one GPU.
        std::vector<std::string> devices;
        int joined = exchange(*created, "ncclCommInitRank(nranks " + std::to_string(ranks) + ")", &device,
                              sizeof device, devices);
        if (joined != Success)
        {
            emu::discard(created->directory);
            delete created;
            return joined;
        }
        for (int r = 0; r < ranks; r++)
        {
            int other;
            std::memcpy(&other, devices[static_cast<std::size_t>(r)].data(), sizeof other);
            if (r != rank && other == device)
            {
                std::fprintf(stderr, "nccl-emulator: Duplicate GPU detected : rank %d and rank %d both on CUDA device "
                                     "%d (each rank needs its own device: SHARDWISE_EMULATED_DEVICE_COUNT)\n",
                             rank, r, device);
                emu::leave(created->directory, rank, ranks);
                delete created;
                return InvalidUsage;
            }
        }
    }
    // As NCCL does with NCCL_DEBUG=INFO, one line per rank that joined (the tests read it).
    const char* debug = std::getenv("NCCL_DEBUG");
    if (debug != nullptr && std::strcmp(debug, "INFO") == 0)
        std::fprintf(stderr, "NCCL INFO ncclCommInitRank comm %p rank %d nranks %d cudaDev %d - Init COMPLETE "
                             "(emulated)\n", static_cast<void*>(created), rank, ranks, device);
    std::lock_guard<std::mutex> lock(gate);
    communicators.insert(created);
    *comm = created;
    return Success;
}

int ncclCommDestroy(void* comm)
{
    Communicator* c;
    {
        std::lock_guard<std::mutex> lock(gate);
        c = static_cast<Communicator*>(comm);
        if (communicators.erase(c) == 0) return InvalidArgument;
    }
    if (c->ranks > 1) emu::leave(c->directory, c->rank, c->ranks);
    delete c;
    return Success;
}

int ncclCommAbort(void* comm) { return ncclCommDestroy(comm); }

int ncclCommGetAsyncError(void* comm, int* result)
{
    if (find(comm) == nullptr || result == nullptr) return InvalidArgument;
    *result = Success;
    return Success;
}

int ncclAllReduce(std::uint64_t send, std::uint64_t receive, std::size_t count, int type, int op, void* comm,
                  void* stream)
{
    if (op < Sum || op > Average) return InvalidArgument;
    std::size_t bytes = count * type_bytes(type);
    Communicator* c;
    if (int failed = prepare("ncclAllReduce", c, comm, stream, type, {send, receive, bytes, bytes})) return failed;
    if (c->ranks == 1 || count == 0)
    {
        if (send != receive && bytes > 0) std::memmove(at(receive), at(send), bytes);
        return Success;
    }
    std::vector<std::string> parts;
    if (int failed = exchange(*c, describe("ncclAllReduce", count, type, op, -1), at(send), bytes, parts)) return failed;
    if (!reduce_typed(type, parts, 0, count, op, at(receive)))
    {
        std::fprintf(stderr, "nccl-emulator: ncclAllReduce: data type %d is not emulated over several ranks\n", type);
        return InvalidArgument;
    }
    return Success;
}

int ncclReduceScatter(std::uint64_t send, std::uint64_t receive, std::size_t count, int type, int op, void* comm,
                      void* stream)
{
    if (op < Sum || op > Average) return InvalidArgument;
    Communicator* c = find(comm);
    if (c == nullptr) return InvalidArgument;
    std::size_t bytes = count * type_bytes(type);
    if (int failed = prepare("ncclReduceScatter", c, comm, stream, type,
                             {send, receive, bytes * static_cast<std::size_t>(c->ranks), bytes}))
        return failed;
    if (c->ranks == 1 || count == 0)
    {
        if (send != receive && bytes > 0) std::memmove(at(receive), at(send), bytes);
        return Success;
    }
    std::vector<std::string> parts;
    if (int failed = exchange(*c, describe("ncclReduceScatter", count, type, op, -1), at(send),
                              bytes * static_cast<std::size_t>(c->ranks), parts))
        return failed;
    if (!reduce_typed(type, parts, count * static_cast<std::size_t>(c->rank), count, op, at(receive)))
    {
        std::fprintf(stderr, "nccl-emulator: ncclReduceScatter: data type %d is not emulated over several ranks\n",
                     type);
        return InvalidArgument;
    }
    return Success;
}

int ncclAllGather(std::uint64_t send, std::uint64_t receive, std::size_t count, int type, void* comm, void* stream)
{
    Communicator* c = find(comm);
    if (c == nullptr) return InvalidArgument;
    std::size_t bytes = count * type_bytes(type);
    if (int failed = prepare("ncclAllGather", c, comm, stream, type,
                             {send, receive, bytes, bytes * static_cast<std::size_t>(c->ranks)}))
        return failed;
    if (c->ranks == 1 || count == 0)
    {
        if (send != receive && bytes > 0) std::memmove(at(receive), at(send), bytes);
        return Success;
    }
    std::vector<std::string> parts;
    if (int failed = exchange(*c, describe("ncclAllGather", count, type, -1, -1), at(send), bytes, parts))
        return failed;
    for (int r = 0; r < c->ranks; r++)
        std::memcpy(static_cast<char*>(at(receive)) + bytes * static_cast<std::size_t>(r),
                    parts[static_cast<std::size_t>(r)].data(), bytes);
    return Success;
}

int ncclBroadcast(std::uint64_t send, std::uint64_t receive, std::size_t count, int type, int root, void* comm,
                  void* stream)
{
    Communicator* c = find(comm);
    if (c == nullptr) return InvalidArgument;
    if (root < 0 || root >= c->ranks) return InvalidArgument;
    std::size_t bytes = count * type_bytes(type);
    // Only the root's send buffer is read.
    if (int failed = prepare("ncclBroadcast", c, comm, stream, type, {send, receive, c->rank == root ? bytes : 0, bytes}))
        return failed;
    if (c->ranks == 1 || count == 0)
    {
        if (send != receive && bytes > 0) std::memmove(at(receive), at(send), bytes);
        return Success;
    }
    std::vector<std::string> parts;
    if (int failed = exchange(*c, describe("ncclBroadcast", count, type, -1, root), at(send),
                              c->rank == root ? bytes : 0, parts))
        return failed;
    std::memcpy(at(receive), parts[static_cast<std::size_t>(root)].data(), bytes);
    return Success;
}

int ncclSend(std::uint64_t send, std::size_t count, int type, int peer, void* comm, void* stream)
{
    Communicator* c = find(comm);
    if (c == nullptr) return InvalidArgument;
    if (c->ranks == 1 || peer < 0 || peer >= c->ranks || peer == c->rank)
    {
        std::fprintf(stderr, "nccl-emulator: ncclSend to peer %d: no such peer in a communicator of %d rank(s)\n",
                     peer, c->ranks);
        return InvalidArgument;
    }
    std::size_t bytes = count * type_bytes(type);
    if (int failed = prepare("ncclSend", c, comm, stream, type, {send, 0, bytes, 0})) return failed;
    // Sent eagerly: the message is a file until its receiver takes it.
    std::string name = "p" + std::to_string(c->rank) + "-" + std::to_string(peer) + "." + std::to_string(c->sent[peer]++);
    std::string payload = describe("ncclSend", count, type, -1, -1) + "\n";
    payload.append(static_cast<const char*>(at(send)), bytes);
    return emu::publish(c->directory, name, payload) ? Success : SystemError;
}

int ncclRecv(std::uint64_t receive, std::size_t count, int type, int peer, void* comm, void* stream)
{
    Communicator* c = find(comm);
    if (c == nullptr) return InvalidArgument;
    if (c->ranks == 1 || peer < 0 || peer >= c->ranks || peer == c->rank)
    {
        std::fprintf(stderr, "nccl-emulator: ncclRecv from peer %d: no such peer in a communicator of %d rank(s)\n",
                     peer, c->ranks);
        return InvalidArgument;
    }
    std::size_t bytes = count * type_bytes(type);
    if (int failed = prepare("ncclRecv", c, comm, stream, type, {0, receive, 0, bytes})) return failed;
    std::uint64_t number = c->received[peer]++;
    std::string name = "p" + std::to_string(peer) + "-" + std::to_string(c->rank) + "." + std::to_string(number);
    std::string file;
    if (!emu::await(c->directory, name, file))
    {
        std::fprintf(stderr, "nccl-emulator: rank %d: ncclRecv #%llu from rank %d: nothing sent within %d s\n",
                     c->rank, static_cast<unsigned long long>(number), peer, emu::timeout_seconds());
        return SystemError;
    }
    std::string expected = describe("ncclSend", count, type, -1, -1) + "\n";
    if (file.compare(0, expected.size(), expected) != 0)
    {
        std::fprintf(stderr, "nccl-emulator: rank %d: ncclRecv(count %zu, type %d) #%llu from rank %d got %s\n", c->rank,
                     count, type, static_cast<unsigned long long>(number), peer, file.substr(0, file.find('\n')).c_str());
        return InvalidUsage;
    }
    std::memcpy(at(receive), file.data() + expected.size(), bytes);
    emu::remove(c->directory, name);
    return Success;
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
