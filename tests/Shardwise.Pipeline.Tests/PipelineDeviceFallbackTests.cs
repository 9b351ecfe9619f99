using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Distributed.InProcess;
using Shardwise.Models.Tests;
using Shardwise.Training.Cli;

namespace Shardwise.Pipeline.Tests;

/// <summary>
/// The trainer's device is auto by default; a pipelined model's stages run on the CPU backend only so far, so on a GPU
/// machine auto must fall back to the CPU for a pipelined job (printed), while an explicit cuda stays an error. The
/// GPU is stood in for by the choice itself (<see cref="RunSettings.DeviceChoice"/>); the job is two in-process ranks.
/// </summary>
[TestClass]
public sealed class PipelineDeviceFallbackTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>One step over a small text of the model's vocabulary, as <see cref="TrainingRun"/> trains.</summary>
    private static RunSettings Settings(string directory, BackendKind requested)
    {
        Directory.CreateDirectory(directory);
        string data = Path.Combine(directory, "words.txt"), config = Path.Combine(directory, "ds_config.json");
        var random = new Random(1);
        string[] words = ["abc", "bad", "cab", "dace", "ace", "bead", "deed", "faced"];
        File.WriteAllText(data, string.Join(" ", Enumerable.Range(0, 500).Select(_ => words[random.Next(words.Length)])));
        File.WriteAllText(config, TrainingRun.Config(microBatch: 2, zeroStage: 0));
        string[] args = ["train", "--device", "cpu", "--config", config, "--data", data, "--steps", "1", "--eval-interval", "0",
            "--output", Path.Combine(directory, "run")];
        return RunSettings.Read(CliArguments.Parse(args), nameof(PipelineGpt), TextWriter.Null)
            with { DeviceRequested = requested, DeviceChoice = new BackendChoice(BackendKind.Cuda, "GPU: stand-in for a CUDA device") };
    }

    [TestMethod]
    public void AutoOnAGpuMachineTrainsAPipelinedJobOnTheCpuAndSaysWhy()
    {
        string directory = Path.Combine(Path.GetTempPath(), "shardwise-pipeline-device-" + Guid.NewGuid().ToString("N"));
        var settings = Settings(directory, BackendKind.Auto);
        try
        {
            var logs = InProcessGroup.Run(2, world =>
            {
                var log = new StringWriter();
                int code = PipelineTrainCommand.Run<PipelineGpt>(settings, log, world);
                return (code, log.ToString());
            }, Timeout);

            Assert.AreEqual(0, logs[0].code, logs[0].Item2);
            StringAssert.StartsWith(logs[0].Item2, "CPU: PipelineGpt is pipelined; its stages run on the CPU backend only so far\n");
            Assert.AreEqual("", logs[1].Item2, "rank 1 prints nothing");
            Assert.IsTrue(File.Exists(Path.Combine(directory, "run", "metrics.csv")), "the job trained");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [TestMethod]
    public void AnExplicitCudaForAPipelinedJobStaysAnError()
    {
        string directory = Path.Combine(Path.GetTempPath(), "shardwise-pipeline-device-" + Guid.NewGuid().ToString("N"));
        var settings = Settings(directory, BackendKind.Cuda);
        try
        {
            var errors = InProcessGroup.Run(2, world =>
            {
                var e = Assert.ThrowsExactly<CliException>(() => PipelineTrainCommand.Run<PipelineGpt>(settings, TextWriter.Null, world));
                return e.Message;
            }, Timeout);
            StringAssert.StartsWith(errors[0], "--device cuda: PipelineGpt is pipelined (Pipeline = 2");
            Assert.IsFalse(Directory.Exists(Path.Combine(directory, "run")), "nothing was written");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
