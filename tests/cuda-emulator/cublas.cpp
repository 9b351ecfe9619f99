// cublas.cpp — libcublas.so.13 for the emulated device: handles, stream/math mode/workspace, version, status
// strings, and cublasGemmEx / cublasGemmStridedBatchedEx with cuBLAS's column-major semantics and argument checks
// (m, n, k ≥ 0; lda ≥ max(1, rows of the stored A) and likewise ldb, ldc; supported type/compute combinations).
// Every operand's span is checked to lie inside one live allocation of the fake driver.
#include <cstdio>
#include <mutex>
#include <set>

#include "gemm.hpp"

namespace
{
enum Status : int
{
    Success = 0,
    NotInitialized = 1,
    InvalidValue = 7,
    MappingError = 11,
    NotSupported = 15,
};

struct Handle
{
    void* stream = nullptr;
    int math_mode = 0;
};

std::mutex gate;
std::set<Handle*> handles;

bool valid(void* handle)
{
    std::lock_guard<std::mutex> lock(gate);
    return handles.count(static_cast<Handle*>(handle)) != 0;
}

bool valid_operation(int op) { return op == 0 || op == 1 || op == 2; }  // N, T, C (C = T for real types)

// CUBLAS_COMPUTE_32F and its pedantic/fast variants, with fp32 alpha and beta.
bool fp32_compute(int compute) { return compute == 68 || compute == 69 || (compute >= 74 && compute <= 77); }

bool supported_types(int a, int b, int c)
{
    if (a != b) return false;
    if (a == emu::Float32) return c == emu::Float32;
    return (a == emu::Float16 || a == emu::BFloat16) && (c == a || c == emu::Float32);
}

long long at_least_one(long long v) { return v < 1 ? 1 : v; }

// The shared argument checks of the two GEMM entry points; Success or the status to return.
int check_arguments(const char* call, int transa, int transb, int m, int n, int k, const void* alpha,
                    const void* beta, int a_type, long long lda, int b_type, long long ldb, int c_type, long long ldc,
                    int compute, int algorithm)
{
    if (!valid_operation(transa) || !valid_operation(transb) || m < 0 || n < 0 || k < 0 || alpha == nullptr ||
        beta == nullptr)
    {
        std::fprintf(stderr, "cublas-emulator: %s: invalid operation, negative size or null alpha/beta "
                             "(transa %d, transb %d, m %d, n %d, k %d)\n", call, transa, transb, m, n, k);
        return InvalidValue;
    }
    long long a_rows = transa == 0 ? m : k, b_rows = transb == 0 ? k : n;
    if (lda < at_least_one(a_rows) || ldb < at_least_one(b_rows) || ldc < at_least_one(m))
    {
        std::fprintf(stderr, "cublas-emulator: %s: leading dimension below the stored rows: lda %lld (rows %lld), "
                             "ldb %lld (rows %lld), ldc %lld (rows %d)\n", call, lda, a_rows, ldb, b_rows, ldc, m);
        return InvalidValue;
    }
    if (!fp32_compute(compute) || !supported_types(a_type, b_type, c_type))
    {
        std::fprintf(stderr, "cublas-emulator: %s: types A %d, B %d, C %d with compute type %d are not emulated "
                             "(fp32 compute over 32F, 16F or 16BF)\n", call, a_type, b_type, c_type, compute);
        return NotSupported;
    }
    if (!(algorithm >= -1 && algorithm <= 23) && !(algorithm >= 99 && algorithm <= 115))
    {
        std::fprintf(stderr, "cublas-emulator: %s: algorithm %d is not a cublasGemmAlgo_t\n", call, algorithm);
        return InvalidValue;
    }
    return Success;
}

// Checks that the batch's operands (all batch members) lie inside live allocations.
int check_spans(const char* call, int transa, int transb, int m, int n, int k, std::uint64_t a, int a_type,
                long long lda, long long stride_a, std::uint64_t b, int b_type, long long ldb, long long stride_b,
                std::uint64_t c, int c_type, long long ldc, long long stride_c, int batch)
{
    long long a_rows = transa == 0 ? m : k, a_cols = transa == 0 ? k : m;
    long long b_rows = transb == 0 ? k : n, b_cols = transb == 0 ? n : k;
    struct Operand
    {
        const char* name;
        std::uint64_t pointer;
        std::size_t span;
        long long stride;
        std::size_t element;
    } operands[] = {
        {"A", a, emu::matrix_span_bytes(a_rows, a_cols, lda, a_type), stride_a, emu::element_bytes(a_type)},
        {"B", b, emu::matrix_span_bytes(b_rows, b_cols, ldb, b_type), stride_b, emu::element_bytes(b_type)},
        {"C", c, emu::matrix_span_bytes(m, n, ldc, c_type), stride_c, emu::element_bytes(c_type)},
    };
    for (const Operand& o : operands)
    {
        if (o.span == 0) continue;  // an empty operand (k = 0) is not read
        if (o.stride < 0) return InvalidValue;
        std::size_t bytes =
            o.span + static_cast<std::size_t>(o.stride) * o.element * static_cast<std::size_t>(batch - 1);
        if (emu::check_operand(o.pointer, bytes, call, o.name) != 0) return MappingError;
    }
    return Success;
}

int strided_batched(void* handle, int transa, int transb, int m, int n, int k, const void* alpha, std::uint64_t a,
                    int a_type, int lda, long long stride_a, std::uint64_t b, int b_type, int ldb, long long stride_b,
                    const void* beta, std::uint64_t c, int c_type, int ldc, long long stride_c, int batch,
                    int compute, int algorithm, const char* call)
{
    if (!valid(handle)) return NotInitialized;
    int status = check_arguments(call, transa, transb, m, n, k, alpha, beta, a_type, lda, b_type, ldb, c_type, ldc,
                                 compute, algorithm);
    if (status != Success) return status;
    if (batch < 0) return InvalidValue;
    if (m == 0 || n == 0 || batch == 0) return Success;
    float alpha_value = *static_cast<const float*>(alpha), beta_value = *static_cast<const float*>(beta);
    status = check_spans(call, transa, transb, m, n, k, a, a_type, lda, stride_a, b, b_type, ldb, stride_b, c,
                         c_type, ldc, stride_c, batch);
    if (status != Success) return status;
    emu::flush_stream(static_cast<Handle*>(handle)->stream);  // after the operand checks: they belong to this work
    for (int i = 0; i < batch; i++)
    {
        emu::Matrix ma{a + static_cast<std::uint64_t>(stride_a * i) * emu::element_bytes(a_type), a_type, lda};
        emu::Matrix mb{b + static_cast<std::uint64_t>(stride_b * i) * emu::element_bytes(b_type), b_type, ldb};
        emu::Matrix mc{c + static_cast<std::uint64_t>(stride_c * i) * emu::element_bytes(c_type), c_type, ldc};
        emu::gemm(transa != 0, transb != 0, m, n, k, alpha_value, ma, mb, beta_value, mc, mc, nullptr, nullptr);
    }
    return Success;
}
} // namespace

