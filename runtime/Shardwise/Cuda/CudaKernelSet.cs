using System;
using System.Collections.Generic;

namespace Shardwise.Cuda;

/// <summary>
/// The kernels-cu modules <see cref="CudaOps"/> uses, compiled by <see cref="KernelCompiler"/> (PTX cache) for the
/// device and loaded once; every entry point is looked up by its extern "C" name. Launch geometry follows the
/// comment at the top of each .cu file (and kernels-cu/README.md).
/// </summary>
internal sealed class CudaKernelSet : IDisposable
{
    /// <summary>The files CudaOps launches kernels from.</summary>
    public static readonly string[] Files =
    [
        "add.cu", "bias.cu", "positions.cu", "embedding.cu", "embedding_range.cu", "layernorm.cu", "gelu.cu",
        "softmax.cu", "crossentropy.cu", "crossentropy_parallel.cu", "global_norm.cu", "overflow.cu", "adamw.cu",
        "flash_attention_forward.cu", "flash_attention_backward.cu", "pieces.cu", "scale.cu",
        "token_drop.cu", "lion.cu", "adagrad.cu", "cast.cu", "quantize_rows.cu",
    ];

    /// <summary>Threads per block of the grid-stride (elementwise) kernels.</summary>
    public const int ElementwiseThreads = 256;

    private readonly List<CudaModule> modules = [];
    private readonly Dictionary<string, CudaFunction> functions = new(StringComparer.Ordinal);
    private readonly int maxElementwiseBlocks;

    public CudaKernelSet(CudaContext context, KernelCompiler compiler)
    {
        int architecture = KernelCompiler.ArchitectureFor(context.Device.ComputeCapability);
        foreach (string file in Files)
        {
            CompiledKernel compiled = compiler.Compile(file, architecture);
            CudaModule module = CudaModule.Load(context, compiled.Ptx);
            modules.Add(module);
            foreach (string entry in compiled.EntryPoints) functions[entry] = module.GetFunction(entry);
        }

        // Enough blocks to fill every SM several times; the grid-stride loops cover the rest.
        maxElementwiseBlocks = 32 * Math.Max(1, context.Device.MultiprocessorCount);
    }

    public CudaFunction this[string name] =>
        functions.TryGetValue(name, out CudaFunction? function)
            ? function
            : throw new InvalidOperationException($"kernels-cu has no entry point '{name}' in {string.Join(", ", Files)}");

    /// <summary>The grid of a grid-stride kernel over <paramref name="elements"/> elements.</summary>
    public int ElementwiseBlocks(long elements) =>
        (int)Math.Clamp((elements + ElementwiseThreads - 1) / ElementwiseThreads, 1, maxElementwiseBlocks);

    public void Dispose()
    {
        foreach (CudaModule module in modules) module.Dispose();
    }
}
