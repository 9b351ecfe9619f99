using System;
using System.Collections.Generic;
using System.IO;
using Shardwise.Checkpoints;
using Shardwise.Plans;

namespace Shardwise.Training.Cli;

/// <summary>
/// A standalone file of full fp32 weights, one tensor per parameter named by the layout (what Python's safetensors and
/// <c>load_state_dict</c> read): written under a temporary name and moved into place, so a crash never leaves a partial
/// file under the real name.
/// </summary>
public static class NamedWeightsFile
{
    /// <summary>Writes <paramref name="path"/>; <paramref name="writeTensors"/> writes every parameter's tensor, in any order.</summary>
    public static void Write(string path, ParameterLayout layout, IReadOnlyDictionary<string, string> metadata, Action<SafeTensorsWriter> writeTensors)
    {
        string temporary = path + ".tmp";
        using (var file = SafeTensorsWriter.Create(temporary, TrainingCheckpoint.Specs(layout, ""), metadata))
        {
            writeTensors(file);
            file.Complete();
        }
        File.Move(temporary, path, overwrite: true);
    }
}
