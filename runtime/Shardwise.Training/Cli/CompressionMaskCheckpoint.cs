using System;
using System.IO;
using System.Linq;
using System.Collections.Generic;
using Shardwise.Checkpoints;
using Shardwise.Plans;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Training.Cli;

/// <summary>
/// compression_training's pruning masks in a checkpoint, one U8 tensor per mask (<c>MODULE.sparse_mask</c>,
/// <c>MODULE.row_mask</c>): they were taken from the weights of the update that reached the offset, which no later
/// state can reproduce, so a resumed run must read them back. Every rank holds the same masks; rank 0 writes them.
/// </summary>
internal static class CompressionMaskCheckpoint
{
    public const string FileName = "compression_masks.safetensors";

    private static string TensorName(string module, PruningKind kind) => module + (kind == PruningKind.Sparse ? ".sparse_mask" : ".row_mask");

    /// <summary>Writes the masks taken so far into the checkpoint being saved (nothing before any is taken).</summary>
    public static void Write(CheckpointWriter writer, IReadOnlyDictionary<(string Module, PruningKind Kind), byte[]>? taken)
    {
        if (taken is null || taken.Count == 0) return;
        var masks = taken.OrderBy(m => m.Key.Module, StringComparer.Ordinal).ThenBy(m => m.Key.Kind).ToList();
        var specs = masks.Select(m => new SafeTensorSpec(TensorName(m.Key.Module, m.Key.Kind), SafeTensorDType.U8, m.Value.LongLength));
        using var file = writer.CreateSafeTensors(FileName, specs);
        foreach (var mask in masks) file.Write(TensorName(mask.Key.Module, mask.Key.Kind), mask.Value);
        file.Complete();
    }

    /// <summary>
    /// A pipeline's masks, assembled on world rank 0: each stage lays its masks out as two arrays of its layout (a
    /// weight's sparse mask element by element, a row mask repeated along its row; NaN where none), the job gathers them
    /// into the model's layout like the moments, and the masks are read back per module. Every rank must call it.
    /// </summary>
    public static Dictionary<(string Module, PruningKind Kind), byte[]> GatherStages(Distributed.ICommunicator modelParallel, ModelPartition partition,
        ParameterLayout model, ParameterLayout stage, WeightCompression compression)
    {
        var local = new Dictionary<PruningKind, float[]>
        {
            [PruningKind.Sparse] = new float[stage.TotalElements],
            [PruningKind.Row] = new float[stage.TotalElements],
        };
        foreach (var array in local.Values) Array.Fill(array, float.NaN);
        var modules = CompressionPlan.CompressibleModules(stage).ToDictionary(m => m.Name, StringComparer.Ordinal);
        foreach (var ((module, kind), mask) in compression.Masks)
        {
            var place = modules[module];
            int columns = kind == PruningKind.Sparse ? 1 : place.Columns;
            for (int i = 0; i < place.WeightLength; i++) local[kind][place.WeightOffset + i] = mask[i / columns];
        }
        var result = new Dictionary<(string, PruningKind), byte[]>();
        foreach (var kind in new[] { PruningKind.Sparse, PruningKind.Row })
        {
            var full = Pipeline.PartitionedParameters.Gather(modelParallel, partition, model, local[kind]);
            foreach (var module in CompressionPlan.CompressibleModules(model))
            {
                if (float.IsNaN(full[module.WeightOffset])) continue;
                int entries = kind == PruningKind.Sparse ? module.WeightLength : module.Rows, stride = kind == PruningKind.Sparse ? 1 : module.Columns;
                var mask = new byte[entries];
                for (int i = 0; i < entries; i++) mask[i] = (byte)full[module.WeightOffset + (long)i * stride];
                result[(module.Name, kind)] = mask;
            }
        }
        return result;
    }

    /// <summary>
    /// Puts the checkpoint's masks back before the engine takes the restored weights, so that none is taken anew from
    /// them. A checkpoint from before the offset has none: they are taken when the run reaches it.
    /// </summary>
    /// <param name="layout">This rank's layout: a pipeline stage skips, unremarked, the masks of modules other stages hold.</param>
    public static void Restore(string checkpoint, WeightCompression compression, ParameterLayout layout, TextWriter? log)
    {
        var held = CompressionPlan.CompressibleModules(layout).Select(m => m.Name).ToHashSet(StringComparer.Ordinal);
        string path = Path.Combine(checkpoint, FileName);
        if (!File.Exists(path)) return;
        using var reader = SafeTensorsReader.Open(path);
        foreach (var tensor in reader.Tensors)
        {
            var (module, kind) = tensor.Name.EndsWith(".sparse_mask", StringComparison.Ordinal) ? (tensor.Name[..^".sparse_mask".Length], PruningKind.Sparse)
                : tensor.Name.EndsWith(".row_mask", StringComparison.Ordinal) ? (tensor.Name[..^".row_mask".Length], PruningKind.Row)
                : throw new CliException($"--resume {checkpoint}: {FileName} holds '{tensor.Name}', which is no pruning mask");
            bool planned = compression.Plan.Modules.Any(m => m.Name == module && (kind == PruningKind.Sparse ? m.SparseDenseRatio : m.RowDenseRatio) is not null);
            if (!held.Contains(module)) continue;
            if (!planned)
            {
                log?.WriteLine($"note: the checkpoint's {kind.ToString().ToLowerInvariant()} pruning mask of {module} is not in this config's compression_training; it is not used");
                continue;
            }
            try
            {
                compression.RestoreMask(module, kind, reader.ReadAllBytes(tensor.Name));
            }
            catch (ArgumentException error)
            {
                throw new CliException($"--resume {checkpoint}: {FileName}: {error.Message}");
            }
        }
    }
}
