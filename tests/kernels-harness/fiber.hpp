// fiber.hpp — the context switch under simt.cpp's CUDA threads: start a function on a stack of its own, and jump
// between such contexts.
//
// glibc's swapcontext saves and restores the signal mask with a system call on every switch (and getcontext on
// every start), which made the kernel emulation spend about as long in the kernel as in the kernels: a barrier or a
// shuffle is one switch per CUDA thread. On x86-64 a jump here saves only what the calling convention says a callee
// keeps (rbx, rbp, r12–r15, the stack pointer, MXCSR and the x87 control word) and never enters the kernel. Other
// architectures fall back to ucontext.
#pragma once

#include <cstddef>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace simt
{
struct FiberContext
{
#if defined(__x86_64__)
    void* stack_pointer = nullptr;  // where the saved registers lie, as simt_fiber_jump left them
#else
    ucontext_t context;
#endif
};

// Makes `fiber` start `entry` on [stack, stack + bytes) at its first fiber_jump. `entry` must never return: it ends
// by jumping away for good.
void fiber_start(FiberContext& fiber, char* stack, std::size_t bytes, void (*entry)());

// Saves the running context into `from` and resumes `to`; returns when something jumps back to `from`.
void fiber_jump(FiberContext& from, FiberContext& to);
} // namespace simt
