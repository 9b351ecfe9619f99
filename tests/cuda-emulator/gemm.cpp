// gemm.cpp — see gemm.hpp. The fake libraries find the fake driver (for the range and context checks) by opening
// libcuda.so.1 from their own directory with RTLD_NOLOAD: the copy the runtime already loaded, never a second one.
#include <dlfcn.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "gemm.hpp"

namespace emu
{
namespace
{
float half_to_float(std::uint16_t h)
{
    unsigned sign = (h >> 15) & 1u, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    float value;
    if (exponent == 0) value = std::ldexp(static_cast<float>(mantissa), -24);
    else if (exponent == 31) value = mantissa != 0 ? NAN : INFINITY;
    else value = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
    return sign ? -value : value;
}

std::uint16_t float_to_half(float f)
{
    // Round to nearest even through the exact float → half rule on the bit pattern.
    std::uint32_t x;
    std::memcpy(&x, &f, 4);
    std::uint32_t sign = (x >> 16) & 0x8000u;
    std::uint32_t magnitude = x & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
    if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u); // rounds to infinity
    if (magnitude < 0x38800000u)                                                       // subnormal or zero half
    {
        float scaled = std::fabs(f) * 16777216.0f;  // multiples of 2^-24
        return static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(std::nearbyint(scaled)));
    }
    std::uint32_t rounded = magnitude + 0x0fffu + ((magnitude >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

float bf16_to_float(std::uint16_t b)
{
    std::uint32_t x = static_cast<std::uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

std::uint16_t float_to_bf16(float f)
{
    std::uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
    return static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

void* driver_symbol(const char* name);
} // namespace

float load_element(const Matrix& m, long long row, long long col)
{
    return load_element(m.type, m.pointer + static_cast<std::uint64_t>(row + col * m.ld) * element_bytes(m.type));
}

void store_element(const Matrix& m, long long row, long long col, float value)
{
    std::uint64_t at = m.pointer + static_cast<std::uint64_t>(row + col * m.ld) * element_bytes(m.type);
    if (m.type == Float32)
    {
        std::memcpy(reinterpret_cast<void*>(at), &value, 4);
        return;
    }
    std::uint16_t bits = m.type == Float16 ? float_to_half(value) : float_to_bf16(value);
    std::memcpy(reinterpret_cast<void*>(at), &bits, 2);
}

namespace
{
void* driver_symbol(const char* name)
{
    static void* driver = [] {
        Dl_info self{};
        if (dladdr(reinterpret_cast<void*>(&driver_has_context), &self) == 0 || self.dli_fname == nullptr)
            return static_cast<void*>(nullptr);
        std::string path(self.dli_fname);
        path = path.substr(0, path.rfind('/') + 1) + "libcuda.so.1";
        return dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
    }();
    return driver == nullptr ? nullptr : dlsym(driver, name);
}
} // namespace

float widen16(int type, std::uint16_t bits) { return type == Float16 ? half_to_float(bits) : bf16_to_float(bits); }

std::uint16_t narrow16(int type, float value) { return type == Float16 ? float_to_half(value) : float_to_bf16(value); }

float load_element(int type, std::uint64_t address)
{
    if (type == Float32)
    {
        float v;
        std::memcpy(&v, reinterpret_cast<const void*>(address), 4);
        return v;
    }
    std::uint16_t bits;
    std::memcpy(&bits, reinterpret_cast<const void*>(address), 2);
    return type == Float16 ? half_to_float(bits) : bf16_to_float(bits);
}

std::size_t element_bytes(int type)
{
    switch (type)
    {
    case Float32: return 4;
    case Float16: case BFloat16: return 2;
    default: return 0;
    }
}

std::size_t matrix_span_bytes(long long rows, long long cols, long long ld, int type)
{
    if (rows <= 0 || cols <= 0) return 0;
    return static_cast<std::size_t>(ld * (cols - 1) + rows) * element_bytes(type);
}

void gemm(bool transpose_a, bool transpose_b, long long m, long long n, long long k, float alpha, Matrix a,
          Matrix b, float beta, Matrix c, Matrix d, float (*epilogue)(float, long long, long long, const void*),
          const void* epilogue_state)
{
    // op(A) row by row and op(B) column by column as contiguous floats, so each element of D is one dot product.
    std::vector<float> rows_of_a(static_cast<std::size_t>(m * k)), columns_of_b(static_cast<std::size_t>(n * k));
    for (long long i = 0; i < m; i++)
        for (long long p = 0; p < k; p++) rows_of_a[i * k + p] = transpose_a ? load_element(a, p, i) : load_element(a, i, p);
    for (long long j = 0; j < n; j++)
        for (long long p = 0; p < k; p++) columns_of_b[j * k + p] = transpose_b ? load_element(b, j, p) : load_element(b, p, j);
    for (long long j = 0; j < n; j++)
        for (long long i = 0; i < m; i++)
        {
            const float* x = rows_of_a.data() + i * k;
            const float* y = columns_of_b.data() + j * k;
            float sum = 0.0f;  // fp32 accumulation, as CUBLAS_COMPUTE_32F
            for (long long p = 0; p < k; p++) sum += x[p] * y[p];
            float value = alpha * sum;
            if (beta != 0.0f) value += beta * load_element(c, i, j);
            if (epilogue != nullptr) value = epilogue(value, i, j, epilogue_state);
            store_element(d, i, j, value);
        }
}

int check_device_range(std::uint64_t pointer, std::size_t bytes, const char* call, const char* operand)
{
    using Check = int (*)(std::uint64_t, std::size_t, const char*, const char*);
    auto check = reinterpret_cast<Check>(driver_symbol("swemu_check_device_range"));
    if (check == nullptr) return -1;
    return check(pointer, bytes, call, operand) == 0 ? 0 : -1;
}

int check_operand(std::uint64_t pointer, std::size_t bytes, const char* call, const char* operand)
{
    if (check_device_range(pointer, bytes, call, operand) != 0) return -1;
    using Check = int (*)(std::uint64_t, std::size_t, const char*, const char*);
    auto check = reinterpret_cast<Check>(driver_symbol("swemu_check_not_in_flight"));
    return check == nullptr || check(pointer, bytes, call, operand) == 0 ? 0 : -1;
}

void flush_stream(void* stream)
{
    using Flush = void (*)(void*);
    auto flush = reinterpret_cast<Flush>(driver_symbol("swemu_flush_stream"));
    if (flush != nullptr) flush(stream);
    auto note = reinterpret_cast<Flush>(driver_symbol("swemu_note_work"));
    if (note != nullptr) note(stream);
}

int begin_side_operation(void* stream, const char* call, std::uint64_t first, std::size_t first_bytes,
                         std::uint64_t second, std::size_t second_bytes)
{
    using Begin = int (*)(void*, const char*, std::uint64_t, std::size_t, std::uint64_t, std::size_t);
    auto begin = reinterpret_cast<Begin>(driver_symbol("swemu_begin_side_operation"));
    return begin == nullptr || begin(stream, call, first, first_bytes, second, second_bytes) == 0 ? 0 : -1;
}

bool driver_has_context()
{
    using GetCurrent = int (*)(void**);
    auto get = reinterpret_cast<GetCurrent>(driver_symbol("cuCtxGetCurrent"));
    void* context = nullptr;
    return get != nullptr && get(&context) == 0 && context != nullptr;
}

bool driver_current_device(int* device)
{
    using GetDevice = int (*)(int*);
    auto get = reinterpret_cast<GetDevice>(driver_symbol("cuCtxGetDevice"));
    return get != nullptr && get(device) == 0;
}
} // namespace emu
