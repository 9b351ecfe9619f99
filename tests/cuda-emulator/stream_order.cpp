// stream_order.cpp — see stream_order.hpp. The caller (driver.cpp) holds the driver's lock.
#include "stream_order.hpp"

#include "emulator.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <vector>

namespace emu::order
{
namespace
{
struct Range
{
    std::uint64_t begin, end;
};

struct SideOperation
{
    std::uint64_t sequence;  // its place on its stream (1, 2, ...)
    std::string call;
    std::vector<Range> ranges;
};

struct Side
{
    std::uint64_t queued = 0;                 // operations queued on it
    std::uint64_t ordered_after_legacy = 0;   // legacy work it has waited for
    std::vector<SideOperation> in_flight;     // queued, not yet waited for
};

struct LegacyAccess
{
    std::uint64_t sequence;    // the legacy work's count
    std::uint64_t allocation;  // the start of an allocation it used
};

std::vector<std::uint64_t> pending_operands; // cuBLAS operands checked for the legacy work counted next
std::uint64_t legacy_count = 0;
std::uint64_t host_synchronised = 0;  // legacy work the host has waited for
std::vector<LegacyAccess> unsynchronised; // legacy work's allocations the host has not waited for yet
std::map<void*, Side> sides;

void record(std::uint64_t sequence, std::uint64_t pointer)
{
    std::uint64_t allocation = emu::allocation_base(pointer);
    if (allocation != 0) unsynchronised.push_back({sequence, allocation});
}

// The side stream's operations up to `mark` are done: they are no longer in flight.
void complete(Side& side, std::uint64_t mark)
{
    side.in_flight.erase(std::remove_if(side.in_flight.begin(), side.in_flight.end(),
                                        [mark](const SideOperation& o) { return o.sequence <= mark; }),
                         side.in_flight.end());
}
} // namespace

void legacy_work(std::initializer_list<std::uint64_t> pointers) { legacy_work(pointers.begin(), pointers.size()); }

void legacy_work(const std::uint64_t* pointers, std::size_t count)
{
    legacy_count++;
    for (std::size_t i = 0; i < count; i++) record(legacy_count, pointers[i]);
    for (std::uint64_t pointer : pending_operands) record(legacy_count, pointer);
    pending_operands.clear();
}

void legacy_operand(std::uint64_t pointer) { pending_operands.push_back(pointer); }

std::uint64_t legacy_mark() { return legacy_count; }

void host_waited_for_legacy(std::uint64_t mark)
{
    host_synchronised = std::max(host_synchronised, mark);
    std::uint64_t done = host_synchronised;
    unsynchronised.erase(std::remove_if(unsynchronised.begin(), unsynchronised.end(),
                                        [done](const LegacyAccess& a) { return a.sequence <= done; }),
                         unsynchronised.end());
}

void side_waits_for_legacy(void* side, std::uint64_t mark)
{
    Side& s = sides[side];
    s.ordered_after_legacy = std::max(s.ordered_after_legacy, mark);
}

std::uint64_t side_mark(void* side) { return sides[side].queued; }

void side_completed(void* side, std::uint64_t mark)
{
    auto found = sides.find(side);
    if (found != sides.end()) complete(found->second, mark);
}

void everything_completed()
{
    host_waited_for_legacy(legacy_count);
    for (auto& [key, side] : sides) complete(side, UINT64_MAX);
}

void forget(void* side) { sides.erase(side); }

bool begin_side_operation(void* side, const char* call, std::uint64_t first, std::size_t first_bytes,
                          std::uint64_t second, std::size_t second_bytes)
{
    Side& s = sides[side];
    std::uint64_t ordered = std::max(s.ordered_after_legacy, host_synchronised);
    std::uint64_t buffers[2] = {first_bytes > 0 ? emu::allocation_base(first) : 0,
                                second_bytes > 0 ? emu::allocation_base(second) : 0};
    std::uint64_t unordered = 0, latest = 0;
    for (const LegacyAccess& a : unsynchronised)
        if (a.sequence > ordered && (a.allocation == buffers[0] || a.allocation == buffers[1]))
        {
            unordered++;
            latest = std::max(latest, a.sequence);
        }
    if (unordered > 0)
    {
        std::fprintf(stderr,
                     "cuda-emulator: %s on stream %p is not ordered after %" PRIu64 " uses of its buffers by work "
                     "queued on the legacy stream (kernels, GEMMs, copies; the latest is legacy operation %" PRIu64
                     ", the stream waited for %" PRIu64 "): it could read them before that work writes them. Record "
                     "an event on the legacy stream and cuStreamWaitEvent it on this stream first\n",
                     call, side, unordered, latest, ordered);
        return false;
    }
    SideOperation operation{++s.queued, call, {}};
    if (first_bytes > 0) operation.ranges.push_back({first, first + first_bytes});
    if (second_bytes > 0) operation.ranges.push_back({second, second + second_bytes});
    s.in_flight.push_back(std::move(operation));
    return true;
}

std::string in_flight_conflict(std::uint64_t pointer, std::size_t bytes, const char* call, const char* operand)
{
    std::uint64_t end = pointer + std::max<std::size_t>(bytes, 1);
    for (auto& [key, side] : sides)
        for (const SideOperation& o : side.in_flight)
            for (const Range& r : o.ranges)
                if (pointer < r.end && r.begin < end)
                {
                    char text[512];
                    std::snprintf(text, sizeof text,
                                  "cuda-emulator: %s: %s (0x%" PRIx64 ") lies in memory that %s (operation %" PRIu64
                                  " on stream %p) may still be using: nothing has waited for it yet "
                                  "(cuStreamWaitEvent, cuEventSynchronize or cuStreamSynchronize)",
                                  call, operand, pointer, o.call.c_str(), o.sequence, key);
                    return text;
                }
    return {};
}
} // namespace emu::order
