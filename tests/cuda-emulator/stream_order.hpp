// stream_order.hpp — the ordering between the legacy stream, where the runtime queues its kernels, GEMMs and copies,
// and the non-blocking "side" streams NCCL runs on. The emulator runs every operation at its call, so a missing wait
// between streams could never show up as wrong numbers; this bookkeeping reports it instead, like compute-sanitizer's
// racecheck does for shared memory:
//   - a collective queued on a side stream must be ordered after the legacy stream's work on the same allocations
//     (cuStreamWaitEvent on an event recorded after it, or a host synchronisation), or it could read a buffer before
//     the kernel writing it has run;
//   - until the host or the legacy stream has waited for a side-stream operation (cuStreamSynchronize,
//     cuEventSynchronize/cuEventQuery, cuStreamWaitEvent on an event recorded after it, cuCtxSynchronize), no work on
//     the legacy stream may touch its buffers: a kernel argument, a GEMM operand or a copy inside one is refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace emu::order
{
// The legacy stream (or a blocking stream, ordered with it) queued a kernel, GEMM, copy or memset that uses the
// device pointers among `pointers` (a kernel's 8-byte arguments: values that are no pointer are ignored).
void legacy_work(std::initializer_list<std::uint64_t> pointers);
void legacy_work(const std::uint64_t* pointers, std::size_t count);
// A cuBLAS operand of the legacy-stream operation counted next by legacy_work (the libraries check their operands,
// then count the work; a call refused after its checks leaves them to the next work, which errs on the safe side).
void legacy_operand(std::uint64_t pointer);
// The count of legacy work so far: what an event recorded on the legacy stream marks.
std::uint64_t legacy_mark();
// The host waited for the legacy stream's work up to `mark` (a synchronous copy, cuStreamSynchronize(0), an event).
void host_waited_for_legacy(std::uint64_t mark);
// `side` waits (cuStreamWaitEvent) for the legacy stream's work up to `mark`.
void side_waits_for_legacy(void* side, std::uint64_t mark);

// The operations queued on `side` so far: what an event recorded on it marks.
std::uint64_t side_mark(void* side);
// The host, or the legacy stream, waited for `side`'s operations up to `mark` (all of them with UINT64_MAX).
void side_completed(void* side, std::uint64_t mark);
// Every side stream is complete (cuCtxSynchronize), and the legacy stream too.
void everything_completed();
// A side stream is destroyed: its operations are complete.
void forget(void* side);

// A collective `call` on `side` over [pointer, pointer + bytes) ranges (up to two; bytes 0 for none). Refused (a
// message and false) unless `side` is ordered after the legacy stream's work on their allocations; otherwise
// recorded as in flight.
bool begin_side_operation(void* side, const char* call, std::uint64_t first, std::size_t first_bytes,
                          std::uint64_t second, std::size_t second_bytes);
// Empty when no side-stream operation still in flight touches [pointer, pointer + bytes); otherwise a message
// naming it, for `call` and its `operand`.
std::string in_flight_conflict(std::uint64_t pointer, std::size_t bytes, const char* call, const char* operand);
} // namespace emu::order
