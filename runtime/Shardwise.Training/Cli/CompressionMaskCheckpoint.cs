using System;
using System.IO;
using System.Linq;
using Shardwise.Checkpoints;
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
    public static void Write(CheckpointWriter writer, WeightCompression? compression)
    {
        if (compression is null || compression.Masks.Count == 0) return;
        var masks = compression.Masks.OrderBy(m => m.Key.Module, StringComparer.Ordinal).ThenBy(m => m.Key.Kind).ToList();
        var specs = masks.Select(m => new SafeTensorSpec(TensorName(m.Key.Module, m.Key.Kind), SafeTensorDType.U8, m.Value.LongLength));
        using var file = writer.CreateSafeTensors(FileName, specs);
        foreach (var mask in masks) file.Write(TensorName(mask.Key.Module, mask.Key.Kind), mask.Value);
        file.Complete();
    }

    /// <summary>
    /// Puts the checkpoint's masks back before the engine takes the restored weights, so that none is taken anew from
    /// them. A checkpoint from before the offset has none: they are taken when the run reaches it.
    /// </summary>
    public static void Restore(string checkpoint, WeightCompression compression, TextWriter? log)
    {
        string path = Path.Combine(checkpoint, FileName);
        if (!File.Exists(path)) return;
        using var reader = SafeTensorsReader.Open(path);
        foreach (var tensor in reader.Tensors)
        {
            var (module, kind) = tensor.Name.EndsWith(".sparse_mask", StringComparison.Ordinal) ? (tensor.Name[..^".sparse_mask".Length], PruningKind.Sparse)
                : tensor.Name.EndsWith(".row_mask", StringComparison.Ordinal) ? (tensor.Name[..^".row_mask".Length], PruningKind.Row)
                : throw new CliException($"--resume {checkpoint}: {FileName} holds '{tensor.Name}', which is no pruning mask");
            bool planned = compression.Plan.Modules.Any(m => m.Name == module && (kind == PruningKind.Sparse ? m.SparseDenseRatio : m.RowDenseRatio) is not null);
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
