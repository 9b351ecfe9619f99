// fiber.cpp — see fiber.hpp.
#include "fiber.hpp"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)

// simt_fiber_jump(void** save, void* load): pushes the callee-saved registers and the floating-point control words,
// stores the stack pointer in *save, switches to `load` and pops the same frame from there. A fresh fiber's stack
// holds such a frame too (fiber_start), whose return address is simt_fiber_begin; that calls the entry kept in r12.
asm(R"(
    .text
    .p2align 4
    .globl simt_fiber_jump
    .hidden simt_fiber_jump
    .type simt_fiber_jump, @function
simt_fiber_jump:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size simt_fiber_jump, .-simt_fiber_jump

    .p2align 4
    .globl simt_fiber_begin
    .hidden simt_fiber_begin
    .type simt_fiber_begin, @function
simt_fiber_begin:
    callq *%r12
    ud2
    .size simt_fiber_begin, .-simt_fiber_begin
)");

extern "C" void simt_fiber_jump(void** save, void* load);
extern "C" void simt_fiber_begin();

namespace simt
{
void fiber_start(FiberContext& fiber, char* stack, std::size_t bytes, void (*entry)())
{
    // The frame simt_fiber_jump pops, from the lowest address: MXCSR and the x87 control word (8 bytes), r15, r14,
    // r13, r12 (the entry), rbx, rbp, then the return address. The return address sits 24 bytes below the 16-byte
    // aligned top, so simt_fiber_begin runs with rsp 16-byte aligned and its call enters `entry` as the ABI expects.
    auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t{15};
    auto* frame = reinterpret_cast<std::uint64_t*>(top - 80);
    std::uint32_t mxcsr = __builtin_ia32_stmxcsr();
    std::uint16_t control_word;
    asm volatile("fnstcw %0" : "=m"(control_word));
    std::uint64_t control = mxcsr | static_cast<std::uint64_t>(control_word) << 32;
    std::memcpy(&frame[0], &control, sizeof control);
    frame[1] = frame[2] = frame[3] = 0;                               // r15, r14, r13
    frame[4] = reinterpret_cast<std::uint64_t>(entry);                // r12
    frame[5] = frame[6] = 0;                                          // rbx, rbp
    frame[7] = reinterpret_cast<std::uint64_t>(&simt_fiber_begin);    // return address
    frame[8] = 0;                                                     // padding up to the aligned top
    fiber.stack_pointer = frame;
}

void fiber_jump(FiberContext& from, FiberContext& to) { simt_fiber_jump(&from.stack_pointer, to.stack_pointer); }
} // namespace simt

#else

namespace simt
{
void fiber_start(FiberContext& fiber, char* stack, std::size_t bytes, void (*entry)())
{
    getcontext(&fiber.context);
    fiber.context.uc_stack.ss_sp = stack;
    fiber.context.uc_stack.ss_size = bytes;
    fiber.context.uc_link = nullptr;
    makecontext(&fiber.context, entry, 0);
}

void fiber_jump(FiberContext& from, FiberContext& to) { swapcontext(&from.context, &to.context); }
} // namespace simt

#endif
