using System;
using System.IO;
using System.Linq;
using Shardwise.Checkpoints;
using Shardwise.Plans;

namespace Shardwise.Training.Cli;

/// <summary>
/// The one-process format's state: <c>model.safetensors</c> (a tensor per parameter) and <c>optimizer.safetensors</c>
/// (<c>NAME.exp_avg</c>, <c>NAME.exp_avg_sq</c>, <c>step</c>). A layout range is cut along the parameters it crosses.
/// </summary>
internal sealed class NamedStateFiles : CheckpointStateReader
{
    private readonly SafeTensorsReader _model;
    private readonly SafeTensorsReader? _optimizer; // null when only the weights were asked for
    private readonly ParameterSlot[] _byOffset;

    private NamedStateFiles(ParameterLayout layout, SafeTensorsReader model, SafeTensorsReader? optimizer, long adamStep)
        : base(layout, adamStep)
    {
        _model = model;
        _optimizer = optimizer;
        _byOffset = layout.Slots.OrderBy(slot => slot.Offset).ToArray();
    }

    public static NamedStateFiles OpenFiles(string checkpoint, ParameterLayout layout, bool weightsOnly)
    {
        var model = SafeTensorsReader.Open(Path.Combine(checkpoint, TrainingCheckpoint.ModelFile));
        SafeTensorsReader? optimizer = null;
        try
        {
            foreach (var slot in layout.Slots) CheckShape(model, slot.Name, slot);
            if (weightsOnly) return new NamedStateFiles(layout, model, null, 0);
            optimizer = SafeTensorsReader.Open(Path.Combine(checkpoint, TrainingCheckpoint.OptimizerFile));
            foreach (var slot in layout.Slots)
            {
                CheckShape(optimizer, slot.Name + ".exp_avg", slot);
                CheckShape(optimizer, slot.Name + ".exp_avg_sq", slot);
            }
            Span<long> step = stackalloc long[1];
            optimizer.Read("step", step);
            return new NamedStateFiles(layout, model, optimizer, step[0]);
        }
        catch
        {
            model.Dispose();
            optimizer?.Dispose();
            throw;
        }
    }

    public override void Read(CheckpointStateTensor tensor, long layoutOffset, Span<float> into)
    {
        into.Clear();
        var (file, suffix) = tensor switch
        {
            CheckpointStateTensor.Master => (_model, ""),
            CheckpointStateTensor.ExpAvg => (Optimizer, ".exp_avg"),
            _ => (Optimizer, ".exp_avg_sq"),
        };
        long end = layoutOffset + into.Length;
        for (int i = FirstEndingAfter(layoutOffset, _byOffset.Length, k => _byOffset[k].Offset + _byOffset[k].Length); i < _byOffset.Length; i++)
        {
            var slot = _byOffset[i];
            if (slot.Offset >= end) break;
            long from = Math.Max(layoutOffset, slot.Offset), to = Math.Min(end, slot.Offset + slot.Length);
            file.ReadPart(slot.Name + suffix, from - slot.Offset, into.Slice((int)(from - layoutOffset), (int)(to - from)));
        }
    }

    private SafeTensorsReader Optimizer => _optimizer ?? throw new InvalidOperationException("opened for the weights only: the optimizer state was not asked for");

    protected override void Dispose(bool disposing)
    {
        _model.Dispose();
        _optimizer?.Dispose();
    }

    /// <summary>The tensor exists, holds float32 and has the slot's element count; else an error naming the file and tensor.</summary>
    internal static void CheckShape(SafeTensorsReader reader, string name, ParameterSlot slot)
    {
        if (!reader.Contains(name))
            throw new InvalidDataException($"{reader.FilePath}: tensor '{name}' is missing; was the checkpoint written by a different model?");
        var info = reader.GetInfo(name);
        if (info.ElementCount != slot.Length)
            throw new InvalidDataException($"{reader.FilePath}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}]; the model's layout says [{string.Join(", ", slot.Shape)}]");
        if (info.DType != SafeTensorDType.F32)
            throw new InvalidDataException($"{reader.FilePath}: tensor '{name}' is {info.DType.HeaderName()}; Shardwise checkpoints hold float32 state");
    }
}
