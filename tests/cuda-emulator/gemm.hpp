// gemm.hpp — the reference matrix product behind the fake cuBLAS and cuBLASLt: column-major storage, fp32
// accumulation, element types CUDA_R_32F / CUDA_R_16F / CUDA_R_16BF, and the device-range and context checks both
// libraries share with the fake driver.
#pragma once

#include <cstddef>
#include <cstdint>

namespace emu
{
// cudaDataType_t values the emulated libraries accept as matrix element types.
enum DataType : int { Float32 = 0, Float16 = 2, BFloat16 = 14 };

// Bytes per element of `type`, or 0 when the type is not emulated.
std::size_t element_bytes(int type);

// The element of `type` at device address `address`, widened to float.
float load_element(int type, std::uint64_t address);

// A 16-bit value of `type` (Float16 or BFloat16) widened to float, and a float rounded to one (nearest even).
float widen16(int type, std::uint16_t bits);
std::uint16_t narrow16(int type, float value);

struct Matrix
{
    std::uint64_t pointer;  // device address of element (0, 0)
    int type;
    long long ld;           // leading dimension, in elements
};

// D = alpha·op(A)·op(B) + beta·C for one m×n×k product (column-major; op(X) = X or Xᵀ). C is not read when beta
// is 0, as in cuBLAS. `epilogue` is applied to each element (row, col) of D after beta·C (nullptr: none).
void gemm(bool transpose_a, bool transpose_b, long long m, long long n, long long k, float alpha, Matrix a,
          Matrix b, float beta, Matrix c, Matrix d,
          float (*epilogue)(float value, long long row, long long col, const void* state), const void* epilogue_state);

// Stores `value` rounded to the matrix's type at (row, col).
void store_element(const Matrix& m, long long row, long long col, float value);

// The element at (row, col), widened to float.
float load_element(const Matrix& m, long long row, long long col);

// The bytes a column-major rows×cols matrix with leading dimension `ld` spans: ld·(cols−1) + rows elements.
std::size_t matrix_span_bytes(long long rows, long long cols, long long ld, int type);

// 0 when [pointer, pointer + bytes) lies inside one live allocation of the fake driver (messages on stderr); −1
// when the fake libcuda.so.1 is not loaded from this library's directory.
int check_device_range(std::uint64_t pointer, std::size_t bytes, const char* call, const char* operand);

// Completes the fake driver's queued async copies on `stream` (library work runs at the call, in stream order)
// and counts the call as work on that stream (the driver's stream_order.hpp).
void flush_stream(void* stream);

// check_device_range, and (for cuBLAS/cuBLASLt operands on the legacy stream) not inside a buffer a side-stream
// collective may still use (stream_order.hpp in the driver).
int check_operand(std::uint64_t pointer, std::size_t bytes, const char* call, const char* operand);

// For the fake NCCL: a collective on `stream` over up to two device ranges must be ordered after the legacy
// stream's work; it is then in flight until something waits for it. 0, or -1 after the driver's message.
int begin_side_operation(void* stream, const char* call, std::uint64_t first, std::size_t first_bytes,
                         std::uint64_t second, std::size_t second_bytes);

// True when the fake driver has a current context on this thread (cuBLAS handles need one).
bool driver_has_context();

// The current context's device (cuCtxGetDevice of the fake driver) into `device`; false without a current context.
bool driver_current_device(int* device);
} // namespace emu
