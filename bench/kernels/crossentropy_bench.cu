// crossentropy_bench.cu — times kernels-cu/crossentropy.cu at GPT-2's shape (16·1024 rows, 50304 logits, bf16) on
// one GPU, against a device-to-device copy of the same bytes (the bandwidth ceiling), and checks the backward with
// the forward's statistics against the backward without them. Build and run on the GPU machine with
// bench/kernels/run-crossentropy-bench.sh (nvcc, no .NET). With -DSW_CE_BASELINE it also times, and compares with,
// the kernel in bench/kernels/baseline_crossentropy.cuh (an older crossentropy.cu, for before/after numbers).
// Usage: crossentropy_bench [rows] [vocabulary] [logit element offset]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <vector>
#include "../../kernels-cu/crossentropy.cu"
#ifdef SW_CE_BASELINE
#include "baseline_crossentropy.cuh"
#endif

#define CHECK(call)                                                                                   \
    do                                                                                                \
    {                                                                                                 \
        cudaError_t e = (call);                                                                       \
        if (e != cudaSuccess)                                                                         \
        {                                                                                             \
            std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e)); \
            std::exit(1);                                                                             \
        }                                                                                             \
    } while (0)

// Deterministic pseudo-random logits in about [−6, 6] and targets in [0, vocabulary).
__global__ void fill_logits(sw_bf16* x, long long n, unsigned seed)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        x[i] = sw_from_float<sw_bf16>(((h & 0xffffff) / 16777216.0f - 0.5f) * 12.0f);
    }
}

__global__ void fill_targets(int* t, int rows, int vocabulary)
{
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x)
        t[r] = (int)(((unsigned)r * 2654435761u) % (unsigned)vocabulary);
}

template <typename F>
static float time_ms(F launch, int iterations = 20)
{
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    for (int i = 0; i < 3; i++) launch();
    CHECK(cudaEventRecord(start));
    for (int i = 0; i < iterations; i++) launch();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    CHECK(cudaGetLastError());
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms / iterations;
}

static std::vector<float> download_bf16(const sw_bf16* p, long long n)
{
    std::vector<sw_bf16> h(n);
    CHECK(cudaMemcpy(h.data(), p, n * sizeof(sw_bf16), cudaMemcpyDeviceToHost));
    std::vector<float> f(n);
    for (long long i = 0; i < n; i++)
    {
        unsigned bits = (unsigned)h[i].bits << 16;  // bf16 is the upper half of a float
        std::memcpy(&f[i], &bits, sizeof bits);
    }
    return f;
}

