using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Shardwise.Checkpoints;
using Shardwise.Plans;

namespace Shardwise.Training.Cli;

/// <summary>
/// A standalone file of weights, one tensor per parameter named by the layout (what Python's safetensors and
/// <c>load_state_dict</c> read): written under a temporary name and moved into place, so a crash never leaves a partial
/// file under the real name.
/// </summary>
public static class NamedWeightsFile
{
    /// <summary>Writes every parameter of <paramref name="layout"/> as float32; <paramref name="writeTensors"/> writes them, in any order.</summary>
    public static void Write(string path, ParameterLayout layout, IReadOnlyDictionary<string, string> metadata, Action<SafeTensorsWriter> writeTensors)
        => Write(path, layout.Slots, SafeTensorDType.F32, metadata, writeTensors);

    /// <summary>Writes <paramref name="parameters"/> as <paramref name="dtype"/>; <paramref name="writeTensors"/> writes them, in any order.</summary>
    public static void Write(string path, IReadOnlyList<ParameterSlot> parameters, SafeTensorDType dtype, IReadOnlyDictionary<string, string> metadata,
        Action<SafeTensorsWriter> writeTensors)
    {
        string temporary = path + ".tmp";
        var specs = parameters.Select(slot => new SafeTensorSpec(slot.Name, dtype, Array.ConvertAll(slot.Shape, d => (long)d)));
        using (var file = SafeTensorsWriter.Create(temporary, specs, metadata))
        {
            writeTensors(file);
            file.Complete();
        }
        File.Move(temporary, path, overwrite: true);
    }
}