extern "C"
{
const char* cublasGetStatusName(int status)
{
    switch (status)
    {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

const char* cublasGetStatusString(int status)
{
    switch (status)
    {
    case 0: return "success";
    case 1: return "the library was not initialized";
    case 3: return "the resource allocation failed";
    case 7: return "an invalid numeric value was used as an argument";
    case 8: return "an absent device architectural feature is required";
    case 11: return "an access to GPU memory space failed";
    case 13: return "the GPU program failed to execute";
    case 14: return "an internal operation failed";
    case 15: return "the functionality requested is not supported";
    case 16: return "error detected trying to check the license";
    default: return "unknown error";
    }
}

int cublasCreate_v2(void** handle)
{
    if (handle == nullptr) return InvalidValue;
    if (!emu::driver_has_context())
    {
        std::fprintf(stderr, "cublas-emulator: cublasCreate_v2: no current CUDA context on this thread (or the "
                             "emulated libcuda.so.1 is not loaded from this directory)\n");
        return NotInitialized;
    }
    std::lock_guard<std::mutex> lock(gate);
    auto* created = new Handle();
    handles.insert(created);
    *handle = created;
    return Success;
}

int cublasDestroy_v2(void* handle)
{
    std::lock_guard<std::mutex> lock(gate);
    if (handles.erase(static_cast<Handle*>(handle)) == 0) return NotInitialized;
    delete static_cast<Handle*>(handle);
    return Success;
}

int cublasGetVersion_v2(void* handle, int* version)
{
    if (!valid(handle)) return NotInitialized;
    if (version == nullptr) return InvalidValue;
    *version = 130000;
    return Success;
}

int cublasSetStream_v2(void* handle, void* stream)
{
    if (!valid(handle)) return NotInitialized;
    static_cast<Handle*>(handle)->stream = stream;
    return Success;
}

int cublasSetMathMode(void* handle, int mode)
{
    if (!valid(handle)) return NotInitialized;
    // CUBLAS_DEFAULT_MATH 0, TENSOR_OP 1 (deprecated), PEDANTIC 2, TF32 3, plus the 16-bit reduction flag 16.
    int base = mode & ~16;
    if (base < 0 || base > 3) return InvalidValue;
    static_cast<Handle*>(handle)->math_mode = mode;
    return Success;
}

int cublasSetWorkspace_v2(void* handle, std::uint64_t workspace, std::size_t bytes)
{
    if (!valid(handle)) return NotInitialized;
    if (bytes != 0 && (workspace == 0 || workspace % 256 != 0)) return InvalidValue;
    if (bytes != 0 && emu::check_device_range(workspace, bytes, "cublasSetWorkspace_v2", "workspace") != 0)
        return InvalidValue;
    return Success;
}

int cublasGemmEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha, std::uint64_t a,
                 int a_type, int lda, std::uint64_t b, int b_type, int ldb, const void* beta, std::uint64_t c,
                 int c_type, int ldc, int compute, int algorithm)
{
    return strided_batched(handle, transa, transb, m, n, k, alpha, a, a_type, lda, 0, b, b_type, ldb, 0, beta, c,
                           c_type, ldc, 0, 1, compute, algorithm, "cublasGemmEx");
}

int cublasGemmStridedBatchedEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha,
                               std::uint64_t a, int a_type, int lda, long long stride_a, std::uint64_t b, int b_type,
                               int ldb, long long stride_b, const void* beta, std::uint64_t c, int c_type, int ldc,
                               long long stride_c, int batch, int compute, int algorithm)
{
    return strided_batched(handle, transa, transb, m, n, k, alpha, a, a_type, lda, stride_a, b, b_type, ldb, stride_b,
                           beta, c, c_type, ldc, stride_c, batch, compute, algorithm, "cublasGemmStridedBatchedEx");
}
}