static std::vector<float> download_f32(const float* p, long long n)
{
    std::vector<float> h(n);
    CHECK(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

static double max_difference(const std::vector<float>& a, const std::vector<float>& b)
{
    double worst = 0;
    for (size_t i = 0; i < a.size(); i++) worst = std::fmax(worst, std::fabs((double)a[i] - b[i]));
    return worst;
}

int main(int argc, char** argv)
{
    int rows = argc > 1 ? std::atoi(argv[1]) : 16 * 1024;
    int vocabulary = argc > 2 ? std::atoi(argv[2]) : 50304;
    int offset = argc > 3 ? std::atoi(argv[3]) : 0;
    long long n = (long long)rows * vocabulary;
    double bytes = (double)n * sizeof(sw_bf16);
    float dloss = 1.0f / rows;

    sw_bf16 *logit_buffer, *dlogit_buffer;
    int* targets;
    float *losses, *statistics;
    CHECK(cudaMalloc(&logit_buffer, (n + 8) * sizeof(sw_bf16)));
    CHECK(cudaMalloc(&dlogit_buffer, (n + 8) * sizeof(sw_bf16)));
    CHECK(cudaMalloc(&targets, rows * sizeof(int)));
    CHECK(cudaMalloc(&losses, rows * sizeof(float)));
    CHECK(cudaMalloc(&statistics, 2 * (size_t)rows * sizeof(float)));
    sw_bf16 *logits = logit_buffer + offset, *dlogits = dlogit_buffer + offset;
    fill_logits<<<1024, 256>>>(logits, n, 12345u);
    fill_targets<<<64, 256>>>(targets, rows, vocabulary);
    CHECK(cudaDeviceSynchronize());

#ifdef SW_CE_EXPF
    const char* exponential = "expf";
#else
    const char* exponential = "ex2.approx";
#endif
    std::printf("rows %d, vocabulary %d, logit offset %d elements, SW_CE_VECTORS %d, %s: %.3f GB of bf16 logits\n", rows,
                vocabulary, offset, SW_CE_VECTORS, exponential, bytes / 1e9);
    float copy = time_ms([&] { CHECK(cudaMemcpyAsync(dlogits, logits, n * sizeof(sw_bf16), cudaMemcpyDeviceToDevice)); });
    std::printf("device-to-device copy (read + write): %.3f ms, %.0f GB/s\n", copy, 2 * bytes / copy / 1e6);

    for (int threads : {128, 256, 512})
    {
        float forward = time_ms([&] {
            crossentropy_forward_bf16<<<rows, threads>>>(logits, targets, losses, statistics, rows, vocabulary);
        });
        float backward = time_ms([&] {
            crossentropy_backward_bf16<<<rows, threads>>>(logits, targets, statistics, dlogits, rows, vocabulary, dloss, 0);
        });
        float backward_accumulate = time_ms([&] {
            crossentropy_backward_bf16<<<rows, threads>>>(logits, targets, statistics, dlogits, rows, vocabulary, dloss, 1);
        });
        float backward_alone = time_ms([&] {
            crossentropy_backward_bf16<<<rows, threads>>>(logits, targets, nullptr, dlogits, rows, vocabulary, dloss, 0);
        });
        std::printf("block %4d: forward %.3f ms (%.0f GB/s); backward with statistics %.3f ms (%.0f GB/s), accumulating "
                    "%.3f ms (%.0f GB/s), without statistics %.3f ms (%.0f GB/s); step (forward + backward) %.3f ms\n",
                    threads, forward, bytes / forward / 1e6, backward, 2 * bytes / backward / 1e6, backward_accumulate,
                    3 * bytes / backward_accumulate / 1e6, backward_alone, 3 * bytes / backward_alone / 1e6,
                    forward + backward);
    }

    // The fused kernel (ITensorOps.CrossEntropyWithGradient): staged keeps each row in shared memory for its gradient
    // pass (one read of the logits), unstaged reads the row again (from L2 if it is still there). Compare with the
    // pair's "step" above: the forward and the backward with statistics.
    unsigned staged_bytes = (unsigned)(vocabulary * sizeof(sw_bf16) + 16);
    CHECK(cudaFuncSetAttribute(crossentropy_forward_backward_bf16, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               (int)staged_bytes));
    cudaFuncAttributes fused_attributes;
    CHECK(cudaFuncGetAttributes(&fused_attributes, crossentropy_forward_backward_bf16));
    std::printf("crossentropy_forward_backward_bf16: %d registers, at most %d threads per block\n",
                fused_attributes.numRegs, fused_attributes.maxThreadsPerBlock);
    for (int threads : {256, 512, 1024})
    {
        if (threads > fused_attributes.maxThreadsPerBlock) continue;  // too many registers for such a block
        float staged = time_ms([&] {
            crossentropy_forward_backward_bf16<<<rows, threads, staged_bytes>>>(logits, targets, losses, dlogits, rows,
                                                                                vocabulary, dloss, 0, 1);
        });
        float unstaged = time_ms([&] {
            crossentropy_forward_backward_bf16<<<rows, threads>>>(logits, targets, losses, dlogits, rows, vocabulary,
                                                                  dloss, 0, 0);
        });
        std::printf("block %4d: fused forward + backward, row staged in shared memory %.3f ms (%.0f GB/s), unstaged "
                    "%.3f ms\n", threads, staged, 2 * bytes / staged / 1e6, unstaged);
    }

    // The backward with the forward's statistics must equal the backward computing its own, bit for bit.
    crossentropy_forward_bf16<<<rows, 512>>>(logits, targets, losses, statistics, rows, vocabulary);
    crossentropy_backward_bf16<<<rows, 512>>>(logits, targets, statistics, dlogits, rows, vocabulary, dloss, 0);
    CHECK(cudaDeviceSynchronize());
    std::vector<float> with_statistics = download_bf16(dlogits, n), new_losses = download_f32(losses, rows);
    crossentropy_backward_bf16<<<rows, 512>>>(logits, targets, nullptr, dlogits, rows, vocabulary, dloss, 0);
    CHECK(cudaDeviceSynchronize());
    std::vector<float> without_statistics = download_bf16(dlogits, n);
    std::printf("backward with vs without statistics: max |difference| %g\n",
                max_difference(with_statistics, without_statistics));
    // And the fused kernel at the same block must equal the pair, bit for bit (losses and dlogits), staged or not.
    for (int staged : {1, 0})
    {
        crossentropy_forward_backward_bf16<<<rows, 512, staged ? staged_bytes : 0>>>(logits, targets, losses, dlogits,
                                                                                      rows, vocabulary, dloss, 0, staged);
        CHECK(cudaDeviceSynchronize());
        std::printf("fused (staged %d) vs the pair at block 512: max |loss difference| %g, max |dlogit difference| %g\n",
                    staged, max_difference(download_f32(losses, rows), new_losses),
                    max_difference(download_bf16(dlogits, n), with_statistics));
    }
    double mean = 0;
    for (float l : new_losses) mean += l;
    std::printf("mean loss %.6f (log(vocabulary) = %.6f for uniform logits)\n", mean / rows, std::log((double)vocabulary));

#ifdef SW_CE_BASELINE
    float old_forward = time_ms([&] {
        crossentropy_fused_forward_backward_bf16<<<rows, 512>>>(logits, targets, nullptr, losses, rows, vocabulary, 0.0f, 0);
    });
    float old_backward = time_ms([&] {
        crossentropy_fused_forward_backward_bf16<<<rows, 512>>>(logits, targets, dlogits, nullptr, rows, vocabulary, dloss, 0);
    });
    std::printf("baseline block 512: forward %.3f ms (%.0f GB/s), backward %.3f ms (%.0f GB/s), step %.3f ms\n",
                old_forward, bytes / old_forward / 1e6, old_backward, 3 * bytes / old_backward / 1e6,
                old_forward + old_backward);
    crossentropy_fused_forward_backward_bf16<<<rows, 512>>>(logits, targets, dlogits, losses, rows, vocabulary, dloss, 0);
    CHECK(cudaDeviceSynchronize());
    std::vector<float> old_gradient = download_bf16(dlogits, n), old_losses = download_f32(losses, rows);
    std::printf("baseline vs new: max |loss difference| %g, max |dlogit difference| %g (dloss %g)\n",
                max_difference(old_losses, new_losses), max_difference(old_gradient, with_statistics), dloss);
#endif
    return 0;
}
