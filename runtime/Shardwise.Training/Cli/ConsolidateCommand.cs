using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Shardwise.Checkpoints;
using Shardwise.Plans;

namespace Shardwise.Training.Cli;

/// <summary>
/// <c>consolidate</c> (DeepSpeed's zero_to_fp32): one safetensors file of full fp32 weights, named by the layout, from
/// the latest checkpoint in --resume, whatever the rank count that wrote it: validated against the model and written a
/// parameter at a time where the user wants, ready for Python's safetensors.
/// </summary>
public static class ConsolidateCommand
{
    public static int Run<TModel>(CliArguments args, TextWriter log) where TModel : ILanguageModelDefinition
    {
        string directory = args.String("resume") ?? throw new CliException("consolidate needs --resume DIR (a training output directory)");
        string output = args.String("output") ?? throw new CliException("consolidate needs --output FILE.safetensors");
        args.RejectUnknown();

        var checkpoint = TrainingCheckpoint.FindLatest(directory) ?? throw new CliException($"--resume {directory}: no committed checkpoint there");
        var layout = TModel.ParameterLayout;
        // A parameter at a time: a model of any size consolidates in the memory of its largest parameter.
        using (var state = CheckpointStateReader.Open(checkpoint, layout, weightsOnly: true))
        {
            var buffer = new float[layout.Slots.Count == 0 ? 0 : layout.Slots.Max(slot => slot.Length)];
            NamedWeightsFile.Write(output, layout, new Dictionary<string, string> { ["format"] = "pt", ["source"] = checkpoint }, file =>
            {
                foreach (var slot in layout.Slots)
                {
                    var values = buffer.AsSpan(0, checked((int)slot.Length));
                    state.Read(CheckpointStateTensor.Master, slot.Offset, values);
                    file.Write(slot.Name, values);
                }
            });
        }
        log.WriteLine($"wrote {layout.ParameterCount:N0} fp32 parameters in {layout.Slots.Count} tensors from {checkpoint} to {output}");
        return 0;
    }
}
