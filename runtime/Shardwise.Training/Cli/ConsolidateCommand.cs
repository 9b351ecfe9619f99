using System;
using System.Collections.Generic;
using System.IO;
using Shardwise.Checkpoints;
using Shardwise.Plans;

namespace Shardwise.Training.Cli;

/// <summary>
/// <c>consolidate</c> (DeepSpeed's zero_to_fp32): one safetensors file of full fp32 weights, named by the layout, from
/// the latest checkpoint in --resume. Checkpoints already hold full-layout weights whatever the rank count, so this
/// validates them against the model and writes them where the user wants, ready for Python's safetensors.
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
        var weights = new float[layout.TotalElements];
        TrainingCheckpoint.LoadWeights(checkpoint, layout, weights);

        var specs = new List<SafeTensorSpec>();
        foreach (var slot in layout.Slots) specs.Add(new SafeTensorSpec(slot.Name, SafeTensorDType.F32, Array.ConvertAll(slot.Shape, d => (long)d)));
        string temporary = output + ".tmp";
        using (var file = SafeTensorsWriter.Create(temporary, specs, new Dictionary<string, string> { ["format"] = "pt", ["source"] = checkpoint }))
        {
            foreach (var slot in layout.Slots) file.Write(slot.Name, weights.AsSpan((int)slot.Offset, (int)slot.Length));
            file.Complete();
        }
        File.Move(temporary, output, overwrite: true);
        log.WriteLine($"wrote {layout.ParameterCount:N0} fp32 parameters in {layout.Slots.Count} tensors from {checkpoint} to {output}");
        return 0;
    }
}
